"""What a split costs: parameters and multiply-accumulates of the edge and the cloud, and the size of
the transmitted tensor z, counted from the modules themselves.

The edge and the cloud are run once on one image (zeros, eval mode) with forward hooks on every
module. A module belongs to the half during whose forward it ran; its own parameters (not its
children's) count once for that half, however often it runs. A module that is registered but never
runs (the ResNet's dead `layer1`, passed to `SplitClassifier` as `unused`) counts for neither half;
its parameters are reported as `unused_params`. MACs count only `Conv2d` and `Linear`, once per
call: a conv computes out_elements x (in_channels / groups) x kh x kw, a linear out_elements x
in_features; biases, norms, activations, pooling and attention arithmetic are not counted (the
convention of siftfunnel.md §3.4 and runtime-anchors).

Bytes on the wire are values x 4 (fp32), x 2 (fp16) and x 1 (int8; the per-tensor scale and zero
point, a few bytes per message, are left out).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from .split import SplitClassifier

BYTES_PER_VALUE = {"fp32": 4, "fp16": 2, "int8": 1}


@dataclass
class PartCost:
    """Parameters and per-image MACs of one half."""

    params: int
    macs: int


@dataclass
class SplitSummary:
    arch: str
    split_point: str
    input_shape: tuple[int, ...]
    transmitted_shape: tuple[int, ...]
    transmitted_values: int
    transmitted_bytes: dict[str, int]
    edge: PartCost
    cloud: PartCost
    unused_params: int
    registered_params: int

    @property
    def total_params(self) -> int:
        """Parameters that take part in inference (edge + cloud)."""
        return self.edge.params + self.cloud.params

    @property
    def total_macs(self) -> int:
        return self.edge.macs + self.cloud.macs

    def as_dict(self) -> dict:
        d = asdict(self)
        d["input_shape"] = list(self.input_shape)
        d["transmitted_shape"] = list(self.transmitted_shape)
        d["total_params"] = self.total_params
        d["total_macs"] = self.total_macs
        return d


def _layer_macs(module: nn.Module, output: torch.Tensor) -> int:
    per_image = output[0].numel()
    if isinstance(module, nn.Conv2d):
        kh, kw = module.kernel_size
        return per_image * (module.in_channels // module.groups) * kh * kw
    if isinstance(module, nn.Linear):
        return per_image * module.in_features
    return 0


class _Counter:
    """Forward hooks that attribute modules, parameters and MACs to the half being run."""

    def __init__(self, model: SplitClassifier):
        self.phase = ""
        self.macs: dict[str, int] = {}
        self.params: dict[str, int] = {}
        self.claimed: set[int] = set()  # ids of parameters already counted for some half
        # The halves may hold containers the classifier registers only in merged form, so hook all three trees.
        modules = {id(m): m for root in (model, model.edge, model.cloud) for m in root.modules()}
        self.handles = [m.register_forward_hook(self._hook) for m in modules.values()]

    def _hook(self, module: nn.Module, inputs, output) -> None:
        if isinstance(output, torch.Tensor):
            self.macs[self.phase] = self.macs.get(self.phase, 0) + _layer_macs(module, output)
        for p in module.parameters(recurse=False):
            if id(p) not in self.claimed:
                self.claimed.add(id(p))
                self.params[self.phase] = self.params.get(self.phase, 0) + p.numel()

    def close(self) -> None:
        for handle in self.handles:
            handle.remove()


@torch.no_grad()
def summarize(model: SplitClassifier) -> SplitSummary:
    """Count the edge and cloud of `model` for one image of the model's input shape."""
    was_training = model.training
    model.eval()
    counter = _Counter(model)
    try:
        x = torch.zeros(1, *model.spec.input_shape)
        counter.phase = "edge"
        z = model.edge(x)
        counter.phase = "cloud"
        model.cloud(z)
    finally:
        counter.close()
        model.train(was_training)
    registered = sum(p.numel() for p in model.parameters())
    edge = PartCost(counter.params.get("edge", 0), counter.macs.get("edge", 0))
    cloud = PartCost(counter.params.get("cloud", 0), counter.macs.get("cloud", 0))
    values = int(z[0].numel())
    return SplitSummary(
        arch=model.spec.arch,
        split_point=model.split_point,
        input_shape=tuple(model.spec.input_shape),
        transmitted_shape=tuple(int(s) for s in z.shape[1:]),
        transmitted_values=values,
        transmitted_bytes={name: values * size for name, size in BYTES_PER_VALUE.items()},
        edge=edge,
        cloud=cloud,
        unused_params=registered - edge.params - cloud.params,
        registered_params=registered,
    )
