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


def test_short_aux_data_keeps_the_decoders_steps_with_more_epochs_and_says_so():
    """The MNIST image-folder case: 1,389 aux pairs against the 5,000 of `fast`."""
    fast = AttackBudget.preset("fast")
    fitted, cuts = fast.fit_to_data(1389, 1667)
    planned = fast.decoder_epochs * -(-fast.aux_images // fast.decoder_batch)  # 4 x 157 steps
    per_epoch = -(-1389 // fast.decoder_batch)
    assert fitted.decoder_epochs == 15 and fitted.decoder_epochs * per_epoch >= planned
    assert fitted.mine_epochs > fast.mine_epochs and fitted.aux_images == fast.aux_images
    assert len(cuts) == 3
    assert "1389 attacker pairs" in cuts[0] and f"keeps its {planned} steps" in cuts[0] and "--aux-split" in cuts[0]
    assert "MINE trains on 1389 pairs" in cuts[1]
    assert "1667 private images" in cuts[2]


def test_very_short_aux_data_caps_the_epochs_and_says_why():
    fast = AttackBudget.preset("fast")
    fitted, cuts = fast.fit_to_data(100, 2000)
    assert fitted.decoder_epochs == fast.decoder_epochs * 10
    assert "gets 160 of its 628 steps" in cuts[0] and "memorise" in cuts[0]


def test_a_budget_the_data_can_give_is_not_changed():
    fast = AttackBudget.preset("fast")
    assert fast.fit_to_data(10000, 10000) == (fast, [])
