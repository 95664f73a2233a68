#!/usr/bin/env bash
# The main job on embedded default data, on CPU: a short training of the tiny hybrid model.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/ensure_venv.sh"
cd "$root"
exec "$root/.venv/bin/python" examples/train_tiny.py "$@"
