"""Vitrail benchmarks: ``python -m benchmarks <name> --help``."""
