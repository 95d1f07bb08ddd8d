"""`SplitClassifier`: a classifier that is the composition cloud(edge(x)).

The edge and cloud halves are separate modules, so each can be exported alone. Their children are
also registered on the classifier itself under their own names, which keeps the state_dict keys
flat, exactly as in the official code (`block1.0.weight`, not `edge.block1.0.weight`).

When one official `nn.Sequential` is cut in two (the unprotected VGG's `features`), edge and cloud
each hold a `Sequential` of that name keyed by the official indices ("0".."13" and "14".."43"); the
classifier registers one `Sequential` holding both, so the keys stay `features.14.weight` etc.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class ModelSpec:
    """What is needed to rebuild a model: architecture, input/output sizes and width.

    `width` is the official `ndf` of the 4-block CNNs (`pv4_classifier_4`, `Classifier_4`): the
    channels of block1, doubled by each later block. The other backbones have no width option (64).
    """

    arch: str
    in_channels: int = 1
    num_classes: int = 10
    input_size: int = 32
    width: int = 64

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (self.in_channels, self.input_size, self.input_size)


class SplitClassifier(nn.Module):
    def __init__(
        self,
        spec: ModelSpec,
        edge: nn.Module,
        cloud: nn.Module,
        split_point: str,
        unused: dict[str, nn.Module] | None = None,
    ):
        super().__init__()
        for name, child in list(edge.named_children()) + list(cloud.named_children()):
            if name in self._modules:
                child = _merge_halves(name, self._modules[name], child)
            self.add_module(name, child)
        # Official checkpoints hold weights the official forward never uses (the ResNet's dead
        # layer1): kept here so those checkpoints load strictly, but in neither half, never run.
        for name, module in (unused or {}).items():
            if name in self._modules:
                raise ValueError(f"unused module {name!r} clashes with an edge or cloud module")
            self.add_module(name, module)
        # Plain attributes, not submodules: the children above already carry the parameters.
        object.__setattr__(self, "_edge", edge)
        object.__setattr__(self, "_cloud", cloud)
        self.spec = spec
        self.split_point = split_point

    @property
    def edge(self) -> nn.Module:
        """The device half: input image -> transmitted features z."""
        return self._edge

    @property
    def cloud(self) -> nn.Module:
        """The server half: z -> class logits."""
        return self._cloud

    def train(self, mode: bool = True) -> "SplitClassifier":
        super().train(mode)
        # The halves share their children with self, but their own `training` flags are separate.
        self._edge.training = mode
        self._cloud.training = mode
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._cloud(self._edge(x))

    def forward_with_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self._edge(x)
        return z, self._cloud(z)

    @torch.no_grad()
    def transmitted_shape(self) -> tuple[int, ...]:
        """Shape of z for one image, found by running the edge on a zero input."""
        was_training = self.training
        self.eval()
        z = self._edge(torch.zeros(1, *self.spec.input_shape))
        self.train(was_training)
        return tuple(z.shape[1:])


def _merge_halves(name: str, first: nn.Module, second: nn.Module) -> nn.Sequential:
    """One `Sequential` over both halves of a container cut at the split (children shared, not copied)."""
    if not (isinstance(first, nn.Sequential) and isinstance(second, nn.Sequential)):
        raise ValueError(f"edge and cloud both have a module {name!r}; only nn.Sequential halves can share a name")
    first_keys, second_keys = list(first._modules), list(second._modules)
    if set(first_keys) & set(second_keys):
        raise ValueError(f"the edge and cloud halves of {name!r} both have children {sorted(set(first_keys) & set(second_keys))}")
    return nn.Sequential(OrderedDict(list(first.named_children()) + list(second.named_children())))
