"""The quick start's demo (``bash tests/run.sh demo``) uploads, checks the stored bytes, and
writes nothing outside the checkout (its work folder)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import demo
from tests.conftest import TusServer


def test_the_demo_uploads_and_keeps_to_its_work_folder(
    node_server: TusServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("TUSPIPE_JOURNAL")
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    work = tmp_path / "work"
    arguments = ["--url", node_server.url, "--data-dir", str(node_server.data_dir)]
    assert demo.main([*arguments, "--size-mib", "4", "--work-dir", str(work)]) == 0
    shown = capsys.readouterr().out
    assert "OK: the bytes stored on the server match the source" in shown
    assert f"Journal:        {work / 'journal'}" in shown
    assert (work / "journal").is_file()
    assert not home.exists()  # no ~/.cache/tuspipe/journal
    assert demo.WORK_DIR.is_relative_to(Path(demo.__file__).resolve().parent)
