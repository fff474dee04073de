"""Use cases: what the API and the worker do, on the database and the backends, grouped by domain (docs/architecture.md)."""
