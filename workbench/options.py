"""``AskOptions``: everything a call can be told besides its prompt, in one frozen object.

``wb.ask(prompt, **kwargs)`` stays the friendly surface; the keywords become one
``AskOptions`` that flows unchanged through the pipeline. The magic builds the
same object from its flags, and code that makes many similar calls can build it
once and pass it positionally: ``wb.ask(prompt, opts)`` or
``wb.ask(prompt, opts, temperature=0)`` (keywords override the object's fields).
"""

from __future__ import annotations

import difflib
import math
import numbers
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING, Any, Literal, TypedDict

if TYPE_CHECKING:
    from workbench.context import ContextArg
    from workbench.context.template import Filled
    from workbench.result import Format
    from workbench.serving.router import TokenSink

Sink = Literal["html", "shell", "sql"]
FORMATS = ("markdown", "text", "json", "code")  # result.Format's values (imported lazily there)
MAX_PRIORITY = 1_000_000_000  # a call's queue priority, either way (it is kept in an SQLite integer)


def real_number(value: Any) -> bool:
    """A real number that is not NaN (NaN compares false with everything: as a limit, it would limit nothing),
    and not a bool.
    """
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and not math.isnan(value)


def json_problem(value: Any) -> str | None:
    """Why ``value`` cannot be written as JSON — nested too deeply, or circular — or ``None`` (other objects are
    written as their text).
    """
    import json

    try:
        json.dumps(value, default=str)
    except RecursionError:
        return "nested too deeply"
    except ValueError as exc:
        return str(exc).lower()  # "circular reference detected"
    return None


