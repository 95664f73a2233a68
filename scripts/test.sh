#!/usr/bin/env bash
# Run the whole test suite on CPU (slow end-to-end tests included). Extra arguments go to pytest.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/ensure_venv.sh"
cd "$root"
exec "$root/.venv/bin/python" -m pytest "$@"
