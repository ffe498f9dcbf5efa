"""Evaluation beyond one job: shards over a job matrix, and a Dask cluster."""
