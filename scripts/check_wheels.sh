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
    names = {e.name[:-4] for e in lua} - {"_common"}
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
    (cd "$DIST" && "$venv/bin/python" -m mypy --strict --no-incremental --follow-imports=silent -m omniq)
  fi
done
