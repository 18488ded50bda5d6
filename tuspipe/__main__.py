"""``python -m tuspipe``: the ``tuspipe`` command (see :mod:`tuspipe.cli`)."""

from __future__ import annotations

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main(command="python -m tuspipe"))
