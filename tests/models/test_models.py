"""The six backbones and the autoencoder baseline: official checkpoints load strictly, the split is exact,
sizes match the paper digest.

Official layouts come from `official_layout.py` (written from the official code, not from ours).
Expected sizes are those of /work/shared/research/siftfunnel.md §3.4 and §3.5.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from official_layout import OFFICIAL, Layout

from sift_deploy.checkpoint import load_checkpoint, load_state_strict
from sift_deploy.errors import SiftError
from sift_deploy.models import ARCHITECTURES, TWINS, ModelSpec, build_model
from tests.conftest import assert_one_line_error

SOURCE = Path("official.pth")

# (channels, size-divisor) of z per architecture: z is C x s/d x s/d.
TRANSMITTED = {
    "siftfunnel-cnn": (12, 4),
    "plain-cnn": (128, 4),
    "siftfunnel-vgg16bn": (4, 4),
    "plain-vgg16bn": (128, 4),
    "siftfunnel-resnet18": (6, 2),
    "plain-resnet18": (128, 2),
    "ae-cnn": (64, 4),  # the official AE_Classifier_4's encoder: 2*ndf -> ndf channels at block2's size
}

# Edge parameters (§3.4, 64x64, nc=3; the ResNet without its dead layer1). Edge size does not depend
# on the input size; nc=1 removes 2 x 64 x 9 = 1,152 weights of the first conv (§3.4 gives 9,202 for
# the CNN and 378,648 - 147,968 (layer1) = 230,680 for the ResNet).
EDGE_PARAMS = {
    "siftfunnel-cnn": 10_354,
    "plain-cnn": 76_032,
    "siftfunnel-vgg16bn": 300_574,
    "plain-vgg16bn": 260_928,
    "siftfunnel-resnet18": 231_832,
    "plain-resnet18": 675_392,
    # plain-cnn's 76,032 + the encoder: three 3x3 convs 128->128 (3 x 147,584) + 3x3 conv 128->64 (73,792) + BN (128)
    "ae-cnn": 592_704,
}
GREY_SAVING = 2 * 64 * 9

# Whole-model parameters (§3.4, nc=3, 10 classes, 64x64; the ResNet with its dead layer1).
TOTAL_PARAMS = {
    "siftfunnel-cnn": 2.06e6,
    "plain-cnn": 1.96e6,
    "siftfunnel-vgg16bn": 40.28e6,
    "plain-vgg16bn": 39.94e6,
    "siftfunnel-resnet18": 11.05e6,
    "plain-resnet18": 11.19e6,
    # plain-cnn's 1,963,056 + encoder 516,672 + decoder: three 3x3 convs 64->64 (3 x 36,928) + 128x64x9+128 + BN (256)
    "ae-cnn": 2_664_624,
}
DEAD_LAYER1_PARAMS = 147_968


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def fake_state(layout: Layout) -> dict[str, torch.Tensor]:
    """A tensor per key, each filled with its own value, so a key loaded into the wrong place shows."""
    state = {}
    for i, (key, shape) in enumerate(layout.items()):
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(i, dtype=torch.long)
        else:
            state[key] = torch.full(shape, (i + 1) / 1000.0)
    return state


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def official_cases():
    for official in OFFICIAL.values():
        for size in official.sizes:
            for nc, classes in ((1, 2), (3, 10)):
                yield pytest.param(official.name, nc, classes, size, id=f"{official.name}-nc{nc}-{size}")


# -- the official layouts themselves -----------------------------------------------------------------

def test_official_layouts_have_the_documented_key_counts():
    counts = {name: len(OFFICIAL[name].layout(3, 10, 64)) for name in ("pv4_classifier_4", "rn18_pv4", "vgg16_bn_pv4")}
    assert counts == {"pv4_classifier_4": 92, "rn18_pv4": 191, "vgg16_bn_pv4": 172}


def test_every_architecture_has_an_official_counterpart_and_twin():
    assert {o.arch for o in OFFICIAL.values()} == set(ARCHITECTURES)
    assert TWINS == {
        "siftfunnel-cnn": "plain-cnn",
        "siftfunnel-vgg16bn": "plain-vgg16bn",
        "siftfunnel-resnet18": "plain-resnet18",
        "ae-cnn": "plain-cnn",
    }


# -- loading -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, nc, classes, size", list(official_cases()))
def test_official_layout_loads_strictly(name, nc, classes, size):
    official = OFFICIAL[name]
    model = build_model(ModelSpec(official.arch, nc, classes, size))
    state = fake_state(official.layout(nc, classes, size))
    load_state_strict(model, state, SOURCE)
    loaded = model.state_dict()
    assert loaded.keys() == state.keys()
    for key, value in state.items():
        assert torch.equal(loaded[key], value), key


@pytest.mark.parametrize("name, nc, classes, size", [
    ("pv4_classifier_4", 1, 2, 32),
    ("Classifier_4", 3, 10, 64),
    ("rn18_pv4", 3, 10, 64),
    ("rn18", 1, 2, 64),
    ("vgg16_bn_pv4", 3, 10, 64),
    ("vgg16_bn", 1, 2, 64),
    ("AE_Classifier_4", 1, 10, 32),
])
def test_official_pth_loads_with_load_checkpoint(tmp_path, name, nc, classes, size):
    official = OFFICIAL[name]
    state = fake_state(official.layout(nc, classes, size))
    path = tmp_path / f"{name}.pth"
    torch.save({"epoch": 3, "model": {f"module.{k}": v for k, v in state.items()}, "best_cl_acc": 0.9}, path)
    checkpoint = load_checkpoint(path, arch=official.arch)
    assert checkpoint.official
    assert checkpoint.spec == ModelSpec(official.arch, nc, classes, size)
    assert not checkpoint.model.training
    loaded = checkpoint.model.state_dict()
    for key, value in state.items():
        assert torch.equal(loaded[key], value), key


@pytest.fixture(scope="module", params=sorted(OFFICIAL))
def official_model(request):
    official = OFFICIAL[request.param]
    model = build_model(ModelSpec(official.arch, 3, 10, 64))
    return model, official.layout(3, 10, 64)


def _zeros(layout: Layout) -> dict[str, torch.Tensor]:
    return {k: torch.zeros(shape, dtype=torch.long if k.endswith("num_batches_tracked") else torch.float32)
            for k, shape in layout.items()}


def test_one_wrong_shape_is_refused_naming_the_key(official_model):
    model, layout = official_model
    key = [k for k, shape in layout.items() if len(shape) == 4][len(layout) // 20]
    state = _zeros(layout)
    state[key] = torch.zeros(state[key].shape[0] + 1, *state[key].shape[1:])
    with pytest.raises(SiftError, match="shape mismatch") as excinfo:
        load_state_strict(model, state, SOURCE)
    assert key in str(excinfo.value)


def test_one_missing_key_is_refused_naming_the_key(official_model):
    model, layout = official_model
    key = list(layout)[len(layout) // 2]
    state = _zeros(layout)
    del state[key]
    with pytest.raises(SiftError, match="missing") as excinfo:
        load_state_strict(model, state, SOURCE)
    assert key in str(excinfo.value)


def test_siftfunnel_layout_is_refused_by_its_twin():
    model = build_model(ModelSpec("plain-resnet18", 3, 10, 64))
    with pytest.raises(SiftError, match="do not fit plain-resnet18"):
        load_state_strict(model, _zeros(OFFICIAL["rn18_pv4"].layout(3, 10, 64)), SOURCE)


# -- the split -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("nc, size", [(1, 32), (3, 64)])
@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_split_is_exact_and_sized_as_documented(arch, nc, size):
    torch.manual_seed(0)
    model = build_model(ModelSpec(arch, nc, 10, size)).eval()
    channels, divisor = TRANSMITTED[arch]
    assert model.transmitted_shape() == (channels, size // divisor, size // divisor)

    x = torch.randn(2, nc, size, size)
    with torch.no_grad():
        z = model.edge(x)
        assert z.shape == (2, channels, size // divisor, size // divisor)
        assert torch.equal(model.cloud(z), model(x))
        assert model(x).shape == (2, 10)

    assert n_params(model.edge) == EDGE_PARAMS[arch] - (GREY_SAVING if nc == 1 else 0)
    edge_keys, cloud_keys = set(model.edge.state_dict()), set(model.cloud.state_dict())
    assert not edge_keys & cloud_keys
    dead = {k for k in model.state_dict() if k.startswith("layer1.")} if arch == "siftfunnel-resnet18" else set()
    assert edge_keys | cloud_keys | dead == set(model.state_dict())
    if nc == 3 and size == 64:
        assert n_params(model) == pytest.approx(TOTAL_PARAMS[arch], rel=5e-3)


def test_resnet_edge_never_runs_the_dead_layer1():
    torch.manual_seed(0)
    model = build_model(ModelSpec("siftfunnel-resnet18", 3, 10, 32)).eval()
    layer1 = model.layer1
    assert n_params(layer1) == DEAD_LAYER1_PARAMS
    assert not any(k.startswith("layer1.") for k in model.edge.state_dict())
    assert not any(k.startswith("layer1.") for k in model.cloud.state_dict())

    calls = []
    handle = layer1.register_forward_pre_hook(lambda *_: calls.append(1))
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        z, logits = model.forward_with_features(x)
        for p in layer1.parameters():
            p.add_(torch.randn_like(p))
        for name, b in layer1.named_buffers():
            if b.is_floating_point():
                b.add_(1.0)
        z2, logits2 = model.forward_with_features(x)
    handle.remove()
    assert calls == []
    assert torch.equal(z, z2)
    assert torch.equal(logits, logits2)


def test_plain_vgg_cut_keeps_official_feature_indices():
    model = build_model(ModelSpec("plain-vgg16bn", 3, 10, 32))
    edge_keys = {k.split(".")[1] for k in model.edge.state_dict()}
    cloud_keys = {k.split(".")[1] for k in model.cloud.state_dict() if k.startswith("features.")}
    assert max(map(int, edge_keys)) < 14 <= min(map(int, cloud_keys))
    # The classifier's `features` is the union of both halves, the same layer objects.
    assert model.features[0] is model.edge.features[0]
    assert model.features[-1] is model.cloud.features[-1]


def test_train_mode_reaches_both_halves():
    model = build_model(ModelSpec("siftfunnel-vgg16bn", 3, 10, 32))
    model.train()
    assert model.edge.training and model.cloud.training and model.features.training
    model.eval()
    assert not model.edge.training and not model.cloud.training and not model.conv1[1].training


# -- other widths and sizes of the official classes -------------------------------------------------

@pytest.mark.parametrize("name, ndf, size", [("pv4_classifier_4", 32, 64), ("pv4_classifier_4", 96, 32),
                                             ("Classifier_4", 32, 32), ("Classifier_4", 16, 64)])
def test_official_cnn_of_another_width_loads_with_its_width_read_from_the_weights(tmp_path, name, ndf, size):
    official = OFFICIAL[name]
    state = fake_state(official.layout(3, 10, size, ndf=ndf))
    path = tmp_path / f"{name}-ndf{ndf}.pth"
    torch.save({"epoch": 101, "model": state, "best_cl_acc": 71.5}, path)
    checkpoint = load_checkpoint(path, arch=official.arch)
    assert checkpoint.spec == ModelSpec(official.arch, 3, 10, size, width=ndf)
    loaded = checkpoint.model.state_dict()
    assert loaded.keys() == state.keys()
    for key, value in state.items():
        assert torch.equal(loaded[key], value), key
    with torch.no_grad():
        assert checkpoint.model(torch.zeros(2, 3, size, size)).shape == (2, 10)


def test_a_width_is_refused_where_the_official_class_has_none():
    with pytest.raises(SiftError, match="siftfunnel-resnet18 has no width option"):
        build_model(ModelSpec("siftfunnel-resnet18", 3, 10, 64, width=32))
    with pytest.raises(SiftError, match="width .ndf. 8 is not supported"):
        build_model(ModelSpec("siftfunnel-cnn", 3, 10, 32, width=8))


@pytest.mark.parametrize("name", ["rn18_pv4", "vgg16_bn_pv4", "rn18", "vgg16_bn"])
def test_official_vgg_and_resnet_at_32_are_refused_as_the_official_model_cannot_run_there(tmp_path, name):
    official = OFFICIAL[name]
    # what the official class builds at img_size=32: a head with zero input features
    layout = official.layout(3, 10, 32)
    assert any(len(shape) == 2 and shape[1] == 0 for shape in layout.values())
    path = tmp_path / f"{name}-32.pth"
    torch.save({"model": fake_state(layout)}, path)
    with pytest.raises(SiftError, match=r"official .* cannot run at input size 32: its head is .* = 0 features wide"):
        load_checkpoint(path, arch=official.arch)
    # 64x64 official weights asked for at 32: the same reason, and what to do
    path64 = tmp_path / f"{name}-64.pth"
    torch.save(fake_state(official.layout(3, 10, 64)), path64)
    with pytest.raises(SiftError, match=r"cannot run at input size 32.*drop --input-size"):
        load_checkpoint(path64, arch=official.arch, input_size=32)
    assert load_checkpoint(path64, arch=official.arch).spec.input_size == 64


# -- the same through the command line: exit codes and one-line messages ------------------------------

def test_cli_reads_the_width_and_refuses_official_vgg_resnet_at_32(tmp_path):
    from typer.testing import CliRunner

    from sift_deploy.cli import app

    runner = CliRunner()
    ndf32 = tmp_path / "pv4-ndf32.pth"
    torch.save({"model": fake_state(OFFICIAL["pv4_classifier_4"].layout(3, 10, 64, ndf=32))}, ndf32)
    result = runner.invoke(app, ["inspect", str(ndf32), "--arch", "siftfunnel-cnn", "--json"])
    assert result.exit_code == 0, result.output
    import json

    model = json.loads(result.stdout)["model"]
    assert (model["width"], model["input_size"], model["in_channels"]) == (32, 64, 3)

    vgg32 = tmp_path / "vgg-32.pth"
    torch.save({"model": fake_state(OFFICIAL["vgg16_bn_pv4"].layout(3, 10, 32))}, vgg32)
    for command in (["export", str(vgg32), "-o", str(tmp_path / "b")], ["convert", str(vgg32), "-o", str(tmp_path / "c.safetensors")]):
        assert_one_line_error(runner.invoke(app, [*command, "--arch", "siftfunnel-vgg16bn"]),
                        "official vgg16_bn_pv4 cannot run at input size 32", "zero-width head")
    rn64 = tmp_path / "rn18-64.pth"
    torch.save(fake_state(OFFICIAL["rn18_pv4"].layout(1, 2, 64)), rn64)
    assert_one_line_error(runner.invoke(app, ["export", str(rn64), "--arch", "siftfunnel-resnet18", "--input-size", "32",
                                        "-o", str(tmp_path / "b")]),
                    "official rn18_pv4 cannot run at input size 32", "drop --input-size")
    # 64 weights asked for at 32 by a CNN (which runs at both): the size the weights are for is named
    cnn64 = tmp_path / "cnn-64.pth"
    torch.save(fake_state(OFFICIAL["pv4_classifier_4"].layout(1, 10, 64)), cnn64)
    assert_one_line_error(runner.invoke(app, ["convert", str(cnn64), "--arch", "siftfunnel-cnn", "--input-size", "32",
                                        "-o", str(tmp_path / "c.safetensors")]),
                    "for input size 64, not 32", "--input-size 64")


def test_check_passes_on_no_advice_naming_options_it_lacks(tmp_path):
    """check reads architecture and input size from the bundle: the loader's advice to pass --input-size (or
    --arch) would name options check does not have, so check's message leaves it out and keeps the fact."""
    from sift_deploy.check.context import without_options_check_lacks

    cnn64 = tmp_path / "cnn-64.pth"
    torch.save(fake_state(OFFICIAL["pv4_classifier_4"].layout(1, 10, 64)), cnn64)
    vgg32 = tmp_path / "vgg-32.pth"
    torch.save({"model": fake_state(OFFICIAL["vgg16_bn_pv4"].layout(3, 10, 64))}, vgg32)
    for path, arch, fact in ((cnn64, "siftfunnel-cnn", "for input size 64, not 32"),
                             (vgg32, "siftfunnel-vgg16bn", "cannot run at input size 32")):
        with pytest.raises(SiftError) as raised:
            load_checkpoint(path, arch=arch, input_size=32)
        assert "--input-size" in str(raised.value)
        reason = without_options_check_lacks(str(raised.value))
        assert fact in reason and "--input-size" not in reason and "--arch" not in reason
