"""One file of an upload command (a :class:`Job`), and which one the running task uploads."""

from __future__ import annotations

import contextvars
from dataclasses import dataclass

import tuspipe

__all__ = ["CURRENT_JOB", "STDIN", "Job"]

#: The FILE that stands for standard input: uploaded as it is read, its length declared once
#: it ends (tus deferred length), unless it is a regular file (``< file``).
STDIN = "-"


@dataclass
class Job:
    """One file of an upload command, and what became of it."""

    index: int
    path: str
    size: int | None = 0  # None: standard input, of unknown size until it ends
    url: str | None = None
    began: float | None = None  # when the upload call started
    first_progress: float | None = None
    resumed_from: int = 0
    acknowledged: int = 0
    retries: int = 0
    result: tuspipe.UploadResult | None = None
    error: BaseException | None = None
    exit_code: int | None = None
    seconds: float = 0.0
    last_decile: int = 0
    last_note_at: float = 0.0  # (plain progress) when the last line was written
    last_noted: int = 0  # (plain progress) the acknowledged bytes it said
    next_note: int = 0  # (unknown size) the acknowledged bytes of the next plain line

    @property
    def name(self) -> str:
        return "standard input" if self.path == STDIN else self.path

    @property
    def finished(self) -> bool:
        return self.result is not None or self.error is not None


#: The job the running trio task uploads (each task has its own context), so a log record is
#: named by the file it is about.
CURRENT_JOB: contextvars.ContextVar[Job | None] = contextvars.ContextVar(
    "tuspipe_cli_job", default=None
)
