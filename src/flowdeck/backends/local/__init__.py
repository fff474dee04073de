"""Running engines as local processes: the launcher, warm starts, the sandbox, containers, run files."""
