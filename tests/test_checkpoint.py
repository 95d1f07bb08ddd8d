"""Checkpoints: round trips, official state_dicts, and every kind of bad file refused with a SiftError."""

from __future__ import annotations

import os
import pickle
import stat

import pytest
import torch

from sift_deploy import __version__
from sift_deploy.checkpoint import load_checkpoint, save_checkpoint
from sift_deploy.errors import SiftError

from .conftest import make_tiny_model


def _outputs(model, seed=0):
    x = torch.randn(4, 1, 32, 32, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return model.forward_with_features(x)


# ------------------------------------------------------------------ round trips

def test_safetensors_round_trip_same_outputs_and_metadata(tiny_checkpoint):
    ckpt = load_checkpoint(tiny_checkpoint.path)
    z0, y0 = _outputs(tiny_checkpoint.model)
    z1, y1 = _outputs(ckpt.model)
    assert torch.equal(z0, z1) and torch.equal(y0, y1)
    assert not ckpt.official and not ckpt.model.training
    meta = ckpt.metadata
    for key, value in tiny_checkpoint.metadata.items():
        assert meta[key] == value
    assert meta["arch"] == "siftfunnel-cnn" and meta["transmitted_shape"] == [12, 8, 8]
    assert meta["tool_version"] == __version__ and meta["split_point"] == "cbam"
    assert len(ckpt.sha256) == 64


def test_round_trip_keeps_batchnorm_statistics(tiny_checkpoint):
    ckpt = load_checkpoint(tiny_checkpoint.path)
    saved = tiny_checkpoint.model.state_dict()
    for key, value in ckpt.model.state_dict().items():
        assert torch.equal(value, saved[key]), key


def test_save_refuses_to_overwrite_without_force(tiny_checkpoint, tmp_path):
    path = tmp_path / "m.safetensors"
    save_checkpoint(tiny_checkpoint.model, {}, path)
    before = path.read_bytes()
    with pytest.raises(SiftError, match="--force"):
        save_checkpoint(make_tiny_model(seed=1), {}, path)
    assert path.read_bytes() == before
    save_checkpoint(make_tiny_model(seed=1), {}, path, force=True)
    assert path.read_bytes() != before
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]  # no temporary files left behind


