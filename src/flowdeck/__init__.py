"""flowdeck: a workflow-run service for bioinformatics groups."""

__version__ = "0.1.0"
