#!/usr/bin/env bash
# Creates .venv (if missing) and installs the project into it; fast when up to date.
set -euo pipefail
cd "$(dirname "$0")/.."
extra="${1:-}"
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv (Python $(python3 --version | cut -d' ' -f2))" >&2
  python3 -m venv .venv
  .venv/bin/pip install -q --upgrade pip >&2
fi
stamp=".venv/.installed${extra:+-$extra}"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "setup: installing Python dependencies${extra:+ ($extra)}" >&2
  .venv/bin/pip install -q -e ".${extra:+[$extra]}" >&2
  touch "$stamp"
fi
