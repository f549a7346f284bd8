"""An eval suite: a YAML file naming a JSONL dataset of cases, a prompt and the scorers.

.. code-block:: yaml

    name: vendor-faq
    dataset: vendor_faq.jsonl      # relative to this file; one JSON case per line
    prompt: "{input}"              # filled from the case's fields
    system: Answer from the sources and cite them.
    model: local/extractive        # the default; wb.evals.run(models=[...]) overrides
    context: null                  # a context spec name; a case's "context" field is given as sources
    scorers:
      - contains                   # a name, or {name: options}
      - grounded: {min: 0.5}
      - judge: {rubric: "Is the answer correct and complete?", model: local/scripted}
      - regex: {pattern: "\\[[^\\]]+\\]", as: cites}
    thresholds: {contains: 0.8}    # mean score a scorer must reach (the pytest item fails under it)

A case is ``{"id": ..., "input": ..., "expected": ..., "context": ...}``; only ``input`` is required.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from workbench.errors import ConfigError


class ScorerSpec(BaseModel):
    """One scorer of a suite: its registered name, a label (``as``) and its options."""

    model_config = ConfigDict(extra="forbid")

    name: str
    label: str
    options: dict[str, Any] = Field(default_factory=dict)


class Suite(BaseModel):
    """A validated suite with its cases loaded."""

    model_config = ConfigDict(extra="forbid")

    name: str
    description: str = ""
    dataset: str
    prompt: str = "{input}"
    system: str | None = None
    model: str | None = None
    context: str | None = None
    repeats: int = Field(default=1, ge=1)
    scorers: list[ScorerSpec]
    thresholds: dict[str, float] = Field(default_factory=dict)
    cases: list[dict[str, Any]] = Field(default_factory=list, exclude=True)
    path: Path | None = Field(default=None, exclude=True)
    version: str = ""

    @field_validator("scorers", mode="before")
    @classmethod
    def _scorers(cls, value: Any) -> list[dict[str, Any]]:
        if not isinstance(value, list) or not value:
            raise ValueError("give at least one scorer, e.g. [contains] or [{regex: {pattern: '...'}}]")
        out = []
        for item in value:
            if isinstance(item, ScorerSpec):
                out.append(item.model_dump())
                continue
            options: dict[str, Any]
            if isinstance(item, str):
                name, options = item, {}
            elif isinstance(item, dict) and len(item) == 1:
                name, given = next(iter(item.items()))
                options = dict(given or {})
            else:
                raise ValueError(f"a scorer is a name or {{name: options}}, not {item!r}")
            out.append({"name": name, "label": options.pop("as", name), "options": options})
        labels = [s["label"] for s in out]
        if len(set(labels)) != len(labels):
            raise ValueError(f"two scorers share a label in {labels}: give one `as: other_name`")
        return out

    def render(self, case: dict[str, Any]) -> str:
        """The prompt for ``case`` (its fields filled into the template)."""
        try:
            return self.prompt.format(**case)
        except KeyError as exc:
            raise ConfigError(
                f"suite {self.name}: the prompt uses {{{exc.args[0]}}} but case {case['id']!r} has no such field"
            ) from None


def load_suite(ref: str | Path, folder: str | Path = "evals") -> Suite:
    """Load a suite by path, or by name from ``folder`` (``NAME.yaml`` / ``NAME.eval.yaml``)."""
    import yaml

    if not isinstance(ref, str | Path):
        raise ConfigError(f"an eval suite is a name, a path or a Suite, not {type(ref).__name__}")
    path = Path(ref)
    if not path.is_file():
        candidates = [Path(folder) / f"{ref}{ext}" for ext in (".eval.yaml", ".yaml", ".yml")]
        path = next((c for c in candidates if c.is_file()), path)
    if not path.is_file():
        raise ConfigError(
            f"no eval suite {str(ref)!r} (looked for {path} and in {folder}/): write "
            f"{ref if str(ref).endswith(('.yaml', '.yml')) else f'{folder}/{ref}.eval.yaml'} with a dataset and scorers"
        )
    text = path.read_text()
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a suite is a mapping with name, dataset and scorers")
    data.setdefault("name", path.name.split(".")[0])
    try:
        suite = Suite.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(p) for p in error["loc"]) or "suite"
        raise ConfigError(f"{path}: {where}: {error['msg']}") from None
    dataset = (path.parent / suite.dataset).resolve()
    if not dataset.is_file():
        raise ConfigError(f"{path}: dataset {suite.dataset} not found (looked at {dataset})")
    raw = dataset.read_text()
    cases = []
    for n, line in enumerate(raw.splitlines(), 1):
        if not line.strip():
            continue
        try:
            case = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{dataset.name} line {n}: not JSON ({exc.msg})") from None
        if not isinstance(case, dict) or "input" not in case:
            raise ConfigError(f'{dataset.name} line {n}: a case is an object with at least an "input"')
        case.setdefault("id", f"case-{n}")
        cases.append(case)
    if not cases:
        raise ConfigError(f"{dataset.name} has no cases")
    ids = [str(c["id"]) for c in cases]
    if len(set(ids)) != len(ids):
        raise ConfigError(f"{dataset.name}: case ids repeat; each case needs its own id")
    version = hashlib.sha256((text + "\x1f" + raw).encode()).hexdigest()[:12]
    return suite.model_copy(update={"cases": cases, "path": path, "version": version})
