"""Benchmark suites (benchmarks/suites/*.toml) and performance benchmarks (benchmarks/perf/)."""
