"""Scorers: each turns (answer, case) into a score in [0, 1] and a short why.

Built in: ``exact``, ``contains``, ``regex``, ``json_schema``, ``grounded`` (against the
case's context), ``judge`` (an LLM with a rubric). Anything else: ``@register_scorer("name")``
on ``fn(output, case, ctx, **options) -> float | bool | (float, why)``; ``ctx.wb`` is the
Workbench and ``ctx.result`` the call's Result (``None`` when scoring stored text).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from workbench.errors import ConfigError
from workbench.plugins import REGISTRY

if TYPE_CHECKING:
    from workbench.result import Result
    from workbench.runtime import Workbench

ScorerFn = Callable[..., Any]
JUDGE_PROMPT = """You grade an answer against a rubric. Reply with one line: SCORE: N (N from 1 to 5), then why.

Rubric: {rubric}

Question: {input}
{reference}Answer: {output}"""
_SCORE = re.compile(r"SCORE:\s*([1-5])", re.I)


class CaseError(Exception):
    """A case lacks what a scorer needs (e.g. no ``expected``): that case scores 0 with this reason."""


@dataclass(slots=True)
class ScoreContext:
    """What a scorer may use besides the text: the Workbench, the call's Result, the suite's judge model."""

    wb: Workbench
    result: Result | None = None
    judge_model: str | None = None


@dataclass(frozen=True, slots=True)
class Score:
    """A scorer's verdict on one answer."""

    value: float
    detail: str = ""


def register_scorer(name: str) -> Callable[[ScorerFn], ScorerFn]:
    """``@register_scorer("polite")`` makes ``fn(output, case, ctx, **options)`` usable in suites by name."""

    def add(fn: ScorerFn) -> ScorerFn:
        REGISTRY.add("scorer", name, fn, source="workbench" if fn.__module__ == __name__ else None)
        return fn

    return add


def scorer(name: str) -> ScorerFn:
    """The registered scorer ``name``, or a one-line error listing the known ones."""
    fn = REGISTRY.get("scorer", name)
    if fn is None:
        raise ConfigError(
            f"no scorer named {name!r}: use one of {', '.join(REGISTRY.names('scorer'))}, or register one "
            "with @workbench.evals.register_scorer"
        )
    return fn


def score(name: str, output: str, case: dict[str, Any], ctx: ScoreContext, options: dict[str, Any]) -> Score:
    """Run scorer ``name``; its answer is clamped to [0, 1]. A scorer that raises scores 0 with the error."""
    fn = scorer(name)
    opts = {k: v for k, v in options.items() if k != "threshold"}
    try:
        out = fn(output, case, ctx, **opts)
    except CaseError as exc:
        return Score(0.0, str(exc))
    except ConfigError:
        raise
    except Exception as exc:  # noqa: BLE001 - a scorer's bug is that case's zero, with the reason kept
        return Score(0.0, f"scorer failed: {type(exc).__name__}: {exc}"[:300])
    value, detail = out if isinstance(out, tuple) else (out, "")
    return Score(min(1.0, max(0.0, float(value))), str(detail)[:300])


def _expected(case: dict[str, Any], field: str) -> Any:
    if field not in case:
        raise CaseError(f"case {case.get('id')!r} has no {field!r} field for this scorer")
    return case[field]


@register_scorer("exact")
def exact(
    output: str, case: dict[str, Any], ctx: ScoreContext, field: str = "expected", ignore_case: bool = False
) -> tuple[float, str]:
    """1 when the answer is the expected text (whitespace trimmed)."""
    want, got = str(_expected(case, field)).strip(), output.strip()
    if ignore_case:
        want, got = want.lower(), got.lower()
    return float(want == got), "" if want == got else f"expected {want[:60]!r}"


@register_scorer("contains")
def contains(
    output: str, case: dict[str, Any], ctx: ScoreContext, field: str = "expected", ignore_case: bool = True
) -> tuple[float, str]:
    """The share of the expected strings (one, or a list) found in the answer."""
    want = _expected(case, field)
    wanted = [str(w) for w in (want if isinstance(want, list) else [want])]
    text = output.lower() if ignore_case else output
    missing = [w for w in wanted if (w.lower() if ignore_case else w) not in text]
    return 1 - len(missing) / len(wanted), f"missing {missing}" if missing else ""


@register_scorer("regex")
def regex(output: str, case: dict[str, Any], ctx: ScoreContext, pattern: str = "") -> tuple[float, str]:
    """1 when ``pattern`` is found in the answer."""
    if not pattern:
        raise ConfigError("the regex scorer needs a pattern: {regex: {pattern: '...'}}")
    try:
        found = re.search(pattern, output)
    except re.error as exc:
        raise ConfigError(f"regex scorer: bad pattern {pattern!r} ({exc})") from None
    return float(found is not None), "" if found else "no match"


@register_scorer("json_schema")
def json_schema(
    output: str, case: dict[str, Any], ctx: ScoreContext, schema: dict[str, Any] | None = None, field: str | None = None
) -> tuple[float, str]:
    """1 when the answer is JSON (a ```json fence is fine) valid against ``schema`` (or the case's ``field``)."""
    import jsonschema

    schema = schema if schema is not None else (_expected(case, field) if field else None)
    if not isinstance(schema, dict):
        raise ConfigError("the json_schema scorer needs a schema: {json_schema: {schema: {...}}}")
    text = re.sub(r"^```(?:json)?\s*|\s*```$", "", output.strip())
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        return 0.0, f"not JSON ({exc.msg})"
    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(value), key=lambda e: list(e.path))
    return float(not errors), errors[0].message[:200] if errors else ""


@register_scorer("grounded")
def grounded(
    output: str, case: dict[str, Any], ctx: ScoreContext, field: str = "context", min: float = 0.5
) -> tuple[float, str]:  # noqa: A002 - the suite's option name
    """The share of the answer's sentences supported by the case's context (see context/grounding.py)."""
    from workbench.context.compose import context_items
    from workbench.context.grounding import grounding

    sources = [text for _, text in context_items(_expected(case, field))]
    value = grounding(output, sources)
    if value is None:
        return 0.0, "nothing to check (empty answer or context)"
    return value, f"{value:.0%} of sentences supported" + ("" if value >= min else f", under {min:.0%}")


@register_scorer("judge")
def judge(
    output: str,
    case: dict[str, Any],
    ctx: ScoreContext,
    rubric: str = "",
    model: str | None = None,
    field: str = "expected",
) -> tuple[float, str]:
    """An LLM grades the answer 1-5 against ``rubric`` (and the expected answer, if the case has one): (N-1)/4."""
    if not rubric:
        raise ConfigError("the judge scorer needs a rubric: {judge: {rubric: 'Is the answer ...?'}}")
    reference = f"Reference answer: {case[field]}\n" if field in case else ""
    prompt = JUDGE_PROMPT.format(rubric=rubric, input=case["input"], reference=reference, output=output)
    verdict = ctx.wb.ask(prompt, model=model or ctx.judge_model, task="eval:judge", temperature=0.0, cache=False)
    found = _SCORE.search(verdict.text)
    if not found:
        return 0.0, f"the judge gave no SCORE line: {verdict.text[:80]!r}"
    n = int(found.group(1))
    return (n - 1) / 4, f"judge: {n}/5 ({verdict.call_id})"
