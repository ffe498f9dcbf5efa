"""Metrics, intervals, slices and baseline comparison: pure computation on arrays."""
