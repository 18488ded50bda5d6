"""The README's "Migrating from tuspy" examples run as written, against the real Node server.

The code blocks of that section are taken from README.md, the placeholder endpoint is
replaced by the Node server's, and the blocks run in order in one namespace (later blocks
use names the first defines), in a directory holding a generated ``video.mp4``. Every upload
they make must hold exactly the file's bytes (sha256 of what the server stored).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest

import tuspipe

from .conftest import TusServer, sha256_file

README = Path(__file__).resolve().parent.parent / "README.md"
SECTION = "## Migrating from tuspy"
PLACEHOLDER = "https://tus.example/files/"
MiB = 1024 * 1024


def migration_blocks() -> list[str]:
    """The python code blocks of the README's migration section, in order."""
    text = README.read_text(encoding="utf-8")
    start = text.index(SECTION)
    end = text.find("\n## ", start + len(SECTION))
    section = text[start : end if end >= 0 else len(text)]
    return re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)


def test_the_section_has_the_three_examples() -> None:
    blocks = migration_blocks()
    assert len(blocks) == 3
    first, chunked, stored = blocks
    assert "from tuspipe.compat import client" in first
    assert "uploader.upload()" in first
    assert PLACEHOLDER in first
    assert "upload_chunk()" in chunked
    assert "store_url=True" in stored
    assert "FileStorage" in stored


def _uploads(server: TusServer) -> set[str]:
    return {path.name for path in server.data_dir.iterdir() if path.is_file() and not path.suffix}


def test_the_examples_run_and_upload_the_exact_bytes(
    node_server: TusServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    video = tmp_path / "video.mp4"
    size = 9 * MiB + 123  # three 4 MiB chunks in the chunked example
    video.write_bytes(os.urandom(size))
    digest = sha256_file(video)
    namespace: dict[str, Any] = {"__name__": "readme_example"}
    made: list[str] = []
    try:
        blocks = migration_blocks()
        for number, block in enumerate(blocks, 1):
            before = _uploads(node_server)
            code = compile(
                block.replace(PLACEHOLDER, node_server.url), f"README block {number}", "exec"
            )
            exec(code, namespace)
            uploader = namespace["uploader"]
            made.append(uploader.url)
            assert uploader.url.startswith(node_server.url)
            assert uploader.offset == size
            assert node_server.stored_sha256(uploader.url) == digest
            # a new upload (other test runs may share the server, so others may appear too)
            assert uploader.url.rsplit("/", 1)[1] in _uploads(node_server) - before
        printed = capsys.readouterr().out
        assert made[0] in printed
        assert f"{size} of {size} bytes" in printed
        assert f"{8 * MiB} of {size} bytes" in printed
        # "a later run for the same file continues this upload": run the last block again
        exec(compile(blocks[-1].replace(PLACEHOLDER, node_server.url), "again", "exec"), namespace)
        assert namespace["uploader"].url == made[-1]
        assert namespace["uploader"].offset == size
        assert (tmp_path / "tus-urls").is_file()
    finally:
        for url in made:
            tuspipe.terminate(url)
