"""Runs as the doors see them: submit, read, cancel, rerun, results, deletion, RO-Crate."""
