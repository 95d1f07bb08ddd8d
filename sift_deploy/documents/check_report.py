"""The report `sift-deploy check` writes (check.json), one model per stage section.

Field order is the key order of the written JSON. Some fields are named like Python types
("float", "twin"): this module therefore keeps its annotations evaluated at class creation, where
`float` still means the builtin.
"""

from typing import Literal, Optional

from .base import Document

SCHEMA_VERSION = 1


# --------------------------------------------------------------------------- header


class AttackBudgetRecord(Document):
    """The attack budget the check ran with (privacy.budget.AttackBudget)."""

    name: str
    aux_images: int
    test_images: int
    decoder_epochs: int
    decoder_width: int
    decoder_seeds: list[int]
    twin_seeds: list[int]
    decoder_batch: int
    decoder_lr: float
    decoder_pairing: Literal["independent", "branched"] = "independent"  # absent from reports before it existed
    mine_train_pairs: int
    mine_heldout_pairs: int
    mine_epochs: int
    mine_lr: float
    dcor_samples: int
    whitebox_images: int
    whitebox_steps: int
    whitebox_lr: float
    whitebox_tv_weight: float
    whitebox_relative: bool
    whitebox_project: bool
    bootstrap_resamples: int
    confidence: float


class SplitSizes(Document):
    train: int
    aux: int
    test: int


class DataRecord(Document):
    """The deterministic splits and how many of their images the attacks used."""

    seed: int
    aux_fraction: float
    sizes: SplitSizes
    source: str
    dataset: str
    test_fraction: Optional[float] = None
    aux_used: int
    test_used: int
    budget_cuts: list[str] = []
    warnings: list[str] = []


# --------------------------------------------------------------------------- accuracy stage


class AllZeroFeatures(Document):
    """Test images whose transmitted features are entirely zero (nothing reaches the cloud)."""

    float: int
    deployed: int


class AccuracySection(Document):
    images: int
    float: float
    deployed: float
    deployed_wire_int8: float
    top1_agreement: float
    twin: float
    drop_points: float
    wire_int8_drop_points: float
    all_zero_features: AllZeroFeatures


# --------------------------------------------------------------------------- decoder and twin-strength stages


class Interval(Document):
    """A mean with its bootstrap interval [low, high] at `level` over `n` images."""

    mean: float
    low: float
    high: float
    level: float
    n: int
    method: str


class ScoreInterval(Interval):
    """Mean of a per-image score with its bootstrap interval, and the mean per decoder seed."""

    per_seed: list[float]


class AttackScores(Document):
    """The decoder attack against one side, scored on the private test images."""

    ssim: ScoreInterval
    psnr: ScoreInterval
    mse: ScoreInterval


class PairedDifferenceRecord(Document):
    """deployed - float, paired by decoder seed and image; `upper` is what the gate reads."""

    mean: float
    low: float
    high: float
    level: float
    se: float
    seed_se: Optional[float]
    image_se: float
    df: float
    seeds: int
    images: int
    per_seed: list[float]
    method: str
    seeds_resolved: bool
    upper: float


class PairedDifferences(Document):
    ssim: PairedDifferenceRecord
    psnr: PairedDifferenceRecord


class Baselines(Document):
    label_only_ssim: float
    no_information_ssim: float


class DecoderSection(Document):
    """What the decoder stage measures: both sides, the transfer attack, the paired gate figures, baselines."""

    float: AttackScores
    deployed: AttackScores
    transfer: AttackScores
    paired: PairedDifferences
    baselines: Baselines


# the twin-strength stage's section is the same attack's scores against the unprotected twin
TwinStrengthSection = AttackScores


class AttackSection(Document):
    """report["attack"]: the decoder stage's figures with the twin-strength stage's under "twin"."""

    float: AttackScores
    deployed: AttackScores
    transfer: AttackScores
    paired: PairedDifferences
    twin: AttackScores
    baselines: Baselines


# --------------------------------------------------------------------------- information stage


class MineRecord(Document):
    mi_nats: float
    validation_nats: float
    best_epoch: int
    curve: list[float]
    seed: int
    epochs: int
    train_pairs: int
    validation_pairs: int
    test_pairs: int
    bias_correction: bool
    seconds: float
    estimator: str


class NonZeroRecord(Document):
    mean_count: float
    fraction: float
    entries: int
    all_zero_samples: int


class SideInformation(Document):
    mi_nats: float
    mi_own_critic_nats: float
    mine: MineRecord
    dcor: float
    nonzero: NonZeroRecord


class ComparedSideInformation(SideInformation):
    """Float and deployed: also scored by the other side's critic; mi_nats is the larger bound."""

    mi_other_critic_nats: float


class InformationSection(Document):
    float: ComparedSideInformation
    deployed: ComparedSideInformation
    twin: SideInformation


# --------------------------------------------------------------------------- white-box stage


class WhiteBoxRun(Document):
    steps: int
    lr: float
    momentum: float
    tv_weight: float
    batch_size: int
    seed: int
    images: int
    seconds: float
    relative: bool
    project: bool
    final_feature_mse: float


class WhiteBoxScores(Document):
    ssim: float
    psnr: float
    record: WhiteBoxRun


class WhiteBoxSection(Document):
    float: WhiteBoxScores
    fake_quantised: WhiteBoxScores
    twin: WhiteBoxScores


# --------------------------------------------------------------------------- verdict and report


class BoundResult(Document):
    name: str
    measured: float
    limit: float
    kind: Literal["max", "min"]
    passed: bool
    detail: str


class CheckReport(Document):
    """check.json. `reports` (where the files went) is only in the `--json` output of the command."""

    schema_version: Literal[1]
    tool_version: str
    bundle: str
    target: str
    backend: str
    precision: str
    checkpoint: str
    twin: str
    seed: int
    budget: AttackBudgetRecord
    data: DataRecord
    runtime: str
    accuracy: AccuracySection
    attack: AttackSection
    information: InformationSection
    whitebox: WhiteBoxSection
    bounds: list[BoundResult]
    passed: bool
    seconds: float
    reports: Optional[dict[str, str]] = None
