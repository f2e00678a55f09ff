"""Benchmark suites of facegcn_tf, run by `python scripts/benchmark.py`.

Each suite is a module here with `TITLE` and `run(quick: bool) -> [(metric, value, unit), ...]`;
modules whose names start with `_` are helpers, not suites.
"""
