"""Benchmarks (`make bench`): they print figures; they are never timed assertions in tests."""
