#!/usr/bin/env bash
# `make bench`: build the benchmark's own virtualenv (once; again when requirements-peer.txt changes),
# then run the driver with the collection's virtualenv. Needs `make venv` first (the Makefile target
# depends on it). Extra arguments go to bench.py (e.g. --quick).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
python=${PYTHON:-python3.11}
venv=$here/.venv-peer
stamp=$venv/.installed
started=$(date +%s)
if [ ! -f "$stamp" ] || [ "$here/requirements-peer.txt" -nt "$stamp" ]; then
  echo "bench: creating $venv (ansible with community.hashi_vault, hvac, matplotlib)"
  rm -rf "$venv"
  "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --upgrade pip
  "$venv/bin/python" -m pip install --quiet -r "$here/requirements-peer.txt"
  touch "$stamp"
fi
setup=$(( $(date +%s) - started ))
exec "$repo/.venv/bin/python" "$here/bench.py" --setup-seconds "$setup" --command "${BENCH_COMMAND:-make bench}" "$@"
