"""Tools: typed Python functions a model may call, with a JSON schema and a risk level.

``@wb.tool`` (or ``@wb.tool(risk="destructive", name="db.drop")``) turns a function into a
tool. Its parameters' type hints and defaults become a pydantic model, so the JSON schema
the model sees and the validation of the arguments it sends come from the same place; the
docstring's first paragraph is the description and a Google-style ``Args:`` section
describes each parameter. ``risk`` is ``read`` (no side effects), ``write`` or
``destructive`` — what approvals and the destructive-call cap look at.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from workbench.errors import WorkbenchError, shown
from workbench.plugins import REGISTRY

if TYPE_CHECKING:
    import pandas as pd

Risk = Literal["read", "write", "destructive"]
RISKS = ("read", "write", "destructive")
_NAME = re.compile(r"^[A-Za-z_][\w.-]{0,63}$")


class ToolError(WorkbenchError):
    """A tool is unknown, was given bad arguments, or failed."""


@dataclass
class Tool:
    """A callable the model can use: name, description, JSON schema of its parameters, risk."""

    name: str
    description: str
    parameters: dict[str, Any]
    risk: str = "read"
    fn: Callable[..., Any] | None = field(default=None, repr=False)
    source: str = "python"  # python | mcp:SERVER | agent
    validate: Callable[[dict[str, Any]], dict[str, Any]] | None = field(default=None, repr=False)

    def schema(self) -> dict[str, Any]:
        """The OpenAI-style function schema sent to the model (dots are not allowed there: ``__``)."""
        return {
            "type": "function",
            "function": {"name": wire_name(self.name), "description": self.description, "parameters": self.parameters},
        }

    def check(self, arguments: dict[str, Any]) -> dict[str, Any]:
        """``arguments`` validated against the tool's schema (its pydantic model, else the JSON schema)."""
        if not isinstance(arguments, dict):
            raise ToolError(f"tool {self.name} takes a JSON object of arguments, not {type(arguments).__name__}")
        if self.validate is not None:
            return self.validate(arguments)
        import jsonschema

        try:
            jsonschema.validate(arguments, self.parameters or {"type": "object"})
        except jsonschema.ValidationError as exc:
            where = ".".join(str(p) for p in exc.absolute_path) or "arguments"
            raise ToolError(f"tool {self.name}: {where}: {exc.message}") from None
        except jsonschema.SchemaError:
            pass  # a server's schema we can't read: the server validates
        return arguments

    def run(self, arguments: dict[str, Any]) -> Any:
        """Validate ``arguments`` and call the tool (a coroutine function is run to completion)."""
        if self.fn is None:
            raise ToolError(f"tool {self.name} has nothing to run")
        args = self.validate(arguments) if self.validate else arguments
        out = self.fn(**args)
        if inspect.iscoroutine(out):
            out = asyncio.run(out) if not _in_loop() else _run_in_thread(out)
        return out


def wire_name(name: str) -> str:
    """A tool name as providers accept it (``[A-Za-z0-9_-]``): ``db.query`` -> ``db__query``."""
    return name.replace(".", "__")


def _in_loop() -> bool:
    try:
        asyncio.get_running_loop()
        return True
    except RuntimeError:
        return False


def _run_in_thread(coro: Any) -> Any:
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def describe(fn: Callable[..., Any]) -> tuple[str, dict[str, str]]:
    """A function's description (first docstring paragraph) and its ``Args:`` descriptions."""
    doc = inspect.getdoc(fn) or ""
    description = doc.split("\n\n", 1)[0].replace("\n", " ").strip()
    args: dict[str, str] = {}
    section = re.search(r"^(?:Args|Arguments|Parameters):\s*\n((?:[ \t]+.*\n?)+)", doc, re.M)
    if section:
        for m in re.finditer(r"^[ \t]+(\w+)(?:\s*\([^)]*\))?:\s*(.+)$", section.group(1), re.M):
            args[m.group(1)] = m.group(2).strip()
    return description, args


def from_function(
    fn: Callable[..., Any], name: str | None = None, risk: str = "read", description: str | None = None
) -> Tool:
    """A :class:`Tool` from a typed function: schema and validation from its signature, via pydantic."""
    from pydantic import ConfigDict, Field, ValidationError, create_model

    if risk not in RISKS:
        raise ToolError(f"risk must be one of {', '.join(RISKS)}, not {shown(risk)}")
    name = name or fn.__name__
    if not _NAME.match(name):
        raise ToolError(f"tool name {name!r}: use letters, digits, '_', '-' and '.' (at most 64)")
    text, arg_docs = describe(fn)
    fields: dict[str, Any] = {}
    for pname, param in inspect.signature(fn).parameters.items():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise ToolError(f"tool {name}: *args/**kwargs can't be described to a model; name each parameter")
        if param.annotation is inspect.Parameter.empty:
            raise ToolError(f"tool {name}: parameter {pname!r} needs a type hint (it becomes the JSON schema)")
        default = ... if param.default is inspect.Parameter.empty else param.default
        fields[pname] = (param.annotation, Field(default, description=arg_docs.get(pname)))
    hints = inspect.get_annotations(fn, eval_str=True)
    fields = {k: (hints.get(k, t), f) for k, (t, f) in fields.items()}
    model = create_model(f"{wire_name(name)}_args", __config__=ConfigDict(extra="forbid"), **fields)
    schema = model.model_json_schema()
    schema.pop("title", None)
    for prop in schema.get("properties", {}).values():
        prop.pop("title", None)

    def validate(arguments: dict[str, Any]) -> dict[str, Any]:
        try:
            return dict(model.model_validate(arguments))
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"]) or "arguments"
            raise ToolError(f"tool {name}: {where}: {err['msg']}") from None

    return Tool(name, description or text or name, schema, risk, fn, "python", validate)


