"""Pure domain: states, transitions and value types (standard library only)."""
