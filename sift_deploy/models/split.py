"""`SplitClassifier`: a classifier that is the composition cloud(edge(x)).

The edge and cloud halves are separate modules, so each can be exported alone. Their children are
also registered on the classifier itself under their own names, which keeps the state_dict keys
flat, exactly as in the official code (`block1.0.weight`, not `edge.block1.0.weight`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class ModelSpec:
    """What is needed to rebuild a model: architecture and input/output sizes."""

    arch: str
    in_channels: int = 1
    num_classes: int = 10
    input_size: int = 32

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (self.in_channels, self.input_size, self.input_size)


class SplitClassifier(nn.Module):
    def __init__(self, spec: ModelSpec, edge: nn.Module, cloud: nn.Module, split_point: str):
        super().__init__()
        for name, child in list(edge.named_children()) + list(cloud.named_children()):
            self.add_module(name, child)
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
