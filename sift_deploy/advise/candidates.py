"""The cuts advise tries: every named cut of the model (input side first), or the ones asked for."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import SiftError
from ..models import SplitClassifier


@dataclass(frozen=True)
class Candidate:
    name: str
    default: bool
    block_idx: int | None
    z_shape: tuple[int, ...]


def candidate_cuts(model: SplitClassifier, only: list[str] | None = None) -> list[Candidate]:
    names = list(model.cuts) if not only else list(dict.fromkeys(only))
    unknown = [n for n in names if n not in model.cuts]
    if unknown:
        raise SiftError(f"{model.spec.arch} has no cut {', '.join(map(repr, unknown))}; choose from {', '.join(model.cuts)}")
    out = []
    for name in sorted(names, key=model.cuts.index):
        stage = model.stage(name)
        out.append(Candidate(name, name == model.default_split, None if stage is None else stage.block_idx,
                             model.split_at(name).transmitted_shape()))
    return out
