"""The pipeline catalog and what a run of a pipeline may say: parameters, references, tools."""
