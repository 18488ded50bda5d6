"""What the resumption journal costs: uploads with the journal on and off, side by side.

    python -m benchmarks.journal [--size-mib 512] [--chunk-kib 1024] [--repeat 3]

Small chunks mean many acknowledgements, each of which the journal records, so they show its
cost best. Both settings upload the same file to the local discard sink, interleaved, in this
process; the figure is the median MB/s of each and their ratio.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import tuspipe
from benchmarks.sink import SinkProcess

MiB = 1024 * 1024


def _upload_seconds(path: Path, url: str, chunk_size: int, journal: Path | None) -> float:
    started = time.perf_counter()
    result = tuspipe.upload(path, url, chunk_size=chunk_size, journal=journal)
    seconds = time.perf_counter() - started
    if not result.complete:
        raise RuntimeError(f"the upload stopped at {result.offset} of {result.size}")
    return seconds


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size-mib", type=int, default=512)
    parser.add_argument("--chunk-kib", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    size = args.size_mib * MiB
    chunk_size = args.chunk_kib * 1024
    with tempfile.TemporaryDirectory(prefix="tuspipe-journal-bench-") as scratch:
        path = Path(scratch) / "source.bin"
        with path.open("wb") as stream:
            for _ in range(args.size_mib):
                stream.write(os.urandom(MiB))
        journal = Path(scratch) / "journal"
        seconds: dict[str, list[float]] = {"journal on": [], "journal off": []}
        with SinkProcess() as sink:
            for _ in range(args.repeat):
                seconds["journal off"].append(_upload_seconds(path, sink.url, chunk_size, None))
                seconds["journal on"].append(_upload_seconds(path, sink.url, chunk_size, journal))
        records = journal.stat().st_size
    print(
        f"{args.size_mib} MiB in {args.chunk_kib} KiB chunks ({size // chunk_size} PATCHes), "
        f"median of {args.repeat}, local discard sink:"
    )
    rates = {}
    for setting, runs in seconds.items():
        rates[setting] = size / statistics.median(runs) / 1e6
        print(
            f"  {setting:<12} {rates[setting]:7.0f} MB/s   runs: "
            + ", ".join(f"{size / run / 1e6:.0f}" for run in runs)
        )
    print(
        f"  journal on / off: {rates['journal on'] / rates['journal off']:.3f}x "
        f"(journal file after the runs: {records} bytes)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
