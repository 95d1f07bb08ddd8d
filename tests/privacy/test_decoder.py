"""The inverse-decoder attack: shapes it adapts to, seeding, and a tiny real-data run that learns."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sift_deploy.errors import SiftError
from sift_deploy.privacy.decoder import InverseDecoder, cosine_to_zero, reconstruct, train_decoder
from sift_deploy.privacy.metrics import no_information_reconstruction, per_image_mse


@pytest.mark.parametrize("feature_shape, image_shape", [
    ((12, 8, 8), (1, 32, 32)),  # SiftFunnel CNN at 32x32
    ((128, 8, 8), (1, 32, 32)),  # its unprotected twin
    ((12, 16, 16), (3, 64, 64)),  # SiftFunnel CNN at 64x64, RGB
    ((6, 32, 32), (3, 64, 64)),  # SiftFunnel ResNet-18
    ((4, 16, 16), (3, 64, 64)),  # SiftFunnel VGG-16
    ((5, 6, 6), (1, 32, 32)),  # a side that is not a power-of-two fraction: resized at the end
    ((10, 1, 1), (1, 32, 32)),  # flat features
])
def test_decoder_adapts_to_feature_shape(feature_shape, image_shape):
    decoder = InverseDecoder(feature_shape, image_shape, width=32).eval()
    with torch.inference_mode():
        out = decoder(torch.randn(2, *feature_shape))
    assert out.shape == (2, *image_shape)
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0


def test_reference_decoder_is_the_anchor_common_decoder():
    """Width 128 on 12x8x8 -> 1x32x32: ConvT3x3(12->128) -> ConvT4s2(128->64) -> ConvT4s2(64->32) -> Conv3x3(32->1)."""
    decoder = InverseDecoder((12, 8, 8), (1, 32, 32), width=128)
    convs = [(m.in_channels, m.out_channels, m.kernel_size, m.stride) for m in decoder.modules()
             if isinstance(m, (torch.nn.ConvTranspose2d, torch.nn.Conv2d))]
    assert convs == [(12, 128, (3, 3), (1, 1)), (128, 64, (4, 4), (2, 2)), (64, 32, (4, 4), (2, 2)), (32, 1, (3, 3), (1, 1))]
    assert not decoder.resize


def test_cosine_schedule_decays_to_zero():
    assert cosine_to_zero(0, 10) == 1.0
    assert cosine_to_zero(5, 10) == pytest.approx(0.5)
    assert cosine_to_zero(10, 10) == pytest.approx(0.0)


def test_tiny_real_run_learns_and_is_seeded(small_real):
    aux_z, aux_x = small_real["aux_z"], small_real["aux_x"]
    test_z, test_x = small_real["test_z"], small_real["test_x"]
    reports = []
    decoder = train_decoder(aux_z, aux_x, seed=0, epochs=3, width=32, batch_size=64, on_step=reports.append)
    recon = reconstruct(decoder, test_z)
    assert recon.shape == test_x.shape and recon.dtype == np.float32
    # it learned: better than the best guess without features (the aux mean image)
    baseline = no_information_reconstruction(aux_x, len(test_x))
    assert per_image_mse(test_x, recon).mean() < 0.8 * per_image_mse(test_x, baseline).mean()
    # progress: one report per optimiser step, numbered 1..total
    assert [r.step for r in reports] == list(range(1, len(reports) + 1))
    assert reports[-1].total == len(reports) == decoder.record.steps and reports[0].task == "decoder"
    record = decoder.record.as_dict()
    assert record["seed"] == 0 and record["epochs"] == 3 and record["train_pairs"] == 600
    # seeded: the same seed gives the same decoder, another seed another one
    again = reconstruct(train_decoder(aux_z, aux_x, seed=0, epochs=1, width=32, batch_size=64), test_z[:20])
    same = reconstruct(train_decoder(aux_z, aux_x, seed=0, epochs=1, width=32, batch_size=64), test_z[:20])
    other = reconstruct(train_decoder(aux_z, aux_x, seed=1, epochs=1, width=32, batch_size=64), test_z[:20])
    assert np.array_equal(again, same)
    assert not np.allclose(again, other)


def test_feature_scale_does_not_matter(small_real):
    """Raw integer features (a quantized runtime's output) train like dequantized ones: inputs are RMS-scaled."""
    z, x = small_real["aux_z"][:128], small_real["aux_x"][:128]
    a = reconstruct(train_decoder(z, x, seed=3, epochs=1, width=16, batch_size=64), z[:8])
    b = reconstruct(train_decoder(z * 50.0, x, seed=3, epochs=1, width=16, batch_size=64), z[:8] * 50.0)
    assert np.allclose(a, b, atol=1e-4)


def test_user_errors():
    z, x = np.zeros((10, 4, 4, 4), np.float32), np.zeros((10, 1, 16, 16), np.float32)
    with pytest.raises(SiftError, match="different numbers"):
        train_decoder(z[:9], x, seed=0, epochs=1)
    with pytest.raises(SiftError, match=r"\[0, 1\]"):
        train_decoder(z, x + 2.0, seed=0, epochs=1)
    with pytest.raises(SiftError, match="epochs"):
        train_decoder(z, x, seed=0, epochs=0)
    z_nan = z.copy()
    z_nan[0, 0, 0, 0] = np.nan
    with pytest.raises(SiftError, match="NaN"):
        train_decoder(z_nan, x, seed=0, epochs=1)
    decoder = train_decoder(z, x, seed=0, epochs=1, width=16)
    with pytest.raises(SiftError, match="same split point"):
        reconstruct(decoder, np.zeros((3, 8, 4, 4), np.float32))


def test_warm_start_copies_and_leaves_the_source_alone(small_real):
    z, x = small_real["aux_z"][:128], small_real["aux_x"][:128]
    base = train_decoder(z, x, seed=0, epochs=1, width=16, batch_size=64)
    before = {k: v.clone() for k, v in base.state_dict().items()}
    tuned = train_decoder(z, x, seed=1, epochs=1, width=16, batch_size=64, init=base)
    assert all(torch.equal(before[k], v) for k, v in base.state_dict().items())
    assert "warm start" in tuned.record.schedule
    # a warm start changes the result compared with a fresh decoder under the same seed
    fresh = train_decoder(z, x, seed=1, epochs=1, width=16, batch_size=64)
    assert not np.allclose(reconstruct(tuned, z[:8]), reconstruct(fresh, z[:8]))
    with pytest.raises(SiftError, match="another width"):
        train_decoder(z, x, seed=0, epochs=1, width=32, batch_size=64, init=base)
    with pytest.raises(SiftError, match="cannot warm-start"):
        train_decoder(z[:, :64], x, seed=0, epochs=1, width=16, batch_size=64, init=base)
