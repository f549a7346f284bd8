"""Tool boundaries: which tools a caller may use, and checks on the arguments of a call.

- allowlists: glob patterns of tool names (``db.*``, ``time.now``) for everyone, per agent
  and per session; a tool must match every list that applies to the call;
- argument checks: ``read_only_sql`` (one statement, a query, no writes — comments and
  string literals can't hide a second statement), ``path`` (the path, with symlinks
  resolved, lies under an allowed root) and ``url`` (http(s), no credentials, matching an
  allowed pattern); more can be registered with :func:`register_check`;
- a cap on destructive actions per session.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from urllib.parse import urlsplit

from workbench.plugins import REGISTRY

# Statements that write (or change the connection) wherever they appear, e.g. in a CTE;
# ``replace`` counts only as ``REPLACE INTO`` (``replace()`` is a string function).
_WRITE = frozenset(
    "insert update delete drop alter create truncate merge upsert grant revoke attach detach vacuum pragma reindex "
    "copy exec execute".split()
)
_QUERY_START = frozenset({"select", "with", "values", "explain", "show", "describe"})
_TOKENS = re.compile(
    r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|`[^`]*`|\[[^\]]*\]|--[^\n]*|/\*.*?\*/|;|[A-Za-z_]\w*|\S", re.S
)

ArgumentCheck = Callable[[object, "BoundaryContext"], "str | None"]


class BoundaryContext:
    """What argument checks may consult: allowed path roots and URL patterns, the project root."""

    def __init__(self, roots: Iterable[Path], urls: Iterable[str], base: Path):
        self.base = base
        self.roots = [(base / Path(r).expanduser()).resolve() for r in roots]
        self.urls = list(urls)


def sql_problems(sql: str) -> list[str]:
    """Why ``sql`` is not one read-only query (empty list: it is)."""
    tokens = [t for t in _TOKENS.findall(sql) if not t.startswith(("--", "/*"))]
    statements: list[list[str]] = [[]]
    for t in tokens:
        if t == ";":
            statements.append([])
        else:
            statements[-1].append(t)
    statements = [s for s in statements if s]
    if not statements:
        return ["empty_sql"]
    problems = []
    if len(statements) > 1:
        problems.append("multiple_statements")
    words = [t.lower() for s in statements for t in s if t[0].isalpha() or t[0] == "_"]
    if statements[0][0].lower() not in _QUERY_START:
        problems.append(f"not_a_query:{statements[0][0].lower()}")
    writes = sorted(
        {w for w in words if w in _WRITE}
        | {"replace" for a, b in zip(words, words[1:], strict=False) if (a, b) == ("replace", "into")}
    )
    problems += [f"writes:{w}" for w in writes if f"not_a_query:{w}" not in problems]
    if "into" in words and "select" in words:
        problems.append("select_into")
    return problems


def read_only_sql(value: object, ctx: BoundaryContext) -> str | None:
    """A check: ``value`` is one read-only SQL query."""
    if not isinstance(value, str):
        return "expected SQL text"
    problems = sql_problems(value)
    return f"not a read-only query ({', '.join(problems)})" if problems else None


def path_allowed(value: object, ctx: BoundaryContext) -> str | None:
    """A check: ``value`` resolves (symlinks followed) to a path under one of the allowed roots."""
    if not isinstance(value, str | Path) or not str(value):
        return "expected a path"
    if not ctx.roots:
        return "no paths are allowed ([guardrails.tools] paths is empty)"
    resolved = (ctx.base / Path(value).expanduser()).resolve()
    if any(resolved == root or resolved.is_relative_to(root) for root in ctx.roots):
        return None
    return "the path resolves outside the allowed paths"


def url_allowed(value: object, ctx: BoundaryContext) -> str | None:
    """A check: ``value`` is an http(s) URL without credentials matching an allowed pattern."""
    if not isinstance(value, str):
        return "expected a URL"
    try:
        parts = urlsplit(value.strip())
        host = (parts.hostname or "").encode("idna").decode().lower()
    except (ValueError, UnicodeError):
        return "not a valid URL"
    if parts.scheme not in ("http", "https") or not host:
        return f"only http(s) URLs are allowed, not {parts.scheme or 'a relative URL'}"
    if parts.username or parts.password:
        return "URLs with credentials are not allowed"
    port = f":{parts.port}" if parts.port else ""
    if any(_url_matches(pattern, parts.scheme, host + port, parts.path or "/") for pattern in ctx.urls):
        return None
    return f"{parts.scheme}://{host}{port} is not an allowed URL"


def _url_matches(pattern: str, scheme: str, host: str, path: str) -> bool:
    """Scheme, host and path matched separately, so ``*`` in a host can't swallow a ``/``."""
    want_scheme, _, rest = pattern.lower().rpartition("://")
    want_host, slash, want_path = rest.partition("/")
    return (
        fnmatch.fnmatchcase(scheme, want_scheme or "*")
        and fnmatch.fnmatchcase(host, want_host)
        and "/" not in host
        and fnmatch.fnmatchcase(path, slash + want_path if slash else "/*")
    )


for _name, _check in {"read_only_sql": read_only_sql, "path": path_allowed, "url": url_allowed}.items():
    REGISTRY.builtin("check", _name, _check)


def register_check(name: str, check: ArgumentCheck) -> None:
    """Make an argument check available to ``[[guardrails.tools.arguments]] check = "name"``
    (the same as ``@workbench.plugins.check(name)``).
    """
    REGISTRY.add("check", name, check)


def get_check(name: str) -> ArgumentCheck | None:
    """The argument check called ``name`` (installed plug-ins included), or None."""
    return REGISTRY.get("check", name)


def check_names() -> list[str]:
    """Every argument check's name."""
    return REGISTRY.names("check")


def allowed(tool: str, patterns: Iterable[str]) -> bool:
    """Whether ``tool`` matches one of the glob ``patterns``."""
    return any(fnmatch.fnmatchcase(tool, p) for p in patterns)
