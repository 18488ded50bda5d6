"""The code blocks of README.md and docs/*.md run as written, against the real servers.

What a block is, from the lines of its page:

* Every fenced block names its language: ``python``, ``sh`` or ``text`` (output and diagrams,
  never run).
* A python or sh block is a whole program unless an HTML comment on the line right above its
  fence (a run of such lines counts) marks it:

  - ``<!-- fragment: WHAT IT BELONGS TO -->``: a piece of a larger program. Python fragments
    must still parse; there are at most :data:`MAX_FRAGMENTS` of them in all the pages.
  - ``<!-- not run: WHY -->``: installs packages, starts servers or runs the test suite (sh
    blocks only: a Python example is a program or a fragment).
  - ``<!-- server: NAME ... -->``: a whole program that needs one of the other servers
    (``asgitus``, ``tuspyserver``, ``node09``; the default is ``node``).

How a whole program runs: in a new empty directory, with the environment as the README says
("Running the examples") and nothing else changed: ``TUS_URL`` is the server's creation URL,
``TUSPIPE_JOURNAL`` and ``XDG_CACHE_HOME`` lie in the test's temporary directory (never the
user's cache), ``TUSPIPE_TOKEN`` and ``TUSPIPE_TOKEN_COMMAND`` are unset, and standard input
holds :data:`STDIN_SIZE` known bytes (for the example that uploads it). Python blocks run as
``sys.executable BLOCK.py``; sh blocks as ``bash -e -o pipefail BLOCK.sh`` (every command must
succeed), with a ``tuspipe`` first on ``PATH`` that is ``sys.executable -m tuspipe``.

What must come out: exit status 0, and for every upload URL of the server that the block
printed (on either stream): the server holds exactly the bytes (sha256) of a file the block
left in its directory, or of its standard input; or, in a block that deletes uploads
(``terminate``, ``tuspipe delete``), the server no longer has it. A block that uploads prints
at least one upload URL.

Two blocks get more than the generic run:

* The producer example (the block with the line ``PRODUCER = ["pg_dump", "mydb"]``) cannot run
  as written without a database; it runs twice with that one line replaced by a Python
  command: one that writes known bytes (the upload must hold exactly them) and one that fails
  after writing some (the block must fail, and the upload it made must be gone: HEAD answers
  404 or 410, because a truncated dump must never look like a complete upload).
* The journal example also runs with an unfinished upload in its journal, which it must list.

Last, docs/architecture.md cannot rot silently: its module map names every module of tuspipe
and tuspipe.cli, and only modules that exist; its layer table places every module, and no
module imports from a layer above its own.
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
import os
import random
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

import tuspipe

from .conftest import TusServer, sha256_file
from .test_layers import GRAPH, _internal

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LANGUAGES = {"python", "sh", "text"}
SERVERS = {"node", "asgitus", "tuspyserver", "node09"}
MAX_FRAGMENTS = 3
TIMEOUT = 120
MiB = 1024 * 1024

#: The endpoint line every Python example that uploads begins with (the README's convention).
TUS_URL_LINE = 'TUS_URL = os.environ.get("TUS_URL", "http://127.0.0.1:1080/files/")'
#: The producer example's command, replaced for the test (see the module docstring).
PRODUCER_LINE = 'PRODUCER = ["pg_dump", "mydb"]'
PRODUCED_SIZE = 9 * MiB + 5  # more than one 8 MiB stream chunk: the upload exists before the end
STDIN_SIZE = 2 * MiB + 3
STDIN = random.Random("readme stdin").randbytes(STDIN_SIZE)

_FENCE = re.compile(r"^```(\S*)\s*$")
_MARKER = re.compile(r"^<!--\s*(fragment|not run|server):\s*(.*?)\s*-->$")
# What a block that uploads looks like (then it must print the URL of what it uploaded).
_UPLOADS = {
    "python": re.compile(r"\.upload(?:_async|_many|_many_async)?\("),
    "sh": re.compile(r"\btuspipe upload\b"),
}
_DELETES = re.compile(r"\bterminate(?:_async)?\(|\btuspipe delete\b")
# What some blocks say they do, and the output that shows it: (in the code, in the output).
_PROMISES = [
    # the resuming examples stop after the first MiB, then continue from there
    ("bytes were already", re.compile(r": 1048576 bytes were already")),
    # the progress examples count up to the whole 3 MiB file
    (" of {total} bytes", re.compile(r"\b3145728 of 3145728 bytes")),
    (" of {uploader.stop_at} bytes", re.compile(r"\b3145728 of 3145728 bytes")),
]


@dataclass(frozen=True)
class Block:
    """One fenced code block of a page."""

    page: Path
    line: int  # of the opening fence, 1-based
    language: str
    code: str
    markers: tuple[tuple[str, str], ...]  # (kind, text) of the comments right above the fence

    @property
    def name(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"

    def marker(self, kind: str) -> str | None:
        return next((text for found, text in self.markers if found == kind), None)

    @property
    def is_program(self) -> bool:
        return (
            self.language in {"python", "sh"}
            and self.marker("fragment") is None
            and self.marker("not run") is None
        )

    @property
    def server(self) -> str:
        named = self.marker("server")
        return "node" if named is None else named.split()[0]


def blocks_of(page: Path) -> list[Block]:
    """The fenced blocks of `page`, in order, with the markers above each."""
    lines = page.read_text(encoding="utf-8").splitlines()
    found: list[Block] = []
    index = 0
    while index < len(lines):
        opening = _FENCE.match(lines[index])
        if opening is None:
            index += 1
            continue
        end = index + 1
        while end < len(lines) and lines[end].rstrip() != "```":
            end += 1
        assert end < len(lines), f"{page.name}:{index + 1}: the block never closes"
        markers: list[tuple[str, str]] = []
        above = index - 1
        while above >= 0 and lines[above].startswith("<!--"):
            marker = _MARKER.match(lines[above].strip())
            assert marker is not None, f"{page.name}:{above + 1}: unknown marker {lines[above]!r}"
            markers.insert(0, (marker[1], marker[2]))
            above -= 1
        found.append(
            Block(
                page=page,
                line=index + 1,
                language=opening[1],
                code="\n".join(lines[index + 1 : end]) + "\n",
                markers=tuple(markers),
            )
        )
        index = end + 1
    return found


BLOCKS = [block for page in PAGES for block in blocks_of(page)]
PROGRAMS = [block for block in BLOCKS if block.is_program]
PRODUCER_BLOCKS = [block for block in PROGRAMS if PRODUCER_LINE in block.code.splitlines()]
JOURNAL_BLOCKS = [block for block in PROGRAMS if "tuspipe.Journal()" in block.code]


# ---- every block is a program, a fragment, output, or marked as not run ----------------------


def test_the_pages_and_their_blocks_were_found() -> None:
    names = {page.name for page in PAGES}
    assert {"README.md", "migrating.md", "architecture.md"} <= names
    assert len(PROGRAMS) >= 20
    assert len(PRODUCER_BLOCKS) == 1
    assert len(JOURNAL_BLOCKS) == 1


@pytest.mark.parametrize("block", BLOCKS, ids=lambda block: block.name)
def test_each_block_is_a_program_or_says_what_it_is(block: Block) -> None:
    assert block.language in LANGUAGES, f"{block.name}: say the language ({sorted(LANGUAGES)})"
    for kind, text in block.markers:
        assert text, f"{block.name}: a {kind!r} marker says what it means"
    kinds = [kind for kind, _ in block.markers]
    assert len(kinds) == len(set(kinds)), block.name
    if block.language == "text":
        assert not block.markers, f"{block.name}: text blocks are never run; no marker needed"
        return
    if block.marker("not run") is not None:
        assert block.language == "sh", f"{block.name}: a Python example is never skipped"
    if block.marker("server") is not None:
        assert block.is_program, block.name
        assert block.server in SERVERS, block.name
    if block.language == "python":
        # Whole programs and fragments alike parse (no top-level await, no "...").
        ast.parse(block.code, filename=block.name)
    if block.is_program:
        assert "tus.example" not in block.code, f"{block.name}: runs against $TUS_URL instead"
        if block.language == "python" and "TUS_URL" in block.code:
            assert TUS_URL_LINE in block.code.splitlines(), block.name


def test_fragments_are_few() -> None:
    fragments = [block.name for block in BLOCKS if block.marker("fragment") is not None]
    assert len(fragments) <= MAX_FRAGMENTS, fragments


# ---- running the programs --------------------------------------------------------------------


@dataclass
class Run:
    """A block's run: its outcome and where it ran."""

    block: Block
    server: TusServer
    workdir: Path
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def describe(self) -> str:
        return (
            f"{self.block.name} exited {self.returncode}\n"
            f"--- stdout\n{self.stdout}\n--- stderr\n{self.stderr}"
        )

    def upload_urls(self) -> list[str]:
        """The server's upload URLs the block printed, each once, in order."""
        pattern = re.escape(self.server.url) + r"[A-Za-z0-9_-]+"
        return list(dict.fromkeys(re.findall(pattern, self.output)))


