"""Files: atomic writes and checkpoints (no pickle anywhere)."""
