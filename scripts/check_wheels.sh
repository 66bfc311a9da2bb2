#!/usr/bin/env bash
# Build every distribution without workspace sources, then install each wheel alone into a
# fresh venv (siblings from the built wheels, third-party packages from the index) and
# import it. Proves the sibling pins are satisfiable and each distribution stands alone.
# The umbrella is installed by its pinned name (omniq==<its version>) with the public
# index enabled: the check fails if an installer could pick the unrelated "omniq".
#   --python PY   the interpreter for the venvs (default: the lowest Python >= 3.11 here)
#   --wheels DIR  use the wheels already built in DIR instead of building
#   --only NAME   check this distribution only (e.g. omniq-core)
#   --keep DIR    leave the venvs in DIR (venv-<dist>), e.g. to run tests in venv-omniq
set -euo pipefail
export UV_PYTHON_DOWNLOADS=never
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="" WHEELS="" ONLY="" KEEP=""
while [ $# -gt 0 ]; do
  case "$1" in
    --python) PY="$2"; shift 2 ;;
    --wheels) WHEELS="$2"; shift 2 ;;
    --only) ONLY="$(echo "$2" | tr - _)"; shift 2 ;;
    --keep) KEEP="$2"; shift 2 ;;
    *) echo "check_wheels.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
[ -n "$PY" ] || PY="$(bash "$ROOT/scripts/pythons" 2>/dev/null | head -n 1 | cut -d' ' -f2)"
DIST="$(mktemp -d)"
trap 'rm -rf "$DIST"' EXIT
cd "$ROOT"
if [ -z "$WHEELS" ]; then
  WHEELS="$DIST/wheels"
  uv build --all-packages --no-sources --wheel -q -o "$WHEELS"
fi
VENVS="${KEEP:-$DIST}"
mkdir -p "$VENVS"
echo "  wheels on $("$PY" -c 'import platform; print("Python", platform.python_version())')"
for whl in "$WHEELS"/*.whl; do
  dist=$(basename "$whl" | cut -d- -f1)
  [ -z "$ONLY" ] || [ "$dist" = "$ONLY" ] || continue
  # Every wheel carries the MIT licence text.
  listing="$(unzip -Z1 "$whl")"
  grep -q '\.dist-info/licenses/LICENSE$' <<<"$listing" || { echo "$whl: no LICENSE" >&2; exit 1; }
  case "$dist" in
    omniq) module=omniq ;;
    omniq_core) module=omniq.core ;;
    *) module="omniq.${dist#omniq_}" ;;
  esac
  venv="$VENVS/venv-$dist"
  rm -rf "$venv"
  uv venv -q --python "$PY" "$venv"
  if [ "$dist" = omniq ]; then
    version=$(basename "$whl" | cut -d- -f2)
    # By name, index enabled: only the pin keeps the unrelated omniq on the index out.
    # With every extra, so that the distributions' tests can run in this venv.
    uv pip install -q --python "$venv/bin/python" --find-links "$WHEELS" "omniq[web]==$version"
    "$venv/bin/python" - "$version" <<'PY'
import sys
from importlib.metadata import distribution

meta = distribution("omniq").metadata
assert meta["Version"] == sys.argv[1], f"installed omniq {meta['Version']}, not ours"
assert meta["Summary"].startswith("OmniQ: one Python task queue"), meta["Summary"]
from omniq import OmniQ  # noqa: E402,F401

print(f"  omniq=={sys.argv[1]} from the built wheels is ours (the index has another omniq)")
PY
  else
    uv pip install -q --python "$venv/bin/python" --find-links "$WHEELS" "$whl"
  fi
  "$venv/bin/python" - "$module" <<'PY'
import importlib, sys
module = sys.argv[1]
import pkgutil
importlib.import_module(module)
# Import every submodule too: an import of a package the distribution does not declare
# fails here. Only drivers behind a declared extra may be missing.
EXTRAS = {
    "asyncpg", "redis", "nats", "gevent", "hiredis", "zope", "pytest",
    "django", "starlette", "prometheus_client", "opentelemetry",
}
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
if module == "omniq.storage":
    # The engines' SQL and Lua ship as package data: every file is in the installed
    # wheel and loads through the backend's own loaders (no driver needed for that).
    from importlib import resources
    from omniq.storage._backends.postgres import _sql
    from omniq.storage._backends.redis import _lua

    def files(pkg, sub, suffix):
        root = resources.files(pkg).joinpath(sub)
        out, todo = [], [root]
        while todo:
            for entry in todo.pop().iterdir():
                if entry.is_dir():
                    todo.append(entry)
                elif entry.name.endswith(suffix):
                    out.append(entry)
        return out

    lua = files("omniq.storage._backends.redis", "lua", ".lua")
    names = {e.name[:-4] for e in lua if not e.name.startswith("_")}  # _*.lua: shared parts
    assert names and set(_lua.script_names()) == names, (sorted(names), _lua.script_names())
    for name in names:
        text = _lua.load_script(name)
        assert text.startswith(_lua.COMMON) and len(text) > len(_lua.COMMON), name
    sql = files("omniq.storage._backends.postgres", "sql", ".sql")
    migrations = sorted(e.name for e in sql if e.name[:4].isdigit())
    assert migrations and len(_sql.load_migrations()) == len(migrations), migrations
    assert all(ddl.strip() for _, ddl in _sql.load_migrations())
    queries = _sql.load_queries()
    assert any(e.name == "queries.sql" for e in sql) and queries, "queries.sql missing"
    assert all(q.strip() for q in queries.values())
    print(f"  omniq.storage: {len(lua)} .lua and {len(sql)} .sql files load from the wheel")
if module == "omniq.web":
    # The dashboard's static files ship as package data.
    from importlib import resources
    static = resources.files("omniq.web").joinpath("static")
    names = {e.name for e in static.iterdir()}
    assert {"htmx.min.js", "style.css"} <= names, names
    assert "Zero-Clause BSD" in static.joinpath("htmx.min.js").read_text()[:400]
    print("  omniq.web: htmx.min.js and style.css load from the wheel")
if module == "omniq.models":
    leaked = [m for m in ("dill", "anyio") if m in sys.modules]
    assert not leaked, f"import omniq.models pulled in {leaked}"
print(f"  {module}: imports alone, with all its submodules")
PY
  if [ "$module" = omniq ]; then
    # The console script is omniq-core's public CLI and starts from the installed wheels.
    "$venv/bin/omniq" --version
    "$venv/bin/python" -m omniq --help >/dev/null
    # Installed from wheels, every portion sits physically under site-packages/omniq, so
    # this is where the umbrella (a regular package) can be type-checked with the rest.
    uv pip install -q --python "$venv/bin/python" mypy
    (cd "$venv" && "$venv/bin/python" -m mypy --strict --no-incremental --follow-imports=silent -m omniq)
  fi
done