def _environment(tmp_path: Path, server: TusServer, journal: Path) -> dict[str, str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    wrapper = bin_dir / "tuspipe"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m tuspipe "$@"\n')
    wrapper.chmod(0o755)
    environment = dict(os.environ)
    for name in ("TUSPIPE_TOKEN", "TUSPIPE_TOKEN_COMMAND"):
        environment.pop(name, None)
    environment.update(
        TUS_URL=server.url,
        TUSPIPE_JOURNAL=str(journal),
        XDG_CACHE_HOME=str(tmp_path / "cache"),
        # this checkout's tuspipe, whatever the environment has installed
        PYTHONPATH=os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]),
        PATH=os.pathsep.join([str(bin_dir), environment.get("PATH", "")]),
    )
    return environment


def run_block(
    block: Block, server: TusServer, tmp_path: Path, *, code: str | None = None, journal: Path
) -> Run:
    """Run `block` (or `code` in its place) in a new directory under `tmp_path`."""
    workdir = tmp_path / "work"
    workdir.mkdir()
    script = tmp_path / ("block.py" if block.language == "python" else "block.sh")
    script.write_text(block.code if code is None else code, encoding="utf-8")
    command = (
        [sys.executable, str(script)]
        if block.language == "python"
        else ["bash", "-e", "-o", "pipefail", str(script)]
    )
    completed = subprocess.run(
        command,
        cwd=workdir,
        env=_environment(tmp_path, server, journal),
        input=STDIN,
        capture_output=True,
        timeout=TIMEOUT,
        check=False,
    )
    return Run(
        block,
        server,
        workdir,
        completed.returncode,
        completed.stdout.decode(errors="replace"),
        completed.stderr.decode(errors="replace"),
    )


