"""Requests (seed 001): one submission expanded into many runs, and their request-level steps."""
