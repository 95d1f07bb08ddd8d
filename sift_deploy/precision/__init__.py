"""Mixed precision chosen by measurement: `export --precision auto`.

layers (each backend's `quantizable_layers` / `int8_layers` option) -> evaluate.py (one candidate
as a real artifact through the backend's runner: accuracy, leakage probe, latency, bytes; cached)
-> search.py (greedy revert-to-float with step-back under an accuracy and a leakage bound) ->
pareto.py (front + PNG) -> run.py (what export calls; the manifest's `precision_search`).
"""
