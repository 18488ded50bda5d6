"""``python -m benchmarks``: the benchmark harness (see :mod:`benchmarks.harness`)."""

from __future__ import annotations

import sys

from benchmarks.harness import main

__all__: list[str] = []

if __name__ == "__main__":
    sys.exit(main())
