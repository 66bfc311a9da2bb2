#!/usr/bin/env bash
# Every Python from 3.11 up installed here (scripts/pythons; the others are named as
# skipped): the wheel check (scripts/check_wheels.sh) and the distributions' own tests
# (packages/*/tests) against the wheels installed in a venv of that Python. The
# workspace's own Python runs only the wheel check here: the pytest step runs those tests
# on it. The Pythons run in parallel, each with its log, shown when it ends.
set -euo pipefail
export UV_PYTHON_DOWNLOADS=never
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
uv build --all-packages --no-sources --wheel -q -o "$WORK/wheels"
workspace="$(uv run --quiet python -c 'import sys; print("%d.%d" % sys.version_info[:2])')"

one() {  # $1 version, $2 interpreter
  local v="$1" py="$2" venvs="$WORK/venvs-$1" start=$SECONDS
  bash scripts/check_wheels.sh --python "$py" --wheels "$WORK/wheels" --keep "$venvs"
  if [ "$v" = "$workspace" ]; then
    echo "Python $v: wheel check passed in $((SECONDS - start)) s (its unit tests: the pytest step)"
    return 0
  fi
  local venv="$venvs/venv-omniq"  # the umbrella: every distribution with every extra
  uv pip install -q --python "$venv/bin/python" pytest pytest-timeout hypothesis
  "$venv/bin/python" -c 'import omniq.models, sys; f = omniq.models.__file__; sys.exit("site-packages" not in f and f)'
  "$venv/bin/python" -m pytest -q -p no:cacheprovider packages/*/tests
  echo "Python $v: wheel check and unit tests passed in $((SECONDS - start)) s"
}

pids=() names=()
while read -r v py; do
  one "$v" "$py" >"$WORK/log-$v" 2>&1 &
  pids+=("$!") names+=("$v")
done < <(bash scripts/pythons)
bash scripts/pythons 2>&1 >/dev/null | sed 's/^/  /'
failed=0
for i in "${!pids[@]}"; do
  if wait "${pids[$i]}"; then
    tail -n 3 "$WORK/log-${names[$i]}" | sed 's/^/  /'
  else
    echo "  Python ${names[$i]}: FAILED"; sed 's/^/    /' "$WORK/log-${names[$i]}"; failed=1
  fi
done
exit "$failed"
