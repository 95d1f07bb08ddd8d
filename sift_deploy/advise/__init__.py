"""`sift-deploy advise`: export every candidate cut of a checkpoint for a target, measure each one's
latency, bytes, accuracy and leakage with the same exporters, runners, timing loop and attack code
as export / bench / check, and recommend the cut with the lowest end-to-end latency within a
leakage bound.

candidates.py  which cuts to try
measure.py     one exported cut -> its figures
recommend.py   Pareto front and the choice
render.py      table, JSON and PNG
run.py         the whole run, as an AdviseReport (documents/advise_report.py)
"""

from .run import AdviseOptions, run_advise

__all__ = ["AdviseOptions", "run_advise"]