def whole_number(value: Any) -> bool:
    """An integer (Python's or numpy's), not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


@dataclass(frozen=True, kw_only=True)
class AskOptions:
    """How to make one call. Every field has the default ``wb.ask`` has always had.

    Attributes:
        model: a route or a litellm model name (``None``: the configured default route).
        session: continue this named conversation (its history is sent, the exchange is added).
        system: the system message.
        context: citable sources: text, ``{id: text}`` or a list of texts.
        user: who the call is for (cost attribution, budgets, memory scopes).
        task: what the call is for (cost attribution, budgets).
        agent: the agent making the call (attribution, guardrail locks).
        temperature: sampling temperature.
        max_tokens: the most answer tokens (also the budget's worst case).
        response_format: passed to the provider (``{"type": "json_object"}``).
        stream: stream the answer; ``on_token(delta)`` is called as text arrives.
        on_token: the streaming callback.
        format: how the ``Result`` shows itself: markdown, text, json or code (code also asks for code only).
        cache: ``False`` bypasses the response cache (``None``: as configured).
        budget: this call's own cap in USD; refused unless its worst case fits.
        priority: place in a rate-limited deployment's queue (higher goes first).
        max_wait: the longest wait (seconds) for a rate-limit slot before failing over.
        spec: a context spec (``contexts/NAME.yaml``) that builds the context within its budget.
        memory: a long-term memory scope (``user:alice``) whose memories the call is given.
        remember: with ``memory``: write the prompt to that scope.
        sink: where the answer is going (html, shell, sql): the output guardrail checks for it.
        schema: a JSON-schema dict or pydantic model: the answer must conform (one re-ask).
        images: images shown with the prompt (PNG/JPEG bytes, paths, PIL images, matplotlib or plotly
            figures); each stands in the prompt as its ``[image WxH png sha256:...]`` marker.
        values: fill the prompt's ``{name}`` placeholders from this mapping, each value rendered for a model
            (a DataFrame as a compact block, a figure as an image) within ``max_value_tokens``; what was cut
            is said in the block and recorded in the call's context plan.
        max_value_tokens: with ``values``: the most tokens one value takes (``None``: ``max_value_tokens`` in config).

    """

    model: str | None = None
    session: str | None = None
    system: str | None = None
    context: ContextArg = None
    user: str | None = None
    task: str | None = None
    agent: str | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    response_format: dict[str, Any] | None = None
    stream: bool = False
    on_token: TokenSink | None = None
    format: Format = "markdown"
    cache: bool | None = None
    budget: float | None = None
    priority: int = 0
    max_wait: float | None = None
    spec: str | None = None
    memory: str | None = None
    remember: bool = False
    sink: Sink | None = None
    schema: Any = None
    images: Sequence[Any] = ()
    values: Mapping[str, Any] | Filled | None = None
    max_value_tokens: int | None = None

    @classmethod
    def of(cls, options: AskOptions | None = None, overrides: dict[str, Any] | None = None) -> AskOptions:
        """``options`` (or the defaults) with ``overrides`` applied; an unknown name is an ``UnknownOption``."""
        from workbench.errors import UnknownOption, shown

        if options is not None and not isinstance(options, AskOptions):
            raise UnknownOption(f"options must be an AskOptions, not {type(options).__name__}: pass keywords instead")
        overrides = overrides or {}
        unknown = sorted(set(overrides) - NAMES)
        if unknown:
            close = difflib.get_close_matches(unknown[0], NAMES, n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise UnknownOption(f"ask() got an unexpected keyword argument {shown(unknown[0])}{hint}")
        if options is None:
            return cls(**overrides).checked()
        return (replace(options, **overrides) if overrides else options).checked()

    def checked(self) -> AskOptions:
        """These options, or a one-line :class:`~workbench.errors.WorkbenchError` for a value no call can take
        (checked before anything is sent or recorded); a single image (a path or bytes) counts as a list of one.
        """
        from workbench.errors import WorkbenchError, shown

        wrong = None
        if self.max_tokens is not None and not (whole_number(self.max_tokens) and self.max_tokens > 0):
            wrong = f"max_tokens must be a whole number of tokens above 0, not {shown(self.max_tokens)}"
        elif self.temperature is not None and not (
            real_number(self.temperature) and 0 <= self.temperature and math.isfinite(self.temperature)
        ):
            wrong = f"temperature must be a number from 0 (most providers take up to 2), not {shown(self.temperature)}"
        elif self.budget is not None and not (real_number(self.budget) and self.budget >= 0):
            wrong = f"budget must be dollars (0 or more), not {shown(self.budget)}"
        elif self.format not in FORMATS:
            wrong = f"format must be one of {', '.join(FORMATS)}, not {shown(self.format)}"
        elif not isinstance(self.stream, bool):
            wrong = f"stream is True or False, not {shown(self.stream)}"
        elif not isinstance(self.remember, bool):
            wrong = f"remember is True or False, not {shown(self.remember)}"
        elif self.cache is not None and not isinstance(self.cache, bool):
            wrong = f"cache must be True, False or None (as configured), not {shown(self.cache)}"
        elif not whole_number(self.priority) or abs(self.priority) > MAX_PRIORITY:
            wrong = (
                f"priority must be a whole number from -{MAX_PRIORITY:,} to {MAX_PRIORITY:,} (higher goes first), "
                f"not {shown(self.priority)}"
            )
        elif self.max_wait is not None and not (isinstance(self.max_wait, int | float) and self.max_wait >= 0):
            wrong = f"max_wait must be seconds >= 0, not {shown(self.max_wait)}"
        elif self.max_value_tokens is not None and not (
            whole_number(self.max_value_tokens) and self.max_value_tokens > 0
        ):
            wrong = f"max_value_tokens must be a whole number above 0, not {shown(self.max_value_tokens)}"
        elif self.context is not None and not isinstance(self.context, str | Mapping | list | tuple):
            wrong = f"context must be text, {{id: text}} or a list of texts, not {type(self.context).__name__}"
        elif not isinstance(self.images, str | bytes | bytearray | os.PathLike | list | tuple) and not _image(
            self.images
        ):
            wrong = (
                f"images must be an image or a list of them (bytes, paths, figures), not {type(self.images).__name__}"
            )
        elif self.response_format is not None and not isinstance(self.response_format, Mapping):
            wrong = (
                "response_format is what the provider takes, a dict such as {'type': 'json_object'} (schema= takes a "
                f"JSON schema or a pydantic model), not {shown(self.response_format)}"
            )
        elif isinstance(self.response_format, Mapping) and (problem := json_problem(self.response_format)):
            wrong = f"response_format cannot be written as JSON ({problem}): give plain values"
        elif isinstance(self.schema, Mapping) and (problem := json_problem(self.schema)):
            wrong = f"schema cannot be written as JSON ({problem}): give a plain JSON schema, or a pydantic model"
        elif self.on_token is not None and not callable(self.on_token):
            wrong = f"on_token must be a function taking each piece of text, not {type(self.on_token).__name__}"
        if wrong:
            raise WorkbenchError(wrong)
        plain: dict[str, Any] = {  # numpy's numbers as Python's (a request is JSON), one image as a list of one
            name: kind(value)
            for name, kind in (("max_tokens", int), ("temperature", float), ("budget", float))
            if (value := getattr(self, name)) is not None and type(value) is not kind
        }
        if isinstance(self.images, str | bytes | bytearray | os.PathLike) or _image(self.images):
            plain["images"] = (self.images,)
        return replace(self, **plain) if plain else self

    def changed(self) -> list[str]:
        """The names of the fields set to something other than their default."""
        default = AskOptions()
        return [f.name for f in fields(self) if getattr(self, f.name) != getattr(default, f.name)]

    def for_step(self) -> AskOptions:
        """These options for ``wb.step`` (one agent turn on messages as given): a clear error for any that
        only make sense when the workbench composes the prompt.
        """
        unused = [name for name in self.changed() if name not in STEP_FIELDS]
        if unused:
            from workbench.errors import WorkbenchError

            raise WorkbenchError(
                f"a step sends its messages as given, so {', '.join(unused)} cannot apply: "
                "put them in the messages, or use wb.ask"
            )
        return self

    def for_reask(self) -> AskOptions:
        """The options of the one re-ask after an answer that did not match ``schema``.

        Kept: the model, instructions (with the schema's), attribution, sampling, cache,
        budget, format and sink. Dropped, on purpose: the session (the failed exchange
        is not history), context/spec/memory (the re-ask prompt quotes the question and
        the bad answer; it needs nothing else), ``remember`` (the prompt was remembered
        once), streaming (the answer is parsed, not shown live), the queue place, and
        the schema itself (the caller conforms the re-ask's answer).
        """
        return replace(
            self,
            session=None,
            context=None,
            spec=None,
            memory=None,
            remember=False,
            response_format=None,
            stream=False,
            on_token=None,
            priority=0,
            max_wait=None,
            schema=None,
            images=(),
            values=None,
        )


class AskKwargs(TypedDict, total=False):
    """The keywords ``wb.ask``/``wb.aask`` take: the fields of :class:`AskOptions` (for type checkers)."""

    model: str | None
    session: str | None
    system: str | None
    context: ContextArg
    user: str | None
    task: str | None
    agent: str | None
    temperature: float | None
    max_tokens: int | None
    response_format: dict[str, Any] | None
    stream: bool
    on_token: TokenSink | None
    format: Format
    cache: bool | None
    budget: float | None
    priority: int
    max_wait: float | None
    spec: str | None
    memory: str | None
    remember: bool
    sink: Sink | None
    schema: Any
    images: Sequence[Any]
    values: Mapping[str, Any] | Filled | None
    max_value_tokens: int | None


NAMES = frozenset(f.name for f in fields(AskOptions))
# What wb.step honours: who and what the turn is for, its model, sampling and budget.
# (images: the ones the messages name by hash and the store may not hold yet, an agent's first step)
STEP_FIELDS = frozenset({"model", "session", "user", "task", "agent", "budget", "max_tokens", "temperature", "images"})


def _image(value: Any) -> bool:
    """Whether ``value`` is one image object (a PIL image, a matplotlib or plotly figure), not a list of them."""
    from workbench.serving.images import is_image

    return is_image(value)
