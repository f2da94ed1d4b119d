"""Benchmarks of the streaming clients against a local feed (``python -m benchmarks.run``)."""
