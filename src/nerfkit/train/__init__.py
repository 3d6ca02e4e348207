"""Training, checkpoints, metrics and evaluation."""
