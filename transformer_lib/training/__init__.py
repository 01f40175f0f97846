"""Training: the trainer, checkpoints and the evaluation metrics (above model and data)."""
