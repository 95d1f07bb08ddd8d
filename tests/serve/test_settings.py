"""The optional [serving] table of target profiles."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from sift_deploy.cli import app
from sift_deploy.errors import SiftError
from sift_deploy.profiles import TARGETS_DIR, available_targets, load_profile
from sift_deploy.serve.settings import ServingSettings, parse_serving, settings_of_profile


def test_defaults_when_the_table_is_absent():
    assert parse_serving(None) == ServingSettings()
    assert ServingSettings().wire == "uint8" and ServingSettings().max_batch_size == 64


@pytest.mark.parametrize("name", available_targets())
def test_every_shipped_profile_has_valid_serving_settings(name):
    settings = settings_of_profile(load_profile(name))
    assert settings.wire in ("uint8", "float32")
    assert settings.tensorrt_plan == name.startswith("jetson")


def test_a_full_table_is_read():
    s = parse_serving({"max_batch_size": 8, "preferred_batch_sizes": [2, 8], "max_queue_delay_us": 0,
                       "instance_count": 3, "wire": "float32", "tensorrt_plan": True})
    assert (s.max_batch_size, s.preferred_batch_sizes, s.instance_count, s.wire) == (8, (2, 8), 3, "float32")


@pytest.mark.parametrize("table, fragment", [
    ({"wire": "int4"}, "wire 'int4' is unknown"),
    ({"max_batch_size": -1}, "max_batch_size"),
    ({"instance_count": 0}, "instance_count"),
    ({"preferred_batch_sizes": [128]}, "preferred_batch_sizes"),
    ({"max_batch_size": "64"}, "'max_batch_size' must be int"),
    ({"tensorrt_plan": 1}, "'tensorrt_plan' must be bool"),
    ({"replicas": 3}, "unknown field(s) replicas"),
])
def test_bad_tables_are_refused(table, fragment):
    with pytest.raises(SiftError, match=None) as info:
        parse_serving(table, "profile p.toml")
    assert fragment in str(info.value) and "[serving]" in str(info.value)


def test_export_refuses_a_bad_serving_table_in_one_line(tmp_path):
    text = (TARGETS_DIR / "x86-64.toml").read_text().replace('wire = "uint8"', 'wire = "int4"')
    profile = tmp_path / "bad.toml"
    profile.write_text(text)
    result = CliRunner().invoke(app, ["export", "--target", str(profile), "--output", str(tmp_path / "b")])
    assert result.exit_code == 2, result.output
    assert len(result.stderr.strip().splitlines()) == 1 and "'wire' must be 'uint8' or 'float32'" in result.stderr
    assert not (tmp_path / "b").exists()
