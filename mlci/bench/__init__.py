"""Latency and throughput benchmarks: scenarios, timers, statistics and devices."""
