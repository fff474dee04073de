"""Datasets: registered and uploaded input files."""
