"""The README's end-to-end demo: upload a generated file to a real tus server and verify it.

Run through `bash tests/run.sh demo`, which installs everything and starts the Node tus server;
directly: `python -m tests.demo --url http://127.0.0.1:1080/files/ --data-dir DIR`.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

import tuspipe

MiB = 1024 * 1024


def _write_random_file(path: Path, size: int) -> str:
    """Fill `path` with `size` random bytes and return their sha256."""
    digest = hashlib.sha256()
    with path.open("wb") as stream:
        for start in range(0, size, 4 * MiB):
            block = os.urandom(min(4 * MiB, size - start))
            digest.update(block)
            stream.write(block)
    return digest.hexdigest()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while block := stream.read(4 * MiB):
            digest.update(block)
    return digest.hexdigest()


class _ProgressLine:
    """A one-line progress display: redrawn in place on a terminal, a line per 10% elsewhere."""

    def __init__(self) -> None:
        self._started = time.perf_counter()
        self._interactive = sys.stdout.isatty()
        self._last_decile = -1

    def __call__(self, acknowledged: int, total: int | None) -> None:
        assert total is not None  # the demo uploads a file: its size is known
        fraction = acknowledged / total if total else 1.0
        seconds = max(time.perf_counter() - self._started, 1e-9)
        bar = "#" * int(fraction * 40)
        line = (
            f"[{bar:<40}] {fraction:6.1%}  {acknowledged / MiB:7.1f} / {total / MiB:.1f} MiB"
            f"  {acknowledged / MiB / seconds:7.1f} MiB/s"
        )
        if self._interactive:
            print("\r" + line, end="", flush=True)
        elif int(fraction * 10) != self._last_decile:
            self._last_decile = int(fraction * 10)
            print(line, flush=True)

    def finish(self) -> None:
        if self._interactive:
            print()


# Inside the checkout, with the servers' files (ignored by git).
WORK_DIR = Path(__file__).resolve().parent / "servers" / ".tus-servers" / "demo"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True, help="the tus creation endpoint")
    parser.add_argument("--data-dir", required=True, type=Path, help="where the server stores")
    parser.add_argument("--size-mib", type=int, default=256, help="file size (default 256 MiB)")
    parser.add_argument("--chunk-mib", type=int, default=8, help="bytes per PATCH (default 8)")
    parser.add_argument(
        "--work-dir",
        type=Path,
        default=WORK_DIR,
        help=f"where the demo keeps its journal and its scratch file (default {WORK_DIR})",
    )
    args = parser.parse_args(argv)

    args.work_dir.mkdir(parents=True, exist_ok=True)
    journal = args.work_dir / "journal"
    print(f"Journal:        {journal} (the demo writes nothing outside the checkout)")
    with tempfile.TemporaryDirectory(prefix="tuspipe-demo-", dir=args.work_dir) as scratch:
        source = Path(scratch) / "demo.bin"
        print(f"Generating {args.size_mib} MiB of random bytes in {source} ...")
        source_digest = _write_random_file(source, args.size_mib * MiB)
        print(f"Uploading to {args.url} with tuspipe {tuspipe.__version__}:")
        progress = _ProgressLine()
        started = time.perf_counter()
        result = tuspipe.upload(
            source,
            args.url,
            chunk_size=args.chunk_mib * MiB,
            metadata={"filename": source.name, "filetype": "application/octet-stream"},
            on_progress=progress,
            journal=journal,
        )
        seconds = time.perf_counter() - started
        progress.finish()

    stored = args.data_dir / urlsplit(result.url).path.rsplit("/", 1)[-1]
    stored_digest = _sha256(stored)
    print(f"Upload URL:     {result.url}")
    print(f"Uploaded:       {result.offset} of {result.size} bytes in {seconds:.2f} s")
    print(f"Source sha256:  {source_digest}")
    print(f"Stored sha256:  {stored_digest}  ({stored})")
    if stored_digest != source_digest:
        print("MISMATCH: the server's bytes differ from the source")
        return 1
    print("OK: the bytes stored on the server match the source")
    return 0


if __name__ == "__main__":
    sys.exit(main())
