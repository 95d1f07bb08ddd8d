"""Model registry: architecture name -> builder of a `SplitClassifier`.

Each SiftFunnel architecture has an unprotected twin cut at the same depth, for comparisons. The
autoencoder-bottleneck baseline (`ae-cnn`, the official `AE_Classifier_4`) is the CNN twin with an
encoder/decoder pair at its cut, so its twin is the CNN twin too.
"""

from __future__ import annotations

from typing import Callable

from ..errors import SiftError
from .autoencoder import ae_cnn
from .cnn import plain_cnn, siftfunnel_cnn
from .resnet import plain_resnet18, siftfunnel_resnet18
from .split import ModelSpec, SplitClassifier
from .vgg import plain_vgg16bn, siftfunnel_vgg16bn

Builder = Callable[[ModelSpec], SplitClassifier]

ARCHITECTURES: dict[str, Builder] = {
    "siftfunnel-cnn": siftfunnel_cnn,
    "plain-cnn": plain_cnn,
    "siftfunnel-vgg16bn": siftfunnel_vgg16bn,
    "plain-vgg16bn": plain_vgg16bn,
    "siftfunnel-resnet18": siftfunnel_resnet18,
    "plain-resnet18": plain_resnet18,
    "ae-cnn": ae_cnn,
}

TWINS: dict[str, str] = {
    "siftfunnel-cnn": "plain-cnn",
    "siftfunnel-vgg16bn": "plain-vgg16bn",
    "siftfunnel-resnet18": "plain-resnet18",
    "ae-cnn": "plain-cnn",
}

SUPPORTED_INPUT_SIZES = (32, 64)
SUPPORTED_CHANNELS = (1, 3)
DEFAULT_WIDTH = 64
# Architectures whose official class has a width option (`ndf`), and the smallest width each accepts.
MIN_WIDTH: dict[str, int] = {"siftfunnel-cnn": 32, "plain-cnn": 1, "ae-cnn": 1}


def build_model(spec: ModelSpec) -> SplitClassifier:
    if spec.arch not in ARCHITECTURES:
        raise SiftError(f"unknown architecture {spec.arch!r}; choose one of {', '.join(sorted(ARCHITECTURES))}")
    if spec.input_size not in SUPPORTED_INPUT_SIZES:
        raise SiftError(f"input size {spec.input_size} is not supported; use 32 or 64")
    if spec.in_channels not in SUPPORTED_CHANNELS:
        raise SiftError(f"{spec.in_channels} input channels are not supported; use 1 (grey) or 3 (RGB)")
    if spec.num_classes < 2:
        raise SiftError(f"num_classes must be at least 2, got {spec.num_classes}")
    if spec.width != DEFAULT_WIDTH:
        if spec.arch not in MIN_WIDTH:
            raise SiftError(f"{spec.arch} has no width option (its official class is always {DEFAULT_WIDTH} wide), "
                            f"got width {spec.width}")
        if spec.width < MIN_WIDTH[spec.arch] or spec.width % 4:
            raise SiftError(f"{spec.arch} width (ndf) {spec.width} is not supported; use a multiple of 4 of at least "
                            f"{max(4, MIN_WIDTH[spec.arch])}")
    return ARCHITECTURES[spec.arch](spec)


__all__ = ["ARCHITECTURES", "DEFAULT_WIDTH", "MIN_WIDTH", "TWINS", "ModelSpec", "SplitClassifier", "build_model"]
