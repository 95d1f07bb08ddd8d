"""Data: readers, deterministic splits, preprocessing and the committed calibration set."""
