"""The shared trainer pieces every application uses: options declared and checked
once (``options``), and the epoch loop with clipping, schedules, early stopping,
checkpoints with exact resume, metrics and progress (``trainer``)."""
