"""``python -m tuspipe``: the ``tuspipe`` command (see :mod:`tuspipe._cli`)."""

from __future__ import annotations

from ._cli import main

if __name__ == "__main__":
    raise SystemExit(main(command="python -m tuspipe"))
