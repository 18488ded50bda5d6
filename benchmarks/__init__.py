"""tuspipe's benchmarks: the harness (``python -m benchmarks``), its discard sink, smaller ones."""