def _is_gone(url: str) -> bool:
    answer = httpx.head(url, headers={"Tus-Resumable": "1.0.0"}, timeout=30)
    return answer.status_code in (404, 410)


def _sources(run: Run) -> dict[str, str]:
    """sha256 -> what it is, of everything the block may have uploaded."""
    digests = {hashlib.sha256(STDIN).hexdigest(): "standard input"}
    for path in run.workdir.rglob("*"):
        if path.is_file():
            digests.setdefault(sha256_file(path), str(path.relative_to(run.workdir)))
    return digests


def check_uploads(run: Run, *, also: dict[str, str] | None = None) -> list[str]:
    """Every upload the block printed holds exactly a source's bytes (or was deleted, in a
    block that deletes); return the URLs."""
    urls = run.upload_urls()
    if _UPLOADS[run.block.language].search(run.block.code):
        assert urls, f"{run.block.name} uploads but printed no upload URL\n{run.describe()}"
    sources = {**_sources(run), **(also or {})}
    for url in urls:
        stored = run.server.stored_path(url)
        if not stored.exists():
            assert _DELETES.search(run.block.code), f"{url} is not stored\n{run.describe()}"
            assert _is_gone(url), f"{url} is neither stored nor gone\n{run.describe()}"
            continue
        digest = sha256_file(stored)
        assert digest in sources, (
            f"{url} ({stored.stat().st_size} bytes) holds none of the block's sources "
            f"({sorted(sources.values())})\n{run.describe()}"
        )
    return urls


