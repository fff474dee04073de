"""What the worker does with runs: claim, stage, dispatch, sync, watchdog."""
