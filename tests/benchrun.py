"""What the tests of the benchmark harness share: running ``python -m benchmarks`` as a user
does, and reading the CSVs it writes.

Used by ``test_benchmarks`` (the harness of issue 7) and ``test_benchmarks_small`` (the
small-things rows of issue 15).
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

__all__ = ["ROOT", "read_csv", "run_harness"]

ROOT = Path(__file__).resolve().parent.parent


def run_harness(*arguments: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``python -m benchmarks ARGUMENTS`` in a subprocess, this checkout first on the path."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    return subprocess.run(
        [sys.executable, "-m", "benchmarks", *arguments],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=str(ROOT),
        env=env,
        check=False,
    )


def read_csv(path: Path) -> list[dict[str, str]]:
    """The CSV's lines as dictionaries by column name."""
    with open(path, newline="", encoding="utf-8") as source:
        return list(csv.DictReader(source))
