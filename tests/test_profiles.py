"""sift_deploy/profiles.py and sift_deploy/targets/*.toml: shipped device profiles and profile validation."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from sift_deploy.backends.base import PRECISIONS
from sift_deploy.errors import SiftError
from sift_deploy.backends import export_targets
from sift_deploy.profiles import ALIASES, TARGETS_DIR, available_targets, load_profile, parse_profile

SHIPPED = available_targets()
X86_TOML = (TARGETS_DIR / "x86-64.toml").read_text()


def test_the_shipped_profiles_are_the_expected_ones():
    assert set(SHIPPED) >= {"x86-64", "rpi4", "rpi5", "jetson-jp5", "jetson-orin-nano-jp6"}


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_profile_loads(name):
    profile = load_profile(name)
    assert profile.name == name
    assert profile.backend in export_targets()
    assert profile.schema_version == 1
    assert profile.threads >= 1
    assert profile.default_precision in profile.precisions
    assert set(profile.precisions) <= set(PRECISIONS)
    for thresholds in profile.parity.values():
        assert 0 < thresholds.min_cosine <= 1 and 0 < thresholds.min_top1_agreement <= 1
        bounds = [b for b in (thresholds.max_abs, thresholds.max_abs_relative) if b is not None]
        assert bounds and all(b > 0 for b in bounds)
    assert Path(profile.source) == TARGETS_DIR / f"{name}.toml"
    assert profile.as_dict()["parity"][profile.default_precision]["min_cosine"] == profile.parity[profile.default_precision].min_cosine


@pytest.mark.parametrize("alias, name, backend", [("x86", "x86-64", "onnxruntime"), ("rpi", "rpi4", "litert"),
                                                  ("jetson", "jetson-orin-nano-jp6", "tensorrt")])
def test_aliases_resolve(alias, name, backend):
    assert ALIASES[alias] == name
    profile = load_profile(alias)
    assert profile.name == name and profile.backend == backend
    assert load_profile(str(TARGETS_DIR / f"{name}.toml")).as_dict() == profile.as_dict()  # the same file by its path


def test_every_alias_targets_a_shipped_profile():
    assert set(ALIASES.values()) <= set(SHIPPED)


def test_jetson_jp5_matches_jetpack_5():
    from sift_deploy.backends.tensorrt.lint import max_opset_for

    profile = load_profile("jetson-jp5")
    assert profile.backend == "tensorrt"
    assert profile.backend_options["trt_version"] == "8.5.2"
    assert profile.backend_options["opset"] <= 17
    assert profile.backend_options["opset"] <= max_opset_for("8.5.2")


@pytest.mark.parametrize("name", [n for n in SHIPPED if load_profile(n).backend == "tensorrt"])
def test_tensorrt_profiles_ask_an_opset_their_tensorrt_parses(name):
    from sift_deploy.backends.tensorrt.lint import max_opset_for

    options = load_profile(name).backend_options
    assert options["opset"] <= max_opset_for(options["trt_version"])


# ------------------------------------------------------------------ user profiles and their errors

def _write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "my-device.toml"
    path.write_text(text)
    return str(path)


def _x86_with(replace: tuple[str, str] | None = None, drop: str | None = None, add: str | None = None) -> str:
    lines = X86_TOML.splitlines()
    if drop is not None:
        assert any(line.startswith(drop) for line in lines)
        lines = [line for line in lines if not line.startswith(drop)]
    text = "\n".join(lines) + "\n"
    if replace is not None:
        assert replace[0] in text
        text = text.replace(replace[0], replace[1], 1)
    if add is not None:
        text = add + "\n" + text
    return text


def test_a_user_profile_loads_from_a_path(tmp_path):
    text = _x86_with(replace=('name = "x86-64"', 'name = "my-box"')).replace("threads = 1 ", "threads = 8 ", 1)
    profile = load_profile(_write(tmp_path, text))
    assert profile.name == "my-box" and profile.threads == 8 and profile.backend == "onnxruntime"


def test_integers_are_accepted_where_floats_are_expected(tmp_path):
    profile = load_profile(_write(tmp_path, _x86_with(replace=("max_abs_relative = 0.1", "max_abs_relative = 1"))))
    bound = profile.parity["int8"].max_abs_relative
    assert bound == 1.0 and isinstance(bound, float)


def test_a_parity_table_sets_an_absolute_or_a_relative_max_abs_or_both(tmp_path):
    int8 = load_profile("x86").parity["int8"]
    assert int8.max_abs is None and int8.max_abs_relative == 0.1
    assert "max_abs" not in int8.thresholds() and load_profile("x86").as_dict()["parity"]["int8"] == int8.thresholds()
    both = load_profile(_write(tmp_path, _x86_with(replace=("max_abs_relative = 0.1", "max_abs = 2.0\nmax_abs_relative = 0.1"))))
    assert both.parity["int8"].thresholds()["max_abs"] == 2.0 and both.parity["int8"].max_abs_relative == 0.1
    message = _error(tmp_path, _x86_with(drop="max_abs_relative"))
    assert "[parity.int8]" in message and "set max_abs (absolute) or max_abs_relative" in message


def _error(tmp_path: Path, text: str) -> str:
    with pytest.raises(SiftError) as info:
        load_profile(_write(tmp_path, text))
    message = str(info.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize("field", ["schema_version", "name", "backend", "default_precision", "threads"])
def test_missing_top_level_field(tmp_path, field):
    message = _error(tmp_path, _x86_with(drop=f"{field} ="))
    assert f"lacks the field '{field}'" in message


def test_missing_parity_and_budgets_tables(tmp_path):
    doc = tomllib.loads(X86_TOML)
    for table in ("parity", "budgets"):
        broken = {k: v for k, v in doc.items() if k != table}
        with pytest.raises(SiftError, match=f"lacks the field '{table}'"):
            parse_profile(broken, "my-device.toml")


def test_missing_field_in_a_parity_table(tmp_path):
    message = _error(tmp_path, X86_TOML.replace("min_top1_agreement = 0.99\n", "", 1))
    assert "[parity.int8]" in message and "lacks the field 'min_top1_agreement'" in message


@pytest.mark.parametrize("old, new, field, expected", [
    ("threads = 1 ", 'threads = "four" ', "threads", "int"),
    ("threads = 1 ", "threads = true ", "threads", "int"),
    ("threads = 1 ", "threads = 1.5 ", "threads", "int"),
    ('backend = "onnxruntime"', "backend = 3", "backend", "str"),
    ('name = "x86-64"', "name = [1, 2]", "name", "str"),
    ("schema_version = 1", 'schema_version = "1"', "schema_version", "int"),
    ("min_cosine = 0.99\n", 'min_cosine = "high"\n', "min_cosine", "float"),
    ("max_abs = 0.0001", "max_abs = false", "max_abs", "float"),
    ("max_abs_relative = 0.1", "max_abs_relative = false", "max_abs_relative", "float"),
    ("latency_p50_ms = 1.0", 'latency_p50_ms = "fast"', "latency_p50_ms", "float"),
])
def test_wrong_type(tmp_path, old, new, field, expected):
    message = _error(tmp_path, _x86_with(replace=(old, new)))
    assert f"'{field}' must be {expected}" in message


def test_wrong_type_of_a_table(tmp_path):
    doc = tomllib.loads(X86_TOML)
    with pytest.raises(SiftError, match=r"\[parity\] must be a table"):
        parse_profile({**doc, "parity": "strict"}, "my-device.toml")
    with pytest.raises(SiftError, match=r"\[parity.int8\] must be a table"):
        parse_profile({**doc, "parity": {**doc["parity"], "int8": 0.99}}, "my-device.toml")
    with pytest.raises(SiftError, match=r"\[backend_options\] must be a table"):
        parse_profile({**doc, "backend_options": "opset 17"}, "my-device.toml")


def test_unknown_top_level_field(tmp_path):
    message = _error(tmp_path, _x86_with(add='colour = "blue"'))
    assert "unknown field(s) colour" in message and "allowed:" in message


def test_unknown_field_in_parity_and_budgets(tmp_path):
    message = _error(tmp_path, X86_TOML.replace("[parity.int8]\n", "[parity.int8]\nmin_psnr = 30.0\n", 1))
    assert "[parity.int8] has unknown field(s) min_psnr" in message
    message = _error(tmp_path, X86_TOML.replace("[budgets]\n", "[budgets]\nenergy_mj = 3.0\n", 1))
    assert "[budgets] has unknown field(s) energy_mj" in message


def test_unknown_precision_table(tmp_path):
    message = _error(tmp_path, X86_TOML + "\n[parity.int4]\nmin_cosine = 0.9\nmax_abs = 1.0\nmin_top1_agreement = 0.9\n")
    assert "[parity.int4] is not a precision" in message


def test_unknown_backend(tmp_path):
    message = _error(tmp_path, _x86_with(replace=('backend = "onnxruntime"', 'backend = "openvino"')))
    assert "backend 'openvino' is unknown" in message and "onnxruntime, litert, tensorrt" in message


def test_default_precision_without_parity_table(tmp_path):
    text = (TARGETS_DIR / "rpi4.toml").read_text()  # rpi4 has no [parity.fp16]
    message = _error(tmp_path, text.replace('default_precision = "int8"', 'default_precision = "fp16"'))
    assert "default_precision 'fp16' has no [parity.fp16] table" in message


def test_wrong_schema_version(tmp_path):
    message = _error(tmp_path, _x86_with(replace=("schema_version = 1", "schema_version = 2")))
    assert "schema_version 2" in message


def test_zero_threads(tmp_path):
    message = _error(tmp_path, _x86_with(replace=("threads = 1 ", "threads = 0 ")))
    assert "threads must be at least 1" in message


def test_invalid_toml(tmp_path):
    message = _error(tmp_path, X86_TOML + "\nthis is = = not toml\n")
    assert "is not valid TOML" in message


def test_unknown_target_and_missing_file(tmp_path):
    with pytest.raises(SiftError) as info:
        load_profile("nowhere")
    assert "unknown target 'nowhere'" in str(info.value)
    for alias in ALIASES:
        assert alias in str(info.value)
    with pytest.raises(SiftError, match="does not exist"):
        load_profile(str(tmp_path / "absent.toml"))


@pytest.mark.parametrize("old, new, fragment", [
    ("opset = 17", 'opset = "17"', "'opset' must be int, got str"),
    ("opset = 17", "opset = 17.0", "'opset' must be int, got float"),
    ('layout = "NCHW"', "layout = 1", "'layout' must be str, got int"),
    ('layout = "NCHW"', 'layout = "CHWN"', "layout 'CHWN' is unknown"),
])
def test_wrong_backend_option(tmp_path, old, new, fragment):
    message = _error(tmp_path, _x86_with(replace=(old, new)))
    assert "[backend_options]" in message and fragment in message


def test_backend_specific_options_pass_through(tmp_path):
    profile = load_profile(_write(tmp_path, X86_TOML.replace("[backend_options]\n", "[backend_options]\nrewrite = false\n", 1)))
    assert profile.backend_options == {"opset": 17, "layout": "NCHW", "rewrite": False}


def test_the_readme_documents_a_valid_profile():
    """The profile format shown in the README parses as a profile (the docs cannot drift from the schema)."""
    import re
    import tomllib

    from sift_deploy.profiles import parse_profile

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme.split("## Device profiles", 1)[1]
    block = re.search(r"```toml\n(.*?)```", section, re.S).group(1)
    profile = parse_profile(tomllib.loads(block), "README.md")
    assert (profile.name, profile.backend, profile.threads, profile.precisions) == ("rpi4", "litert", 4, ("fp32", "int8"))


def test_describe_targets_matches_the_shipped_files():
    from sift_deploy.profiles import available_targets, describe_targets

    rows = describe_targets()
    assert [row["name"] for row in rows] == available_targets()
    assert {row["alias"]: row["backend"] for row in rows if row["alias"]} == {
        "x86": "onnxruntime", "rpi": "litert", "jetson": "tensorrt"}
