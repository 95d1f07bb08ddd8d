"""How much attacking a privacy check may do: the `fast` and `full` presets.

`fast` is sized so that `sift-deploy check --budget fast` on the reference SiftFunnel CNN
(Fashion-MNIST, 32x32, 2 CPU cores) stays under 10 minutes for everything: features of aux and test,
3 decoder seeds on float and on deployed features (branched: 1.5 decoders' training per seed), one
decoder against the unprotected twin (which must reach SSIM >= 0.75 to prove the attack works), MINE,
dCor and the white-box attack. Measured on the reference's x86 int8 bundle: 335 s on a quiet machine,
twin SSIM 0.874-0.878. On a machine where another process holds a core, run it with one thread
(OMP_NUM_THREADS=1): two torch threads there took 3,188 s.
`full` follows research/attack-anchors.md's reference attacker (10k aux pairs, all 10k test images,
width 128, 6 epochs) with 5 seeds per side.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

from ..errors import SiftError


@dataclass(frozen=True)
class AttackBudget:
    name: str
    # learned-decoder attack (black box): trained on aux pairs, scored on test images
    aux_images: int  # attacker's training pairs, the first ones of the aux split
    test_images: int  # private images attacked and scored, the first ones of the test split
    decoder_epochs: int
    decoder_width: int
    decoder_seeds: tuple[int, ...]  # the same list on the float and on the deployed side
    twin_seeds: tuple[int, ...]  # decoders against the unprotected twin (attack-strength proof)
    decoder_batch: int = 32
    decoder_lr: float = 2e-3
    # how each seed's float and deployed decoders are trained (see check.decoder): "branched", from a common
    # trunk trained on the deployed features, so that where training lands (the seed effect) is shared and
    # cancels in the paired difference; "independent", each from scratch with the same initial weights and
    # batch order (the default until the reference became a strongly protected model, where it rejects on noise)
    decoder_pairing: str = "branched"
    # MINE I(x; z): trained on aux pairs, evaluated on held-out test pairs
    mine_train_pairs: int = 5000
    mine_heldout_pairs: int = 2000
    mine_epochs: int = 10
    mine_lr: float = 3e-3
    # distance correlation sample
    dcor_samples: int = 2000
    # white-box optimisation attack (privacy.whitebox defaults; the official settings recover nothing here)
    whitebox_images: int = 64
    whitebox_steps: int = 100
    whitebox_lr: float = 300.0
    whitebox_tv_weight: float = 0.05
    whitebox_relative: bool = True
    whitebox_project: bool = True
    # intervals
    bootstrap_resamples: int = 2000
    confidence: float = 0.95

    def as_dict(self) -> dict:
        d = asdict(self)
        d["decoder_seeds"], d["twin_seeds"] = list(self.decoder_seeds), list(self.twin_seeds)
        return d

    def __post_init__(self) -> None:
        if self.decoder_pairing not in DECODER_PAIRINGS:
            raise SiftError(f"decoder pairing must be one of {', '.join(DECODER_PAIRINGS)}; got {self.decoder_pairing!r}")

    def with_(self, **changes: object) -> "AttackBudget":
        """A copy with some fields changed (e.g. from CLI options)."""
        unknown = [k for k in changes if k not in self.__dataclass_fields__]
        if unknown:
            raise SiftError(f"unknown attack-budget setting(s): {', '.join(unknown)}")
        return replace(self, **changes)

    def fit_to_data(self, aux_count: int, test_count: int) -> tuple["AttackBudget", list[str]]:
        """This budget on splits with `aux_count` attacker pairs and `test_count` private images, and one
        sentence per cut. Fewer aux pairs than planned: the decoder and MINE train more epochs so that they keep
        their number of optimiser steps (at most MAX_EPOCH_FACTOR times the planned epochs: beyond that the
        attacker would only memorise its few pairs, and the steps are cut, which is said). Fewer test images:
        scores rest on fewer images, which nothing can make up for."""
        changes: dict = {}
        cuts: list[str] = []
        if aux_count < self.aux_images:
            per_epoch = math.ceil(aux_count / self.decoder_batch)
            planned = self.decoder_epochs * math.ceil(self.aux_images / self.decoder_batch)
            epochs = min(math.ceil(planned / per_epoch), self.decoder_epochs * MAX_EPOCH_FACTOR)
            changes["decoder_epochs"] = epochs
            kept = "keeps its" if epochs * per_epoch >= planned else f"gets {epochs * per_epoch} of its"
            cuts.append(f"the aux split has {aux_count} attacker pairs, fewer than the {self.aux_images} of the "
                        f"{self.name} budget: the decoder trains {epochs} epochs instead of {self.decoder_epochs} and "
                        f"{kept} {planned} steps" + ("" if epochs * per_epoch >= planned else
                                                    f" (more than {MAX_EPOCH_FACTOR}x the epochs would only memorise "
                                                    f"the pairs)") + "; more pairs: --aux-split")
        mine_pairs = min(self.mine_train_pairs, aux_count)
        if mine_pairs < self.mine_train_pairs:
            factor = min(self.mine_train_pairs / mine_pairs, MAX_EPOCH_FACTOR)
            changes["mine_epochs"] = math.ceil(self.mine_epochs * factor)
            cuts.append(f"MINE trains on {mine_pairs} pairs instead of {self.mine_train_pairs}, for "
                        f"{changes['mine_epochs']} epochs instead of {self.mine_epochs}")
        if test_count < self.test_images:
            cuts.append(f"the test split has {test_count} images, fewer than the {self.test_images} of the "
                        f"{self.name} budget: scores and intervals rest on {test_count} private images"
                        + (f" (white-box: {test_count} instead of {self.whitebox_images})"
                           if test_count < self.whitebox_images else ""))
        return (self.with_(**changes) if changes else self), cuts

    @classmethod
    def preset(cls, name: str) -> "AttackBudget":
        if name not in PRESETS:
            raise SiftError(f"unknown attack budget {name!r}; choose one of {', '.join(PRESETS)}")
        return PRESETS[name]


DECODER_PAIRINGS = ("independent", "branched")
MAX_EPOCH_FACTOR = 10  # fit_to_data trains at most this many times the planned epochs on short data

FAST = AttackBudget(
    name="fast",
    aux_images=5000,
    test_images=2000,
    decoder_epochs=4,
    decoder_width=128,
    decoder_batch=32,
    decoder_lr=2e-3,
    decoder_seeds=(0, 1, 2),
    twin_seeds=(0,),
    mine_train_pairs=4000,
    mine_heldout_pairs=2000,
    mine_epochs=12,
    dcor_samples=2000,
    whitebox_images=64,
    whitebox_steps=100,
)

FULL = AttackBudget(
    name="full",
    aux_images=10000,
    test_images=10000,
    decoder_epochs=6,
    decoder_width=128,
    decoder_batch=32,
    decoder_lr=2e-3,
    decoder_seeds=(0, 1, 2, 3, 4),
    twin_seeds=(0, 1),
    mine_train_pairs=10000,
    mine_heldout_pairs=4000,
    mine_epochs=20,
    dcor_samples=4000,
    whitebox_images=128,
    whitebox_steps=200,
)

PRESETS: dict[str, AttackBudget] = {"fast": FAST, "full": FULL}
