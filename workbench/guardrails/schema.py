"""Structured output: an answer must be JSON matching a schema; one automatic re-ask when it isn't.

``wb.ask(..., schema=S)`` takes a JSON schema (a dict) or a pydantic model class. The
system prompt gets an instruction with the schema; the answer is parsed (a fenced
```json block or the first JSON value in the text) and validated with ``jsonschema`` (or
the pydantic model). If that fails, the model is asked once more with the error and its
previous answer; if the second answer fails too, :class:`SchemaViolation` names the
error. Both calls are recorded; ``result.data`` holds the parsed value (a model instance
for a pydantic schema).
"""

from __future__ import annotations

import json
import re
from typing import Any

from workbench.errors import GuardrailViolation

_FENCED = re.compile(r"```(?:json)?\s*\n(.*?)```", re.S)


class SchemaViolation(GuardrailViolation):
    """The answer did not match the requested schema, even after one re-ask."""


def json_schema(schema: Any) -> dict[str, Any]:
    """The JSON schema of ``schema`` (a dict, or a pydantic model class)."""
    if isinstance(schema, dict):
        return schema
    if isinstance(schema, type) and hasattr(schema, "model_json_schema"):
        return schema.model_json_schema()
    raise GuardrailViolation(f"schema must be a JSON schema (a dict) or a pydantic model class, not {schema!r}")


def instruction(schema: Any) -> str:
    """What the system prompt says about the answer's shape."""
    return "Answer with only a JSON value (no prose) that matches this JSON schema:\n" + json.dumps(
        json_schema(schema), sort_keys=True
    )


def extract_json(text: str) -> Any:
    """The JSON value in ``text``: a fenced block, the whole text, or the first object/array in it."""
    fenced = _FENCED.search(text)
    candidate = fenced.group(1) if fenced else text.strip()
    try:
        return json.loads(candidate)
    except json.JSONDecodeError:
        pass
    decoder = json.JSONDecoder()
    for m in re.finditer(r"[\[{]", candidate):
        try:
            return decoder.raw_decode(candidate[m.start() :])[0]
        except json.JSONDecodeError:
            continue
    raise ValueError("the answer holds no JSON value")


def conform(text: str, schema: Any) -> tuple[Any, str | None]:
    """``(value, None)`` when ``text`` holds JSON matching ``schema``, else ``(None, what is wrong)``."""
    try:
        value = extract_json(text)
    except ValueError as exc:
        return None, str(exc)
    if isinstance(schema, type) and hasattr(schema, "model_validate"):
        from pydantic import ValidationError

        try:
            return schema.model_validate(value), None
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"]) or "the value"
            return None, f"{where}: {err['msg']}"
    import jsonschema

    error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(json_schema(schema)).iter_errors(value))
    if error is None:
        return value, None
    where = ".".join(str(p) for p in error.absolute_path) or "the value"
    return None, f"{where}: {error.message}"


def reask_prompt(prompt: str, answer: str, error: str, schema: Any) -> str:
    """The one follow-up: the original request, the answer given, what was wrong, and the schema again."""
    return (
        f"{prompt}\n\nYour previous answer did not match the required JSON schema ({error}).\n"
        f"Previous answer:\n{answer}\n\n{instruction(schema)}"
    )
