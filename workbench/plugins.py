"""One registry for everything a plug-in adds: scanners, scorers, argument checks, local models, tools.

A package adds to the workbench through **one** entry-point group, ``workbench``. Each entry
point names a callable ``register(registry)`` (or a module whose import registers with the
decorators below)::

    # pyproject.toml of the plug-in
    [project.entry-points.workbench]
    shouting = "workbench_shouting:register"

    # workbench_shouting.py
    def register(registry):
        registry.add("scanner", "shouting", Scanner("shouting", find_shouting))
        registry.add("scorer", "no_shouting", no_shouting)
        registry.add("model", "local/upper", lambda messages, params: last_user(messages).upper())

The same registry takes what a notebook registers in code (``@workbench.plugins.scorer("x")``,
``register_scanner``, ``register_check``). ``workbench plugins`` lists what is installed and
where each entry came from. Installed plug-ins are loaded the first time a name is not found
(or ``plugins()`` is listed), so ``import workbench`` stays fast. The human in the loop is not a
plug-in: a program that decides approvals sets ``wb.approvals.decider`` (see ``approvals/``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any, Literal, TypeVar, get_args

Kind = Literal["scanner", "scorer", "check", "model", "tool"]
KINDS: tuple[str, ...] = get_args(Kind)
ENTRY_POINT_GROUP = "workbench"
# Read too, for plug-ins written before the one group (each of its entry points is a Scanner).
LEGACY_SCANNER_GROUP = "workbench.scanners"

T = TypeVar("T")


class PluginError(Exception):
    """A plug-in could not be loaded or registered (the message names the entry point and why)."""


@dataclass(frozen=True)
class Entry:
    """One registered thing: its kind, name, the object, and where it came from."""

    kind: str
    name: str
    obj: Any
    source: str  # "workbench" (built in), "code" (registered at run time), or "entry point NAME (dist)"


class Registry:
    """Kind → name → :class:`Entry`. Thread-safe; entry points are loaded once, on first need."""

    def __init__(self) -> None:
        self._tables: dict[str, dict[str, Entry]] = {kind: {} for kind in KINDS}
        self._lock = threading.RLock()
        self._loaded = False
        self._loading = False
        self.errors: list[str] = []  # plug-ins that failed to load, one line each (listed by `workbench plugins`)
        self._source = "code"

    def add(self, kind: str, name: str, obj: Any, *, source: str | None = None) -> Any:
        """Register ``obj`` as ``name`` of ``kind`` (replacing one of that name); returns ``obj``."""
        if kind not in self._tables:
            raise PluginError(f"unknown plug-in kind {kind!r}: use one of {', '.join(KINDS)}")
        if not isinstance(name, str) or not name:
            raise PluginError(f"a {kind} needs a name, not {name!r}")
        if kind == "model" and not name.startswith("local/"):
            raise PluginError(f"model {name!r}: plug-in models are served as local/NAME; call it 'local/{name}'")
        if kind in ("scorer", "check", "model") and not callable(obj):
            raise PluginError(f"{kind} {name!r} must be callable, not {type(obj).__name__}")
        with self._lock:
            self._tables[kind][name] = Entry(kind, name, obj, source or self._source)
        return obj

    def get(self, kind: str, name: str) -> Any | None:
        """The object registered as ``name`` (installed plug-ins are loaded first if it is unknown)."""
        entry = self._tables[kind].get(name)
        if entry is None and not self._loaded:
            self.load_entry_points()
            entry = self._tables[kind].get(name)
        return entry.obj if entry else None

    def table(self, kind: str) -> dict[str, Entry]:
        """Every entry of ``kind`` (installed plug-ins included), by name."""
        self.load_entry_points()
        return dict(self._tables[kind])

    def names(self, kind: str, *, load: bool = True) -> list[str]:
        """The registered names of ``kind``, sorted."""
        if load:
            self.load_entry_points()
        return sorted(self._tables[kind])

    def entries(self) -> list[Entry]:
        """Everything registered, installed plug-ins included, by kind then name."""
        self.load_entry_points()
        return [e for kind in KINDS for _, e in sorted(self._tables[kind].items())]

    def load_entry_points(self) -> None:
        """Load every installed plug-in once; a broken one is recorded in ``errors``, not raised."""
        with self._lock:
            if self._loaded or self._loading:
                return
            self._loading = True
            try:
                for ep in entry_points(group=ENTRY_POINT_GROUP):
                    self._load(ep, legacy=False)
                for ep in entry_points(group=LEGACY_SCANNER_GROUP):
                    self._load(ep, legacy=True)
            finally:
                self._loading = False
                self._loaded = True

    def _load(self, ep: Any, *, legacy: bool) -> None:
        dist = getattr(getattr(ep, "dist", None), "name", None)
        where = f"entry point {ep.name}" + (f" ({dist})" if dist else "")
        previous, self._source = self._source, where
        try:
            found = ep.load()
            if legacy:
                self.add("scanner", getattr(found, "name", ep.name), found)
            elif callable(found) and not isinstance(found, type):
                found(self)
            # a module: importing it ran its decorators
        except Exception as exc:  # noqa: BLE001 - one broken plug-in must not break the others
            self.errors.append(f"{where}: {type(exc).__name__}: {exc}")
        finally:
            self._source = previous

    def builtin(self, kind: str, name: str, obj: Any) -> Any:
        """Register something the workbench itself ships (listed as from ``workbench``)."""
        return self.add(kind, name, obj, source="workbench")


REGISTRY = Registry()


def plugins() -> list[Entry]:
    """Everything registered: built in, installed plug-ins, and what code registered."""
    return REGISTRY.entries()


def scorer(name: str) -> Callable[[T], T]:
    """``@scorer("polite")``: ``fn(output, case, ctx, **options) -> Score | float`` usable in suites by name."""
    return lambda fn: REGISTRY.add("scorer", name, fn)


def check(name: str) -> Callable[[T], T]:
    """``@check("ticket_id")``: ``fn(value, **options) -> str | None`` (a problem, or None) for
    ``[[guardrails.tools.arguments]] check = "ticket_id"``.
    """
    return lambda fn: REGISTRY.add("check", name, fn)


def model(name: str) -> Callable[[T], T]:
    """``@model("local/upper")``: ``fn(messages, params) -> str`` served through litellm like the
    built-in local models (usage counted, streamed, priced, recorded).
    """
    return lambda fn: REGISTRY.add("model", name, fn)


def tool(name: str, *, risk: str = "read") -> Callable[[T], T]:
    """``@tool("tickets.lookup", risk="read")``: a typed function every Workbench offers as a tool
    (its schema comes from the signature, as with ``@wb.tool``).
    """

    def add(fn: T) -> T:
        setattr(fn, "__workbench_risk__", risk)  # noqa: B010 - read back when the tool is built
        return REGISTRY.add("tool", name, fn)

    return add