class Tools:
    """``wb.tools``: the tools this workbench knows — Python functions, MCP servers' tools, agents."""

    def __init__(self) -> None:
        self._registered: dict[str, Tool] = {}
        self._plugins_added = False

    @property
    def _tools(self) -> dict[str, Tool]:
        """This workbench's tools, with the plug-ins' (``@workbench.plugins.tool``) added on first use."""
        if not self._plugins_added:
            self._plugins_added = True
            for name, entry in REGISTRY.table("tool").items():
                if name not in self._registered:
                    obj = entry.obj
                    risk = getattr(obj, "__workbench_risk__", "read")
                    self._registered[name] = obj if isinstance(obj, Tool) else from_function(obj, name, risk)
        return self._registered

    def __call__(
        self,
        fn: Callable[..., Any] | None = None,
        *,
        name: str | None = None,
        risk: str = "read",
        description: str | None = None,
    ) -> Any:
        """Register ``fn`` as a tool; works bare (``@wb.tool``) or with options (``@wb.tool(risk=...)``)."""

        def register(f: Callable[..., Any]) -> Callable[..., Any]:
            self.add(from_function(f, name, risk, description))
            return f

        return register(fn) if fn is not None else register

    def add(self, tool: Tool) -> Tool:
        """Register (or replace) a tool."""
        self._tools[tool.name] = tool
        return tool

    def remove(self, name: str) -> None:
        self._tools.pop(name, None)

    def get(self, name: str) -> Tool:
        """The tool called ``name`` (or its wire name, ``db__query``)."""
        tool = self._tools.get(name) or next((t for t in self._tools.values() if wire_name(t.name) == name), None)
        if tool is None:
            known = ", ".join(sorted(self._tools)) or "none yet (decorate a function with @wb.tool)"
            raise ToolError(f"unknown tool {name!r}; known: {known}")
        return tool

    def select(self, names: list[str] | str | None) -> list[Tool]:
        """Tools by name or glob (``db.*``); ``None`` is every tool."""
        import fnmatch

        if names is None:
            return list(self._tools.values())
        if isinstance(names, str):
            names = [n.strip() for n in names.split(",") if n.strip()]
        chosen: list[Tool] = []
        for n in names:
            matched = [t for t in self._tools.values() if fnmatch.fnmatchcase(t.name, n)] if "*" in n else [self.get(n)]
            if not matched:
                raise ToolError(f"no tool matches {n!r}; known: {', '.join(sorted(self._tools))}")
            chosen += [t for t in matched if t not in chosen]
        return chosen

    def search(self, query: str, among: list[Tool], k: int) -> list[Tool]:
        """The ``k`` tools whose names and descriptions share the most (rarer counting more) words with ``query``."""
        import math

        def words(text: str) -> set[str]:
            return {w for w in re.findall(r"[a-z0-9]+", text.lower()) if len(w) > 2}

        docs = [words(f"{t.name.replace('.', ' ').replace('_', ' ')} {t.description}") for t in among]
        wanted = words(query)
        df = {w: sum(w in d for d in docs) for w in wanted}
        scored = [(sum(math.log(1 + len(docs) / df[w]) for w in wanted & d), i) for i, d in enumerate(docs)]
        return [among[i] for _, i in sorted(scored, key=lambda s: (-s[0], s[1]))[:k]]

    def __contains__(self, name: str) -> bool:
        return name in self._tools

    def __len__(self) -> int:
        return len(self._tools)

    def df(self) -> pd.DataFrame:
        """The tools as a table: name, risk, source, description, parameters."""
        import pandas as pd

        rows = [
            {
                "name": t.name,
                "risk": t.risk,
                "source": t.source,
                "description": t.description,
                "parameters": ", ".join(t.parameters.get("properties", {})),
            }
            for t in self._tools.values()
        ]
        return pd.DataFrame(rows, columns=["name", "risk", "source", "description", "parameters"])

    def _repr_html_(self) -> str:
        return self.df().to_html(index=False)

    def __repr__(self) -> str:
        return f"Tools({', '.join(sorted(self._tools))})"


def result_text(value: Any) -> str:
    """A tool's return value as the text the model is given."""
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, default=str, ensure_ascii=False)
    except (TypeError, ValueError):
        return str(value)
