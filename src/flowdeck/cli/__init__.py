"""Command-line entry points: the server side (up, api, worker, sync) and the client."""
