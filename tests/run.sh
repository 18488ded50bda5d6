#!/usr/bin/env bash
# The project's one entry point for people and CI. Works on a fresh clone of a Debian machine
# with Python >= 3.11, Node >= 20.19 and the package registries:
#
#   bash tests/run.sh demo    # set up, start a real tus server, upload 256 MiB with progress
#   bash tests/run.sh test    # set up, start the four real tus servers, run mypy, ruff, pytest
#   bash tests/run.sh setup   # only install (.venv with tuspipe and its test tools; servers)
#
# The servers: @tus/server 2.4.5, asgi-tus 0.1.0, tuspyserver 4.4.3 and tus-node-server 0.9.0
# (see tests/servers/start-servers.sh). Everything lands inside the checkout: .venv/ and
# tests/servers/.tus-servers/. The servers started here are stopped again by their process ids
# when the script exits, however it exits.
# Extra arguments after `test` go to pytest (e.g. `bash tests/run.sh test -k checksum`).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${TUSPIPE_VENV:-$ROOT/.venv}
SERVERS=$ROOT/tests/servers/start-servers.sh
PY=$VENV/bin/python

setup() {
  if [ ! -x "$PY" ]; then
    python3 -m venv "$VENV"
  fi
  "$PY" -m pip install -q --disable-pip-version-check --upgrade pip
  "$PY" -m pip install -q --disable-pip-version-check -e "$ROOT[test,cli,peers,bench]"
  bash "$SERVERS" install
}

started=()
stop_servers() {
  if [ ${#started[@]} -gt 0 ]; then
    bash "$SERVERS" stop "${started[@]}" || true
  fi
}

start_servers() { # NAME...
  trap stop_servers EXIT
  for name in "$@"; do
    bash "$SERVERS" start "$name"
    started+=("$name")
  done
  # TUS_URL_<NAME> and TUS_DATA_<NAME> tell the tests where each server is and stores.
  while IFS= read -r line; do export "${line?}"; done < <(bash "$SERVERS" env "$@")
}

cmd=${1:-}
shift || true
case $cmd in
  setup)
    setup ;;
  test)
    setup
    start_servers node asgitus tuspyserver node09
    cd "$ROOT"
    echo "== mypy"; "$VENV/bin/mypy"
    echo "== ruff"; "$VENV/bin/ruff" check . && "$VENV/bin/ruff" format --check .
    echo "== pytest"; "$VENV/bin/pytest" "$@" ;;
  demo)
    setup
    start_servers node
    cd "$ROOT"
    "$PY" -m tests.demo --url "$TUS_URL_NODE" --data-dir "$TUS_DATA_NODE" "$@" ;;
  *)
    sed -n '2,14p' "$0"; exit 2 ;;
esac
