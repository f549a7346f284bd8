"""Fill ``{name}`` placeholders in a prompt from a namespace (``{{`` and ``}}`` escape).

Besides variables (``{df}``, ``{row.name}``, ``{cfg[key]}``; never a private attribute such as ``{obj._secret}`` or
``{obj.__class__}``, so a prompt from elsewhere cannot walk into an object's insides) a notebook's cells can be named:
``{In[3]}`` (the source of execution 3), ``{Out[3]}`` (its result), ``{Err[3]}`` (its exception
with the traceback) and ``{Err}`` (the last one). Values are rendered for a model by
:func:`workbench.context.values.render_value` when a budget is given: a DataFrame as shape,
dtypes, summary and the rows that fit, a dict as JSON; each within ``max_value_tokens``.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from workbench.context.values import Counter, Rendered, approx_tokens, render_value
from workbench.errors import TemplateError
from workbench.serving.images import ImageError, as_image, is_image

_JSON_HINT = (
    'the prompt holds JSON ({text}...): double its braces so they are kept as written ({{{{"a": 1}}}}), '
    "or put the JSON in a variable and write {{name}}"
)


MAX_FORMAT_WIDTH = 10_000  # the widest a format spec may pad or the most digits it may ask for


class _Lookup(dict[str, Any]):
    def __missing__(self, key: str) -> Any:
        if key.strip()[:1] in "\"'[" or not key.strip():
            raise TemplateError(_JSON_HINT.format(text="{" + key.strip()[:20]))
        raise TemplateError(
            f"{{{key}}} in the prompt is not defined: define {key} in a cell above, "
            f"or write {{{{{key}}}}} for literal braces"
        )


class CellErrors:
    """``{Err[n]}`` / ``{Err}``: the exceptions cells raised, as traceback text (kept by ``%load_ext workbench``)."""

    def __init__(self) -> None:
        self.by_cell: dict[int, str] = {}
        self.sources: dict[int, str] = {}  # the failed cells' source (history may not be stored)
        self.last: int | None = None

    def record(self, execution_count: int, text: str, source: str = "") -> None:
        self.by_cell[execution_count] = text
        self.sources[execution_count] = source
        self.last = execution_count

    def __getitem__(self, n: int) -> str:
        if n not in self.by_cell:
            raise LookupError(f"cell {n} raised no error this session")
        return self.by_cell[n]

    def __str__(self) -> str:
        if self.last is None:
            raise LookupError("no cell has raised an error yet this session")
        return self.by_cell[self.last]


@dataclass
class Filled:
    """A filled prompt and how each value placed in it was rendered (``field``, kind, tokens, what was cut)."""

    text: str
    values: list[tuple[str, Rendered]] = field(default_factory=list)
    images: list[Any] = field(default_factory=list)  # the images placed in it (each stands as its marker)


class _Renderer(string.Formatter):
    """``str.format`` with cell references, clear errors for missing ones, and values rendered for a model."""

    def __init__(self, namespace: Mapping[str, Any], max_tokens: int | None, count: Counter) -> None:
        self.namespace, self.max_tokens, self.count = namespace, max_tokens, count
        self.values: list[tuple[str, Rendered]] = []
        self.images: list[Any] = []
        self._field = "value"

    def get_field(self, field_name: str, args: Any, kwargs: Any) -> Any:
        import _string  # the parser str.format itself uses

        self._field = field_name
        first, rest = _string.formatter_field_name_split(field_name)
        obj = self.get_value(first, args, kwargs)
        for is_attr, key in rest:
            if is_attr and str(key).startswith("_"):  # (as Jinja's sandbox: a prompt never reaches an object's insides)
                raise TemplateError(
                    f"{{{field_name}}} in the prompt names a private attribute ({key}): a prompt may read an object's "
                    "public attributes and items only; put what it should show in a variable"
                )
            try:
                obj = getattr(obj, key) if is_attr else obj[key]
            except (LookupError, AttributeError) as exc:
                raise TemplateError(_missing(field_name, first, key, exc)) from None
        if isinstance(obj, CellErrors):
            try:
                obj = str(obj)
            except LookupError as exc:
                raise TemplateError(f"{{{field_name}}} in the prompt: {exc.args[0]}") from None
        return obj, first

    def get_value(self, key: Any, args: Any, kwargs: Any) -> Any:
        if isinstance(key, int) or key == "":
            raise ValueError("a placeholder needs a name")
        return _Lookup(self.namespace)[key]

    def format_field(self, value: Any, format_spec: str) -> str:
        try:
            return self._formatted(value, format_spec)
        except (TemplateError, ImageError):
            raise
        except Exception as exc:  # noqa: BLE001 - a value's own __str__/__format__ may raise anything
            what = "is nested too deeply to render" if isinstance(exc, RecursionError) else "could not be rendered"
            raise TemplateError(
                f"{{{self._field}}} in the prompt {what} ({type(exc).__name__}: {str(exc)[:80]}): put a simpler "
                "value, or its text, in a variable"
            ) from None

    def _formatted(self, value: Any, format_spec: str) -> str:
        if self.max_tokens is not None and not isinstance(value, str) and is_image(value):  # shown, not described
            image = as_image(value)
            self.images.append(image)
            return image.marker
        if format_spec and max(map(int, re.findall(r"\d+", format_spec)), default=0) > MAX_FORMAT_WIDTH:
            raise TemplateError(
                f"{{{self._field}:{format_spec[:20]}}} in the prompt asks for a width or precision over "
                f"{MAX_FORMAT_WIDTH:,} characters (it would be built before the length check): use a smaller one"
            )
        if format_spec or self.max_tokens is None or isinstance(value, int | float | bool):
            return str(format(value, format_spec))
        if isinstance(value, str) and not self._field.startswith(("Err", "Out")):
            return value  # the user's own text (a variable, a cell's source) goes in as written
        rendered = render_value(value, self.max_tokens, name=self._field, count=self.count)
        self.values.append((self._field, rendered))
        return rendered.text


def _missing(field_name: str, first: str, key: Any, exc: BaseException) -> str:
    if first == "Out":
        return f"{{{field_name}}}: cell {key} has no output (run it, or name a cell whose result shows in Out)"
    if first == "In":
        return f"{{{field_name}}}: there is no cell {key} in this session's history (In has {key!r} missing)"
    if first == "Err":
        return f"{{{field_name}}}: {exc.args[0] if exc.args else 'no such error'}"
    return f"{{{field_name}}} in the prompt is not defined: {type(exc).__name__}: {exc}"


def fill_values(
    template: str, namespace: Mapping[str, Any], max_value_tokens: int | None = 2000, count: Counter = approx_tokens
) -> Filled:
    """``template`` filled from ``namespace``, each value rendered for a model within ``max_value_tokens``
    (``None``: ``str()`` as :func:`fill` does); ``.values`` says how each was rendered and what was cut.
    """
    renderer = _Renderer(namespace, max_value_tokens, count)
    text = _guarded(lambda: renderer.vformat(template, (), {}), template)
    return Filled(text, renderer.values, renderer.images)


def _guarded(run: Any, template: str) -> str:
    try:
        return str(run())
    except TemplateError:
        raise
    except (ValueError, IndexError) as exc:
        if "{" in template and any(q in template for q in ('{"', "{'", '{ "', "{\n")):
            raise TemplateError(_JSON_HINT.format(text=template[template.index("{") :][:20])) from None
        raise TemplateError(
            f"cannot fill the prompt ({exc}): use {{name}} placeholders, and write {{{{ and }}}} for literal braces"
        ) from None
    except (AttributeError, KeyError, TypeError) as exc:
        raise TemplateError(f"cannot fill the prompt: {type(exc).__name__}: {exc}") from None


def fill(template: str, namespace: Mapping[str, Any]) -> str:
    """``template`` with each ``{name}`` (or ``{name.attr}``, ``{name[key]}``) filled in with ``str()``."""
    return fill_values(template, namespace, None).text