def test_saved_checkpoint_has_ordinary_permissions(tiny_checkpoint, tmp_path):
    """Written via a temporary file (created 0600), but it ends up as open() would create it."""
    mask = os.umask(0o022)
    try:
        path = save_checkpoint(tiny_checkpoint.model, {}, tmp_path / "shared.safetensors")
    finally:
        os.umask(mask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_official_pth_with_opacus_prefix_loads(tiny_checkpoint, tmp_path):
    path = tmp_path / "official.pth"
    state = {f"_module.{k}": v for k, v in tiny_checkpoint.model.state_dict().items()}
    torch.save({"epoch": 120, "model": state, "best_cl_acc": 91.0}, path)
    ckpt = load_checkpoint(path, arch="siftfunnel-cnn")
    assert ckpt.official and ckpt.spec.input_size == 32 and ckpt.spec.num_classes == 10
    assert torch.equal(_outputs(ckpt.model)[1], _outputs(tiny_checkpoint.model)[1])
    with pytest.raises(SiftError, match="--arch"):
        load_checkpoint(path)


def test_wrong_arch_for_a_project_checkpoint_is_refused(tiny_checkpoint):
    with pytest.raises(SiftError, match="holds a siftfunnel-cnn model, not plain-cnn"):
        load_checkpoint(tiny_checkpoint.path, arch="plain-cnn")
    with pytest.raises(SiftError, match="input size 32, not 64"):
        load_checkpoint(tiny_checkpoint.path, input_size=64)
    with pytest.raises(SiftError, match="unknown architecture"):
        load_checkpoint(tiny_checkpoint.path, arch="resnet9000")


# ------------------------------------------------------------------ code in pickles never runs

class WritesAFile:
    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


class RunsAShellCommand:
    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


@pytest.mark.parametrize("payload", [WritesAFile, RunsAShellCommand])
@pytest.mark.parametrize("how", ["torch.save", "pickle", "pickle-as-safetensors"])
def test_malicious_pickle_is_refused_and_never_runs(tmp_path, payload, how):
    victim = tmp_path / "pwned"
    evil = {"model": {"block1.0.weight": torch.zeros(1)}, "epoch": payload(victim)}
    path = tmp_path / ("evil.safetensors" if how == "pickle-as-safetensors" else "evil.pth")
    if how == "torch.save":
        torch.save(evil, path)
    else:
        with open(path, "wb") as f:
            pickle.dump(evil, f, protocol=2)
    with pytest.raises(SiftError) as info:
        load_checkpoint(path, arch="siftfunnel-cnn")
    assert str(path) in str(info.value)
    assert not victim.exists()
    if how != "pickle-as-safetensors":
        assert "never runs code" in str(info.value)


# ------------------------------------------------------------------ broken files

def test_missing_checkpoint(tmp_path):
    with pytest.raises(SiftError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.safetensors")


def test_directory_instead_of_checkpoint(tmp_path):
    with pytest.raises(SiftError, match="not a file"):
        load_checkpoint(tmp_path)


@pytest.mark.parametrize("name", ["empty.safetensors", "empty.pth"])
def test_empty_checkpoint(tmp_path, name):
    (tmp_path / name).write_bytes(b"")
    with pytest.raises(SiftError, match="is empty"):
        load_checkpoint(tmp_path / name, arch="siftfunnel-cnn")


def test_truncated_safetensors(tiny_checkpoint, tmp_path):
    path = tmp_path / "cut.safetensors"
    data = tiny_checkpoint.path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(SiftError, match="truncated or corrupt"):
        load_checkpoint(path)


def test_corrupt_safetensors_header(tiny_checkpoint, tmp_path):
    path = tmp_path / "bad.safetensors"
    data = bytearray(tiny_checkpoint.path.read_bytes())
    data[8:40] = b"#" * 32  # garble the JSON header
    path.write_bytes(bytes(data))
    with pytest.raises(SiftError, match="truncated or corrupt"):
        load_checkpoint(path)


def test_random_bytes(tmp_path):
    for name in ("noise.safetensors", "noise.pth", "noise"):
        path = tmp_path / name
        path.write_bytes(os.urandom(4096))
        with pytest.raises(SiftError, match="corrupt"):
            load_checkpoint(path, arch="siftfunnel-cnn")


def test_truncated_pth(tiny_checkpoint, tmp_path):
    full = tmp_path / "full.pth"
    torch.save(tiny_checkpoint.model.state_dict(), full)
    path = tmp_path / "cut.pth"
    path.write_bytes(full.read_bytes()[:5000])
    with pytest.raises(SiftError, match="truncated or corrupt"):
        load_checkpoint(path, arch="siftfunnel-cnn")


def test_pth_without_a_state_dict(tmp_path):
    path = tmp_path / "list.pth"
    torch.save([torch.zeros(2)], path)
    with pytest.raises(SiftError, match="holds no state_dict"):
        load_checkpoint(path, arch="siftfunnel-cnn")


def test_safetensors_with_bad_metadata(tiny_checkpoint, tmp_path):
    from safetensors.torch import save_file

    tensors = tiny_checkpoint.model.state_dict()
    for name, meta, expected in [
        ("nojson.safetensors", "{not json", "corrupt sift-deploy metadata"),
        ("future.safetensors", '{"schema_version": 99}', "schema_version 99"),
        ("partial.safetensors", '{"schema_version": 1, "arch": "siftfunnel-cnn"}', "incomplete sift-deploy metadata"),
    ]:
        save_file(tensors, str(tmp_path / name), metadata={"sift_deploy": meta})
        with pytest.raises(SiftError, match=expected):
            load_checkpoint(tmp_path / name)
    save_file(tensors, str(tmp_path / "bare.safetensors"))
    with pytest.raises(SiftError, match="pass --arch"):
        load_checkpoint(tmp_path / "bare.safetensors")
    assert load_checkpoint(tmp_path / "bare.safetensors", arch="siftfunnel-cnn").official


def test_state_dict_key_problems_are_listed(tiny_checkpoint, tmp_path):
    state = dict(tiny_checkpoint.model.state_dict())
    del state["cbam.sa.conv1.weight"]
    state["head.extra.weight"] = torch.zeros(3)
    state["se_block1.fc.0.weight"] = torch.zeros(5, 64)
    path = tmp_path / "keys.pth"
    torch.save(state, path)
    with pytest.raises(SiftError) as info:
        load_checkpoint(path, arch="siftfunnel-cnn", input_size=32)
    message = str(info.value)
    assert "missing: cbam.sa.conv1.weight" in message
    assert "unexpected: head.extra.weight" in message
    assert "shape mismatch: se_block1.fc.0.weight (5, 64) != (2, 64)" in message
    assert "--arch" in message


def test_weights_for_another_architecture_say_so(tiny_checkpoint, tmp_path):
    path = tmp_path / "cnn.pth"
    torch.save(tiny_checkpoint.model.state_dict(), path)
    with pytest.raises(SiftError, match="does not look like a siftfunnel-vgg16bn|do not fit"):
        load_checkpoint(path, arch="siftfunnel-vgg16bn")


def test_non_finite_weights_are_refused(tiny_checkpoint, tmp_path):
    state = dict(tiny_checkpoint.model.state_dict())
    state["block1.0.weight"] = state["block1.0.weight"].clone()
    state["block1.0.weight"][0, 0, 0, 0] = float("nan")
    path = tmp_path / "nan.pth"
    torch.save(state, path)
    with pytest.raises(SiftError, match="NaN"):
        load_checkpoint(path, arch="siftfunnel-cnn")


# ------------------------------------------------------------------ the official block_idx in a file name

@pytest.mark.parametrize("name, split_at, warned", [
    ("fmnist_cnn_1_pv4_0.25_5_2_2_0.01.pth", None, "--split-at triplet"),  # official default --block_idx 1
    ("fmnist_cnn_1_pv4_0.25_5_2_2_0.01.pth", "triplet", None),
    ("fmnist_cnn_2_pv4_0.25.pth", None, None),
    ("fmnist_cnn_2_pv4_0.25.pth", "block3", "--split-at cbam"),
    ("fmnist_cnn_7_pv4_0.25.pth", None, "no siftfunnel-cnn cut"),
    ("my-model.pth", "triplet", None),  # no block_idx recorded: nothing to compare
])
def test_a_cut_other_than_the_protected_block_is_warned_about(tiny_checkpoint, tmp_path, name, split_at, warned):
    path = tmp_path / name
    torch.save({"epoch": 1, "model": tiny_checkpoint.model.state_dict(), "best_cl_acc": 0.0}, path)
    ckpt = load_checkpoint(path, arch="siftfunnel-cnn", split_at=split_at)
    if warned is None:
        assert ckpt.warnings == []
    else:
        (warning,) = ckpt.warnings
        assert name in warning and warned in warning and f"split at {ckpt.model.split_point!r}" in warning


def test_a_project_checkpoint_split_at_a_cut_keeps_its_weights(tiny_checkpoint):
    whole = load_checkpoint(tiny_checkpoint.path)
    split = load_checkpoint(tiny_checkpoint.path, split_at="block3")
    assert split.model.split_point == "block3" and split.warnings == []
    x = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        assert torch.equal(split.model.cloud(split.model.edge(x)), whole.model(x))
