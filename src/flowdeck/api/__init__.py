"""The HTTP service: the only layer that knows the web framework."""
