"""The daemon: claims queued work, dispatches it, keeps state in step, cancels."""
