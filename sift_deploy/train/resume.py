"""A training run's resumable state, written at the end of every epoch so that `train --resume`
continues where an interrupted run stopped and ends with the same weights as an uninterrupted one.

The state is model, optimiser and schedule state, both random generators and the step count, in one
`torch.save` file read back with `weights_only=True` (tensors, numbers, strings and containers:
nothing in it can run code). It records the recipe and data it belongs to; a state written for
another recipe, model or data set is refused rather than silently mixed in.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import SiftError
from ..fileio import atomic_file

STATE_VERSION = 1


def state_path_for(output: Path) -> Path:
    output = Path(output)
    return output.with_name(output.name.removesuffix(".safetensors") + ".resume.pt")


@dataclass
class TrainingState:
    step: int
    model: dict
    optimizer: dict
    schedule: dict
    numpy_rng: dict
    torch_rng: torch.Tensor
    seconds: float  # training time spent before this state was written
    identity: str  # canonical JSON of what the run is: recipe, model spec, data, normalisation


def run_identity(recipe: dict, spec: dict, data: dict, normalization: dict) -> str:
    """What must match for a state to be resumed: everything that decides the weights, except the
    thread count (it changes only the speed)."""
    recipe = {k: v for k, v in recipe.items() if k != "threads"}
    return json.dumps({"recipe": recipe, "spec": spec, "data": data, "normalization": normalization},
                      sort_keys=True, default=str)


def save_state(path: Path, state: TrainingState) -> None:
    payload = {
        "version": STATE_VERSION,
        "step": state.step,
        "model": state.model,
        "optimizer": state.optimizer,
        "schedule": state.schedule,
        "numpy_rng": json.dumps(state.numpy_rng),  # its 128-bit integers do not fit a tensor
        "torch_rng": state.torch_rng,
        "seconds": float(state.seconds),
        "identity": state.identity,
    }
    with atomic_file(path, force=True) as tmp:
        torch.save(payload, str(tmp))


def load_state(path: Path, identity: str) -> TrainingState:
    try:
        payload = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - a truncated file, a foreign pickle: all get the same advice
        raise SiftError(f"{path} is not a resumable training state sift-deploy wrote ({type(exc).__name__}); "
                        f"delete it to train from the start") from None
    if not isinstance(payload, dict) or payload.get("version") != STATE_VERSION:
        raise SiftError(f"{path} is not a resumable training state of this version; delete it to train from the start")
    if payload["identity"] != identity:
        raise SiftError(f"{path} belongs to another training run (recipe, model or data differ); "
                        f"train with the options it was written with, or delete it to start again")
    return TrainingState(step=int(payload["step"]), model=payload["model"], optimizer=payload["optimizer"],
                         schedule=payload["schedule"], numpy_rng=json.loads(payload["numpy_rng"]),
                         torch_rng=payload["torch_rng"], seconds=float(payload["seconds"]),
                         identity=payload["identity"])


def capture(step: int, model: torch.nn.Module, optimizer, schedule, rng: np.random.Generator, seconds: float,
            identity: str) -> TrainingState:
    return TrainingState(step=step, model=model.state_dict(), optimizer=optimizer.state_dict(),
                         schedule=schedule.state_dict(), numpy_rng=rng.bit_generator.state,
                         torch_rng=torch.get_rng_state(), seconds=seconds, identity=identity)


def restore(state: TrainingState, model: torch.nn.Module, optimizer, schedule, rng: np.random.Generator) -> int:
    model.load_state_dict(state.model)
    optimizer.load_state_dict(state.optimizer)
    schedule.load_state_dict(state.schedule)
    rng.bit_generator.state = state.numpy_rng
    torch.set_rng_state(state.torch_rng)
    return state.step
