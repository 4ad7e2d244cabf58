"""Training: data preparation, the loop, losses, schedules and checkpoints."""
