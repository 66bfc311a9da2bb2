#!/usr/bin/env bash
# Every Python from 3.11 up installed here (scripts/pythons; the others are named as
# skipped): the wheel check (scripts/check_wheels.sh) and the distributions' own tests
# (packages/*/tests) against the wheels installed in a venv of that Python. The
# workspace's own Python runs only the wheel check here: the pytest step runs those tests
# on it. The wheel checks run in parallel; the test runs one Python at a time (some tests
# measure wake-up latencies, which two suites on two cores would distort).
set -euo pipefail
export UV_PYTHON_DOWNLOADS=never
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
uv build --all-packages --no-sources --wheel -q -o "$WORK/wheels"
workspace="$(uv run --quiet python -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
bash scripts/pythons 2>&1 >/dev/null | sed 's/^/  /'
mapfile -t PYTHONS < <(bash scripts/pythons 2>/dev/null)

wheels() {  # $1 version, $2 interpreter: the wheel check, venvs kept for the tests
  local start=$SECONDS
  bash scripts/check_wheels.sh --python "$2" --wheels "$WORK/wheels" --keep "$WORK/venvs-$1"
  echo "Python $1: wheel check passed in $((SECONDS - start)) s"
}

pids=()
for entry in "${PYTHONS[@]}"; do
  read -r v py <<<"$entry"
  wheels "$v" "$py" >"$WORK/wheels-$v.log" 2>&1 &
  pids+=("$!")
done
failed=0
for i in "${!pids[@]}"; do
  v="${PYTHONS[$i]%% *}"
  if wait "${pids[$i]}"; then
    tail -n 1 "$WORK/wheels-$v.log" | sed 's/^/  /'
  else
    echo "  Python $v: wheel check FAILED"; sed 's/^/    /' "$WORK/wheels-$v.log"; failed=1
  fi
done
[ "$failed" = 0 ] || exit 1

for entry in "${PYTHONS[@]}"; do
  read -r v py <<<"$entry"
  if [ "$v" = "$workspace" ]; then
    echo "  Python $v: the workspace's; its unit tests run in the pytest step"
    continue
  fi
  start=$SECONDS
  venv="$WORK/venvs-$v/venv-omniq"  # the umbrella: every distribution with every extra
  # omniq-contrib's tests import its optional integrations (omniq[fastapi,django])
  uv pip install -q --python "$venv/bin/python" pytest pytest-timeout hypothesis starlette django httpx
  # omniq-testing is the umbrella's extra "testing" (not in the full stack): its tests
  # run here too, from its wheel.
  uv pip install -q --python "$venv/bin/python" --find-links "$WORK/wheels" "$WORK"/wheels/omniq_testing-*.whl
  "$venv/bin/python" -c 'import omniq.models, sys; f = omniq.models.__file__; sys.exit("site-packages" not in f and f)'
  if "$venv/bin/python" -m pytest -q -p no:cacheprovider packages/*/tests >"$WORK/tests-$v.log" 2>&1; then
    echo "  Python $v: $(tail -n 1 "$WORK/tests-$v.log") ($((SECONDS - start)) s)"
  else
    echo "  Python $v: unit tests FAILED"; sed 's/^/    /' "$WORK/tests-$v.log"; failed=1
  fi
done
exit "$failed"
