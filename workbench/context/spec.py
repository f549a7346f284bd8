"""Context specs: what a call is given, in a file, versioned by its content.

A spec is ``contexts/NAME.yaml`` (or ``.yml`` / ``.toml``)::

    description: Customer support answers from the handbook
    system: |
      You are the support assistant of {{ company }}. Answer from the context; cite [ids].
    variables: {company: Acme}
    pinned: Refunds are only paid to the original card.
    budget_tokens: 1500
    sources:
      - {kind: documents, collection: handbook, k: 4, priority: 3, max_tokens: 600, overflow: truncate}
      - {kind: memory, scopes: [user, shared], k: 5, priority: 2, max_tokens: 200}
      - {kind: history, turns: 6, priority: 1, max_tokens: 400, overflow: summarise}

``system`` is a Jinja template rendered in a sandbox with ``variables`` plus ``user``,
``task``, ``agent``, ``session`` and ``today``; the user's text is never rendered as a
template. Memory scopes ``user``, ``agent`` and ``session`` mean the call's own
(``user:alice``, ...). A spec's version is the hash of its file; every call records
the spec's name and version.
"""

from __future__ import annotations

import hashlib
import os
import time
import tomllib
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, model_validator

from workbench.config import _one_line, _Strict
from workbench.errors import ConfigError, TemplateError, shown

SUFFIXES = (".yaml", ".yml", ".toml")


class SourceSpec(_Strict):
    """One ordered source of context, with its priority, token cap and overflow rule."""

    kind: Literal["documents", "memory", "history", "tools"]
    collection: str | None = None  # documents: which collection
    k: int = Field(4, ge=1)  # documents / memory: how many to retrieve
    scopes: list[str] = Field(default_factory=lambda: ["user", "shared"])  # memory
    turns: int = Field(6, ge=1)  # history: the last N turns
    priority: int = 0  # higher is given room first
    max_tokens: int | None = Field(None, gt=0)  # this source's cap
    overflow: Literal["drop", "truncate", "summarise"] = "drop"

    @model_validator(mode="after")
    def _collection_for_documents(self) -> SourceSpec:
        if self.kind == "documents" and not self.collection:
            raise ValueError("a documents source needs a collection (wb.docs.add(COLLECTION, ...))")
        return self

    @property
    def label(self) -> str:
        """How the plan names this source."""
        return f"documents:{self.collection}" if self.kind == "documents" else self.kind


class ContextSpec(_Strict):
    """A validated spec (``name`` and ``version`` come from its file)."""

    name: str | None = None
    version: str | None = None
    description: str = ""
    system: str = ""
    variables: dict[str, Any] = Field(default_factory=dict)
    pinned: str = ""
    budget_tokens: int = Field(4000, gt=0)
    sources: list[SourceSpec] = Field(default_factory=list)

    def render_system(self, **call: Any) -> str:
        """The system prompt, rendered in Jinja's sandbox (undefined names are errors)."""
        if not self.system:
            return ""
        from jinja2 import StrictUndefined
        from jinja2 import TemplateError as JinjaError

        env = _bounded_env()(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=False)
        values = {**self.variables, "today": date.today().isoformat(), **call}
        where = f"context spec {self.name!r}: system template"
        try:
            env.deadline = time.monotonic() + TEMPLATE_SECONDS
            out: list[str] = []
            size = 0
            for piece in env.from_string(self.system).generate(values):
                size += len(piece)
                if size > TEMPLATE_CHARS:
                    raise TemplateError(f"{where}: renders to more than {TEMPLATE_CHARS:,} characters; shorten it")
                out.append(piece)
            return "".join(out).strip()
        except JinjaError as exc:
            raise TemplateError(f"{where}: {exc}; define it under variables:") from None
        except (OverflowError, RecursionError, MemoryError, TimeoutError) as exc:
            raise TemplateError(f"{where}: {exc or type(exc).__name__}; simplify its loops") from None


TEMPLATE_SECONDS = 1.0  # a system template renders in under this, or it is an error
TEMPLATE_CHARS = 200_000


@lru_cache(maxsize=1)
def _bounded_env() -> Any:
    """Jinja's sandbox with a time limit (a class made on first use, so jinja is imported lazily)."""
    from jinja2.sandbox import SandboxedEnvironment

    class Bounded(SandboxedEnvironment):
        """Jinja's sandbox, with a deadline checked at every call and attribute access."""

        deadline = float("inf")

        def _tick(self) -> None:
            if time.monotonic() > self.deadline:
                raise TimeoutError(f"it took longer than {TEMPLATE_SECONDS:g} s to render")

        def call(self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N807 - jinja's names
            self._tick()
            return super().call(__context, __obj, *args, **kwargs)

        def getattr(self, obj: Any, attribute: str) -> Any:
            self._tick()
            return super().getattr(obj, attribute)

    return Bounded


def find_spec(name: str, folder: Path) -> Path:
    """The file of spec ``name`` in ``folder`` (one-line error listing what exists)."""
    for suffix in SUFFIXES:
        path = folder / f"{name}{suffix}"
        if path.is_file():
            return path
    known = sorted({p.stem for p in folder.glob("*") if p.suffix in SUFFIXES}) if folder.is_dir() else []
    where = Path(os.path.relpath(folder))  # relative, so the message reads the same in any checkout
    raise ConfigError(
        f"no context spec {shown(name)} in {where}/ (have: {', '.join(known) or 'none'}); create {where / name}.yaml"
    )


def load_spec(name_or_path: str | Path, folder: Path) -> ContextSpec:
    """Load and validate a spec by name (from ``folder``) or path; version = hash of the file."""
    try:
        path = Path(name_or_path)
        if path.suffix not in SUFFIXES:
            path = find_spec(str(name_or_path), folder)
        elif not path.is_file():
            raise ConfigError(f"no such context spec file: {shown(str(path))}")
        raw = path.read_bytes()
    except OSError as exc:  # (a name too long for a file name, a spec file that may not be read)
        raise ConfigError(
            f"cannot read the context spec {shown(str(name_or_path))} ({exc.strerror or type(exc).__name__}): "
            f"name a spec in {folder}/ or a .yaml or .toml file that can be read"
        ) from None
    digest = hashlib.sha256(raw).hexdigest()
    cached = _PARSED.get((str(path), digest))
    if cached is not None:  # parsing YAML costs more than the rest of planning a context
        return cached
    spec = _parse(path, raw, digest)
    if len(_PARSED) > 256:
        _PARSED.clear()
    _PARSED[(str(path), digest)] = spec
    return spec


_PARSED: dict[tuple[str, str], ContextSpec] = {}  # (path, content hash) -> spec: an edit is a new key


def _parse(path: Path, raw: bytes, digest: str) -> ContextSpec:
    try:
        if path.suffix == ".toml":
            data = tomllib.loads(raw.decode())
        else:
            import yaml

            data = yaml.safe_load(raw) or {}
    except Exception as exc:  # a YAML or TOML syntax error
        first = str(exc).strip().splitlines()[0]
        raise ConfigError(f"{path}: not valid {path.suffix[1:].upper()}: {first}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of keys (system, sources, ...) at the top")
    try:
        return ContextSpec.model_validate({**data, "name": path.stem, "version": digest[:12]})
    except ValidationError as exc:
        raise ConfigError(_one_line(exc, {}, path)) from None
