"""Many small files: tuspipe.upload_many against a loop of tuspy uploads, on the same server.

    python -m benchmarks.many [--files 500] [--size-kib 16] [--url URL] [--concurrency 8]

Both upload the same files to the same server (the Node server by default), one after the
other, and the figure is files per second. Every upload is checked: tuspipe's outcomes must
all be ok and tuspy's uploaders must end at the file size.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import tuspipe

METADATA = {"filename": "small.bin", "filetype": "application/octet-stream"}


def _tuspipe(paths: list[Path], url: str, concurrency: int) -> float:
    started = time.perf_counter()
    outcomes = tuspipe.upload_many(
        paths, url, concurrency=concurrency, metadata=METADATA, journal=None
    )
    seconds = time.perf_counter() - started
    failed = [outcome for outcome in outcomes if not outcome.ok]
    if failed:
        raise RuntimeError(f"{len(failed)} tuspipe uploads failed: {failed[0].error}")
    return seconds


def _tuspy(paths: list[Path], url: str) -> float:
    from tusclient import client

    tus = client.TusClient(url)
    started = time.perf_counter()
    for path in paths:
        uploader = tus.uploader(str(path), metadata=METADATA)
        uploader.upload()
        if uploader.offset != path.stat().st_size:
            raise RuntimeError(f"tuspy stopped at {uploader.offset} for {path}")
    return time.perf_counter() - started


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--files", type=int, default=500)
    parser.add_argument("--size-kib", type=int, default=16)
    parser.add_argument("--url", default="http://127.0.0.1:1080/files/")
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="tuspipe-many-") as scratch:
        paths = []
        for index in range(args.files):
            path = Path(scratch) / f"small-{index}.bin"
            path.write_bytes(os.urandom(args.size_kib * 1024))
            paths.append(path)
        tuspy_seconds = _tuspy(paths, args.url)
        tuspipe_seconds = _tuspipe(paths, args.url, args.concurrency)
    tuspipe_rate = args.files / tuspipe_seconds
    tuspy_rate = args.files / tuspy_seconds
    print(f"{args.files} files of {args.size_kib} KiB to {args.url}")
    print(f"  tuspipe.upload_many (concurrency {args.concurrency}): {tuspipe_rate:7.0f} files/s")
    print(f"  tuspy 1.1.0, one upload after another:      {tuspy_rate:7.0f} files/s")
    print(f"  tuspipe / tuspy: {tuspipe_rate / tuspy_rate:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
