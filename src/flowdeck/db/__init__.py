"""Persistence: tables, the engine, repositories and migrations."""
