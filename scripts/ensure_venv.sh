#!/usr/bin/env bash
# Create .venv/ at the repository root and install the project into it (CPU build of torch).
# Idempotent: reinstalls only when pyproject.toml or requirements/cpu.txt changed since last time.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv"
stamp="$venv/.sparseehr-install-stamp"
want="$(cat "$root/pyproject.toml" "$root/requirements/cpu.txt" | sha256sum | cut -d' ' -f1)"
if [[ -x "$venv/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
  exit 0
fi
python="${PYTHON:-python3}"
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "error: $python is $("$python" --version 2>&1); SparseEHR-MCore needs Python >= 3.11" >&2
  exit 1
fi
echo "Installing SparseEHR-MCore into $venv (first run, or its requirements changed) ..." >&2
[[ -x "$venv/bin/python" ]] || "$python" -m venv "$venv"
"$venv/bin/python" -m pip install -q --upgrade pip
# torch first and exactly: later resolution then sees it satisfied and never fetches a CUDA build.
"$venv/bin/python" -m pip install -q -c "$root/requirements/cpu.txt" torch
"$venv/bin/python" -m pip install -q -c "$root/requirements/cpu.txt" -e "$root[hf,dev]"
echo "$want" > "$stamp"
