"""The attack-budget presets."""

from __future__ import annotations

import pytest

from sift_deploy.errors import SiftError
from sift_deploy.privacy import PRESETS, AttackBudget


def test_presets_follow_the_gate_protocol():
    for budget in PRESETS.values():
        assert len(budget.decoder_seeds) >= 3 and len(set(budget.decoder_seeds)) == len(budget.decoder_seeds)
        assert len(budget.twin_seeds) >= 1
        assert budget.decoder_epochs >= 1 and budget.aux_images >= budget.decoder_batch
    fast, full = AttackBudget.preset("fast"), AttackBudget.preset("full")
    assert fast.name == "fast" and full.name == "full"
    assert full.aux_images >= fast.aux_images and full.test_images >= fast.test_images
    assert fast.as_dict()["decoder_seeds"] == list(fast.decoder_seeds)


def test_overrides_and_unknown_names():
    fast = AttackBudget.preset("fast")
    assert fast.with_(decoder_epochs=2).decoder_epochs == 2 and fast.decoder_epochs != 2
    with pytest.raises(SiftError, match="unknown attack-budget setting"):
        fast.with_(epochs=3)
    with pytest.raises(SiftError, match="choose one of fast, full"):
        AttackBudget.preset("quick")
