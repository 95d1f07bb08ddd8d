"""The fast leakage probe of the precision search: how well a small inverse decoder reconstructs
private images from a candidate's features, plus dCor(x, z).

`check` trains full decoders per side and seed (minutes); a search evaluates dozens of candidates,
so the probe trains one small decoder once, on the float edge's aux pairs (`fit`), and per
candidate fine-tunes a copy for `tune_epochs` on that candidate's own aux pairs (the attacker
queries the deployed artifact) with a fixed seed, then scores reconstructions of the test images.
The float side is measured the same way (`measure` on the float features), so candidate minus float
is a paired difference with the same decoder start and batch order: decoder-seed noise largely
cancels. Any object with `fit(z_aux)` and `measure(z_aux, z_test) -> {"ssim": ..., ...}` can stand
in for it (the search only reads "ssim").
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ..privacy.decoder import reconstruct, train_decoder
from ..privacy.dependence import distance_correlation
from ..privacy.metrics import score_images


@dataclass(frozen=True)
class ProbeSettings:
    width: int = 32
    fit_epochs: int = 3
    tune_epochs: int = 1
    batch_size: int = 32
    dcor_samples: int = 500
    seed: int = 0


class DecoderProbe:
    """SSIM / MSE of a small fine-tuned inverse decoder on the test images, and dCor(x_test, z_test)."""

    name = "inverse decoder (fine-tuned per candidate) + dCor"

    def __init__(self, x_aux: np.ndarray, x_test: np.ndarray, settings: ProbeSettings = ProbeSettings()):
        self.x_aux = np.ascontiguousarray(x_aux, dtype=np.float32)  # [0, 1] images at model size
        self.x_test = np.ascontiguousarray(x_test, dtype=np.float32)
        self.settings = settings
        self._base = None

    def fit(self, z_aux_float: np.ndarray) -> None:
        s = self.settings
        self._base = train_decoder(z_aux_float, self.x_aux, seed=s.seed, epochs=s.fit_epochs, width=s.width,
                                   batch_size=s.batch_size)

    def measure(self, z_aux: np.ndarray, z_test: np.ndarray) -> dict:
        if self._base is None:
            raise RuntimeError("DecoderProbe.measure before fit")
        s = self.settings
        decoder = train_decoder(z_aux, self.x_aux, seed=s.seed + 1, epochs=s.tune_epochs, width=s.width,
                                batch_size=s.batch_size, init=self._base)
        scores = score_images(self.x_test, reconstruct(decoder, z_test))
        return {"ssim": float(scores.metric("ssim").mean()), "mse": float(scores.metric("mse").mean()),
                "dcor": float(distance_correlation(self.x_test, z_test, max_samples=s.dcor_samples, seed=s.seed))}

    def describe(self) -> dict:
        return {"name": self.name, **asdict(self.settings), "aux_pairs": int(len(self.x_aux)),
                "test_images": int(len(self.x_test))}
