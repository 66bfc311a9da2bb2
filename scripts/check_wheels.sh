#!/usr/bin/env bash
# Build every distribution without workspace sources, then install each wheel alone into a
# fresh venv (siblings from the built wheels, third-party packages from the index) and
# import it. Proves the sibling pins are satisfiable and each distribution stands alone.
set -euo pipefail
export UV_PYTHON_DOWNLOADS=never
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DIST="$(mktemp -d)"
trap 'rm -rf "$DIST"' EXIT
cd "$ROOT"
uv build --all-packages --no-sources --wheel -q -o "$DIST/wheels"
for whl in "$DIST"/wheels/*.whl; do
  dist=$(basename "$whl" | cut -d- -f1)
  case "$dist" in
    omniq) module=omniq ;;
    omniq_core) module=omniq.core ;;
    *) module="omniq.${dist#omniq_}" ;;
  esac
  venv="$DIST/venv-$dist"
  uv venv -q --python 3.11 "$venv"
  uv pip install -q --python "$venv/bin/python" --find-links "$DIST/wheels" "$whl"
  "$venv/bin/python" - "$module" <<'PY'
import importlib, sys
module = sys.argv[1]
import pkgutil
importlib.import_module(module)
# Import every submodule too: an import of a package the distribution does not declare
# fails here. Only drivers behind a declared extra may be missing.
EXTRAS = {"asyncpg", "redis", "nats", "gevent", "hiredis", "zope", "pytest"}
pkg = sys.modules[module]
if module != "omniq":  # the umbrella's own modules; the portions are checked alone
    for info in pkgutil.walk_packages(pkg.__path__, module + "."):
        try:
            importlib.import_module(info.name)
        except ImportError as exc:
            from omniq.models import MissingExtraError
            missing = (exc.name or "").split(".")[0]
            if not isinstance(exc, MissingExtraError) and missing not in EXTRAS:
                raise SystemExit(f"{info.name}: imports undeclared {exc.name!r}") from exc
if module == "omniq.models":
    leaked = [m for m in ("dill", "anyio") if m in sys.modules]
    assert not leaked, f"import omniq.models pulled in {leaked}"
print(f"  {module}: imports alone, with all its submodules")
PY
  if [ "$module" = omniq ]; then
    # Installed from wheels, every portion sits physically under site-packages/omniq, so
    # this is where the umbrella (a regular package) can be type-checked with the rest.
    uv pip install -q --python "$venv/bin/python" mypy
    (cd "$DIST" && "$venv/bin/python" -m mypy --strict --no-incremental --follow-imports=silent -m omniq)
  fi
done
