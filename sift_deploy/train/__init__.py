"""Training: the SiftFunnel objective and the loop."""
