"""The training loop: SiftFunnel objective, NoPeek (cross-entropy + dCor^2 at the cut, a baseline) or
plain cross-entropy (the unprotected twin, the autoencoder baseline), Adam with a per-step cosine
learning-rate decay, random horizontal flips when asked for (off by default: a mirrored digit or letter
is another symbol), seeded throughout."""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..data.preprocess import model_input
from ..data.splits import Split
from ..models import ModelSpec, SplitClassifier, build_model
from .objective import ObjectiveWeights, nopeek_loss, plain_loss, siftfunnel_loss
from .resume import capture, load_state, restore, save_state


# Each defense -> the ObjectiveWeights it uses; the recipe records only those.
DEFENSE_WEIGHTS: dict[str, tuple[str, ...]] = {
    "siftfunnel": ("alpha", "beta", "gamma", "l1", "smoothing"),
    "nopeek": ("beta",),
    "none": (),
}


@dataclass
class Recipe:
    arch: str = "siftfunnel-cnn"
    # "siftfunnel": the SiftFunnel objective; "nopeek": cross-entropy + beta * dCor^2(x, z);
    # "none": plain cross-entropy, no privacy terms
    defense: str = "siftfunnel"
    epochs: float = 8.0
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.0
    flip: bool = False
    seed: int = 0
    threads: int = 0  # 0: torch's default
    weights: ObjectiveWeights = field(default_factory=ObjectiveWeights)
    max_steps: int | None = None  # for smoke tests

    def as_dict(self) -> dict:
        d = asdict(self)
        used = DEFENSE_WEIGHTS.get(self.defense, tuple(d["weights"]))
        if not used:
            d.pop("weights")
        else:
            d["weights"] = {k: d["weights"][k] for k in used}
        return d


@dataclass
class StepReport:
    step: int
    total_steps: int
    epoch: float
    loss: float
    terms: dict[str, float]
    train_acc: float


def evaluate(model: SplitClassifier, inputs: np.ndarray, labels: np.ndarray, batch: int = 500) -> float:
    model.eval()
    correct = 0
    with torch.inference_mode():
        for i in range(0, len(labels), batch):
            logits = model(torch.from_numpy(inputs[i:i + batch]))
            correct += int((logits.argmax(1).numpy() == labels[i:i + batch]).sum())
    return correct / len(labels)


def train_model(
    recipe: Recipe,
    spec: ModelSpec,
    train: Split,
    mean: float | tuple[float, ...],
    std: float | tuple[float, ...],
    on_step: Callable[[StepReport], None] | None = None,
    state_path: Path | None = None,
    resume: bool = False,
    identity: str = "",
) -> tuple[SplitClassifier, dict]:
    """Train; with `state_path`, write a resumable state there at the end of every epoch but the last.
    `resume` continues from that state (same weights at the end as an uninterrupted run)."""
    if recipe.threads:
        torch.set_num_threads(recipe.threads)
    torch.manual_seed(recipe.seed)
    rng = np.random.default_rng(recipe.seed)
    model = build_model(spec)
    inputs = torch.from_numpy(model_input(train.images, spec.input_size, mean, std))
    labels = torch.from_numpy(train.labels)
    steps_per_epoch = math.ceil(len(labels) / recipe.batch_size)
    total_steps = max(1, int(round(recipe.epochs * steps_per_epoch)))
    if recipe.max_steps is not None:
        total_steps = min(total_steps, recipe.max_steps)
    optimizer = torch.optim.Adam(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 0.5 * (1 + math.cos(math.pi * s / total_steps)))
    step, seconds_before = 0, 0.0
    if resume and state_path is not None and state_path.exists():
        state = load_state(state_path, identity)
        step, seconds_before = restore(state, model, optimizer, schedule, rng), state.seconds
    resumed_from = step
    model.train()
    started, correct_window, seen_window = time.perf_counter(), 0, 0
    loss, terms = torch.tensor(float("nan")), {}
    while step < total_steps:
        order = torch.from_numpy(rng.permutation(len(labels)))
        for start in range(0, len(order), recipe.batch_size):
            if step >= total_steps:
                break
            idx = order[start:start + recipe.batch_size]
            x, y = inputs[idx], labels[idx]
            if recipe.flip:
                flip = torch.from_numpy(rng.random(len(idx)) < 0.5)
                x = torch.where(flip[:, None, None, None], x.flip(-1), x)
            z, logits = model.forward_with_features(x)
            if recipe.defense == "siftfunnel":
                loss, terms = siftfunnel_loss(logits, y, x, z, recipe.weights)
            elif recipe.defense == "nopeek":
                loss, terms = nopeek_loss(logits, y, x, z, recipe.weights.beta)
            else:
                loss, terms = plain_loss(logits, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            step += 1
            correct_window += int((logits.argmax(1) == y).sum())
            seen_window += len(y)
            if on_step is not None:
                on_step(StepReport(step, total_steps, step / steps_per_epoch, loss.item(), terms,
                                   correct_window / seen_window))
            if step % steps_per_epoch == 0:
                correct_window = seen_window = 0
                if state_path is not None and step < total_steps:
                    save_state(state_path, capture(step, model, optimizer, schedule, rng,
                                                   seconds_before + time.perf_counter() - started, identity))
    model.eval()
    stats = {"steps": step, "epochs": step / steps_per_epoch,
             "train_seconds": round(seconds_before + time.perf_counter() - started, 1),
             "final_loss": loss.item(), "final_terms": terms}
    if resumed_from:
        stats["resumed_from_step"] = resumed_from
    return model, stats