@pytest.fixture
def uploads_to_delete() -> Iterator[list[str]]:
    """Upload URLs deleted when the test ends, so that the examples' uploads do not fill the
    servers' disks."""
    urls: list[str] = []
    yield urls
    for url in urls:
        with contextlib.suppress(tuspipe.TusError):  # deleted by the example already, say
            tuspipe.terminate(url, retries=0)


def _generic(block: Block) -> bool:
    return block not in PRODUCER_BLOCKS


@pytest.mark.parametrize(
    "block", [block for block in PROGRAMS if _generic(block)], ids=lambda block: block.name
)
def test_each_program_runs_as_written(
    block: Block,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    private_journal: Path,
    uploads_to_delete: list[str],
) -> None:
    server: TusServer = request.getfixturevalue(f"{block.server}_server")
    run = run_block(block, server, tmp_path, journal=private_journal)
    uploads_to_delete.extend(run.upload_urls())
    assert run.returncode == 0, run.describe()
    check_uploads(run)
    for snippet, shown in _PROMISES:
        if snippet in block.code:
            assert shown.search(run.stdout), f"no {shown.pattern!r}\n{run.describe()}"


# ---- the producer example: the producer's failure must not pass for a complete upload --------


def _producer_code(block: Block, *, fails: bool) -> str:
    """The block with its producer replaced by a Python command writing PRODUCED_SIZE known
    bytes (and then failing with exit status 3, if `fails`)."""
    script = (
        "import random, sys; "
        f"sys.stdout.buffer.write(random.Random('produced').randbytes({PRODUCED_SIZE})); "
        "sys.stdout.buffer.flush()" + ("; sys.exit(3)" if fails else "")
    )
    producer = f"PRODUCER = {[sys.executable, '-c', script]!r}"
    lines = block.code.splitlines()
    assert lines.count(PRODUCER_LINE) == 1
    return "\n".join(producer if line == PRODUCER_LINE else line for line in lines) + "\n"


PRODUCED = random.Random("produced").randbytes(PRODUCED_SIZE)


@pytest.mark.parametrize("block", PRODUCER_BLOCKS, ids=lambda block: block.name)
def test_the_producer_example_uploads_what_the_producer_wrote(
    block: Block,
    node_server: TusServer,
    tmp_path: Path,
    private_journal: Path,
    uploads_to_delete: list[str],
) -> None:
    run = run_block(
        block,
        node_server,
        tmp_path,
        code=_producer_code(block, fails=False),
        journal=private_journal,
    )
    uploads_to_delete.extend(run.upload_urls())
    assert run.returncode == 0, run.describe()
    urls = check_uploads(run, also={hashlib.sha256(PRODUCED).hexdigest(): "the producer"})
    assert len(urls) == 1
    assert node_server.stored_sha256(urls[0]) == hashlib.sha256(PRODUCED).hexdigest()


@pytest.mark.parametrize("block", PRODUCER_BLOCKS, ids=lambda block: block.name)
def test_the_producer_example_deletes_the_upload_when_the_producer_fails(
    block: Block, node_server: TusServer, tmp_path: Path, private_journal: Path
) -> None:
    run = run_block(
        block,
        node_server,
        tmp_path,
        code=_producer_code(block, fails=True),
        journal=private_journal,
    )
    assert run.returncode != 0, run.describe()
    assert "exit status 3" in run.stderr, run.describe()
    urls = run.upload_urls()
    # The producer wrote more than one chunk before failing: the upload existed.
    assert urls, run.describe()
    for url in urls:
        assert _is_gone(url), f"{url} survived the producer's failure\n{run.describe()}"


# ---- the journal example, with something in the journal -------------------------------------


