"""Execution backends: one module per engine, one interface, one registry."""
