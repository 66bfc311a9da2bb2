# Sourced by the scripts in this folder: make uv available and the workspace synced.
# Installs uv from PyPI when it is missing; never downloads a Python (uses the local ones).
set -euo pipefail
export UV_PYTHON_DOWNLOADS=never
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
if ! command -v uv >/dev/null 2>&1; then
  for py in python3.11 python3 python; do
    if command -v "$py" >/dev/null 2>&1; then
      "$py" -m pip install --quiet --user uv 2>/dev/null || "$py" -m pip install --quiet uv
      break
    fi
  done
  export PATH="$HOME/.local/bin:$PATH"
  command -v uv >/dev/null 2>&1 || { echo "could not install uv" >&2; exit 1; }
fi
uv sync --locked --quiet
