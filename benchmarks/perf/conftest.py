"""Performance benchmarks (pytest-benchmark). Run with `make perf`; compare runs with --benchmark-compare."""
