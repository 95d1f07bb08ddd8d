"""`sift-deploy check BUNDLE`: accuracy and model-inversion leakage of the deployed artifact
against the float model, on the same data in the same run, turned into a verdict by the bounds.

One module per stage, each runnable alone on a CheckContext (context.py):
- accuracy: top-1 of float, deployed, deployed with int8 on the wire and the twin; agreement;
- decoder: the black-box decoder attack on float and deployed with the same seed list (the gate
  compares the two paired per seed and per image), the transfer attack, label-only and
  no-information baselines;
- twin_strength: the same attack against the unprotected twin (attack strength, gated);
- information: MINE I(x; z) with the cross-critic rule, dCor(x, z), non-zero count of z;
- whitebox: the white-box optimisation attack on the float edge, its fake-quantised copy and the
  twin (reported).
gate.py runs them in order, composes the report (documents/check_report.py) and evaluates the bounds.
"""

from ..documents.check_report import SCHEMA_VERSION
from .context import CheckContext, Progress, Side
from .gate import STAGES, CheckInterrupted, compose, evaluate_bounds, run_check, run_stages

__all__ = ["CheckContext", "CheckInterrupted", "Progress", "SCHEMA_VERSION", "STAGES", "Side", "compose",
           "evaluate_bounds", "run_check", "run_stages"]