@pytest.mark.parametrize("block", JOURNAL_BLOCKS, ids=lambda block: block.name)
def test_the_journal_example_lists_an_unfinished_upload(
    block: Block, node_server: TusServer, tmp_path: Path, private_journal: Path
) -> None:
    source = tmp_path / "unfinished.bin"
    source.write_bytes(os.urandom(2 * MiB))
    partial = tuspipe.upload(
        source, node_server.url, chunk_size=MiB, stop_at=MiB, journal=private_journal
    )
    try:
        run = run_block(block, node_server, tmp_path, journal=private_journal)
        assert run.returncode == 0, run.describe()
        assert "1 unfinished upload(s)" in run.stdout, run.describe()
        assert partial.url in run.stdout
        assert f"{MiB} of {2 * MiB} bytes" in run.stdout
        # a fresh upload is neither forgotten nor expired: it still resumes
        resumed = tuspipe.upload(source, node_server.url, journal=private_journal)
        assert (resumed.url, resumed.resumed_from) == (partial.url, MiB)
        assert node_server.stored_sha256(resumed.url) == sha256_file(source)
    finally:
        tuspipe.terminate(partial.url)


# ---- docs/architecture.md's module map -------------------------------------------------------

ARCHITECTURE = ROOT / "docs" / "architecture.md"
MODULE_MAP = "## Module map"


def _mapped_modules() -> list[str]:
    text = ARCHITECTURE.read_text(encoding="utf-8")
    start = text.index(MODULE_MAP)
    end = text.find("\n## ", start + len(MODULE_MAP))
    section = text[start : end if end >= 0 else len(text)]
    return re.findall(r"`(tuspipe/[\w/]+\.py)`", section)


def test_the_module_map_names_every_module_and_only_modules() -> None:
    named = _mapped_modules()
    assert len(named) == len(set(named)), "a module named twice"
    missing = sorted(path for path in named if not (ROOT / path).is_file())
    assert not missing, f"the map names modules that do not exist: {missing}"
    package = ROOT / "tuspipe"
    modules = {
        str(path.relative_to(ROOT))
        for pattern in ("*.py", "cli/*.py")
        for path in package.glob(pattern)
    }
    unnamed = sorted(modules - set(named))
    assert not unnamed, f"the map does not name: {unnamed}"


# ---- docs/architecture.md's layer table ------------------------------------------------------

LAYERS = "## Layers"


def _layers() -> list[tuple[str, list[str]]]:
    """The layer table, top down: (layer, the modules' names as the table gives them)."""
    text = ARCHITECTURE.read_text(encoding="utf-8")
    start = text.index(LAYERS)
    end = text.find("\n## ", start + len(LAYERS))
    rows = re.findall(r"^\| (\w+) \| (`.*?`) \|", text[start:end], flags=re.MULTILINE)
    return [(layer, re.findall(r"`([\w.]+)`", modules)) for layer, modules in rows]


def _layer_of(module: str, layers: list[tuple[str, list[str]]]) -> int | None:
    """The index of `module`'s layer (0 is the top): a package named in the table holds its
    submodules too."""
    for index, (_, names) in enumerate(layers):
        for name in names:
            full = "tuspipe" if name == "tuspipe" else f"tuspipe.{name}"
            if module == full or (name in {"cli", "compat"} and module.startswith(full + ".")):
                return index
    return None


def test_the_layer_table_holds_for_every_import() -> None:
    layers = _layers()
    assert [layer for layer, _ in layers][:2] == ["front", "api"]
    unplaced = sorted(module for module in GRAPH if _layer_of(module, layers) is None)
    assert not unplaced, f"modules in no layer: {unplaced}"
    upward = []
    for module in GRAPH:
        level = _layer_of(module, layers)
        assert level is not None
        for target in _internal(module):
            target_level = _layer_of(target, layers)
            assert target_level is not None
            if target_level < level:
                upward.append(
                    f"{module} ({layers[level][0]}) imports {target} ({layers[target_level][0]})"
                )
    assert not upward, upward
