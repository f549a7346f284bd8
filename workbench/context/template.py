"""Fill ``{name}`` placeholders in a prompt from a namespace (``{{`` and ``}}`` escape)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from workbench.errors import TemplateError

_JSON_HINT = (
    'the prompt holds JSON ({text}...): double its braces so they are kept as written ({{{{"a": 1}}}}), '
    "or put the JSON in a variable and write {{name}}"
)


class _Lookup(dict[str, Any]):
    def __missing__(self, key: str) -> Any:
        if key.strip()[:1] in "\"'[" or not key.strip():
            raise TemplateError(_JSON_HINT.format(text="{" + key.strip()[:20]))
        raise TemplateError(
            f"{{{key}}} in the prompt is not defined: define {key} in a cell above, "
            f"or write {{{{{key}}}}} for literal braces"
        )


def fill(template: str, namespace: Mapping[str, Any]) -> str:
    """``template`` with each ``{name}`` (or ``{name.attr}``, ``{name[key]}``) filled in."""
    try:
        return template.format_map(_Lookup(namespace))
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
