"""``wb.evals``: run suites over models and context specs, store every score, compare runs.

``wb.evals.run("vendor-faq", models=["local/extractive", "local/echo"], repeats=3)`` runs
each case ``repeats`` times per (model, context) variant, in parallel up to ``concurrency``,
with a progress bar in notebooks. Every variant is one ``eval_runs`` row (the suite's
version, model, context, cost) and every score one ``eval_results`` row with the call id,
so a run can be the baseline of a later one (``compare``) and each score traces back to
its call.
"""

from __future__ import annotations

import json
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench.errors import ConfigError, WorkbenchError
from workbench.evals.gate import compare, interval
from workbench.evals.scorers import ScoreContext, score, scorer
from workbench.evals.suite import Suite, load_suite
from workbench.guardrails.scanners import check_name, scrub
from workbench.observability.calls import served_models
from workbench.store import new_id, utcnow

if TYPE_CHECKING:
    import pandas as pd

    from workbench.runtime import Workbench

PASS_AT = {"grounded": "min", "judge": 0.75}  # a single answer passes at this score (others: 1.0)
RESULT_COLUMNS = [
    "run_id",
    "model",
    "context",
    "case_id",
    "repeat",
    "scorer",
    "score",
    "passed",
    "detail",
    "output",
    "call_id",
    "latency_ms",
    "cost_usd",
]


@dataclass
class EvalReport:
    """The runs of one ``wb.evals.run``: ``results`` (every score), ``summary()``, ``chart()``, ``failures()``."""

    suite: Suite
    runs: list[dict[str, Any]]
    results: pd.DataFrame

    @property
    def run_ids(self) -> list[str]:
        """One run id per (model, context) variant."""
        return [r["id"] for r in self.runs]

    def summary(self) -> pd.DataFrame:
        """Per variant and scorer: mean score, its 95% interval, pass rate, threshold and whether it is met."""
        import pandas as pd

        rows = []
        for run in self.runs:
            part = self.results[self.results["run_id"] == run["id"]]
            for spec in self.suite.scorers:
                scores = part[part["scorer"] == spec.label]
                low, high = interval(scores)
                threshold = self.suite.thresholds.get(spec.label, spec.options.get("threshold"))
                mean = float(scores["score"].mean()) if len(scores) else float("nan")
                rows.append(
                    {
                        "run_id": run["id"],
                        "model": run["model"],
                        "context": run["context"] or "-",
                        "scorer": spec.label,
                        "mean": mean,
                        "ci_low": low,
                        "ci_high": high,
                        "pass_rate": float(scores["passed"].mean()) if len(scores) else float("nan"),
                        "n": len(scores),
                        "threshold": threshold,
                        "ok": None if threshold is None else bool(mean >= threshold),
                    }
                )
        return pd.DataFrame(rows)

    def failures(self) -> list[str]:
        """One line per (variant, scorer) under its threshold."""
        df = self.summary()
        return [
            f"{r.model} [{r.context}] {r.scorer}: mean {r.mean:.3f} is under the threshold {r.threshold:g}"
            for r in df.itertuples()
            if r.ok is False
        ]

    def chart(self) -> Any:
        """A plotly grouped bar chart: mean score per scorer, one colour per variant, 95% intervals as error bars."""
        import plotly.graph_objects as go

        df = self.summary()
        fig = go.Figure()
        for (model, context), part in df.groupby(["model", "context"], sort=False):
            name = model if context == "-" else f"{model} · {context}"
            fig.add_bar(
                x=part["scorer"],
                y=part["mean"],
                name=name,
                error_y={
                    "type": "data",
                    "symmetric": False,
                    "array": part["ci_high"] - part["mean"],
                    "arrayminus": part["mean"] - part["ci_low"],
                },
                hovertemplate="%{x}: %{y:.3f}<extra>" + name + "</extra>",
            )
        for label, threshold in self.suite.thresholds.items():
            fig.add_scatter(
                x=[label],
                y=[threshold],
                mode="markers",
                marker={"symbol": "line-ew-open", "size": 40, "color": "black"},
                name=f"threshold {label}",
                showlegend=False,
            )
        repeats = self.runs[0]["repeats"] if self.runs else 1
        fig.update_layout(
            barmode="group",
            yaxis_range=[0, 1.05],
            template="plotly_white",
            yaxis_title="mean score",
            title=f"{self.suite.name}: {len(self.suite.cases)} cases × {repeats} repeats",
        )
        return fig

    def _repr_html_(self) -> str:
        df = self.summary()[["model", "context", "scorer", "mean", "ci_low", "ci_high", "pass_rate", "threshold", "ok"]]
        return df.to_html(index=False, float_format=lambda v: f"{v:.3f}")


class Evals:
    """``wb.evals``: ``run``, ``runs``, ``results``, ``compare``, ``latest``."""

    def __init__(self, wb: Workbench):
        self.wb = wb

    @property
    def folder(self) -> Path:
        """Where suites are looked up by name: ``evals/`` beside workbench.toml."""
        return self.wb.settings.root / "evals"

    def load(self, suite: str | Path | Suite) -> Suite:
        """A suite by name (``evals/NAME.yaml``), path, or as given."""
        return suite if isinstance(suite, Suite) else load_suite(suite, self.folder)

    def run(
        self,
        suite: str | Path | Suite,
        models: list[str] | str | None = None,
        contexts: list[str | None] | str | None = None,
        repeats: int | None = None,
        *,
        concurrency: int = 4,
        progress: bool | None = None,
        judge_model: str | None = None,
    ) -> EvalReport:
        """Run every case ``repeats`` times for each model x context spec; scores stored and returned."""
        import pandas as pd

        suite = self.load(suite)
        default = suite.model or self.wb.settings.default_route
        models = [models] if isinstance(models, str) else list(models or [default])
        contexts = [contexts] if isinstance(contexts, str) or contexts is None else list(contexts)
        contexts = contexts or [suite.context]
        repeats = repeats or suite.repeats
        if repeats < 1 or concurrency < 1:
            raise WorkbenchError("repeats and concurrency are at least 1")
        for spec in suite.scorers:  # an unknown scorer, model or template field fails before any call is made
            scorer(spec.name)
        for m in models:
            self.wb.resolve(m, check=self.wb.mode == "live")
        for case in suite.cases:
            check_name("case id", str(case["id"]))
            suite.render(case)
        jobs = [(m, c, case, r) for m in models for c in contexts for case in suite.cases for r in range(repeats)]
        bar = _progress(len(jobs), f"eval {suite.name}", progress)
        runs: dict[tuple[str, str | None], dict[str, Any]] = {}
        for m in models:
            for c in contexts:
                runs[(m, c)] = {
                    "id": new_id(),
                    "suite": suite.name,
                    "suite_hash": suite.version,
                    "model": m,
                    "context": c,
                    "repeats": repeats,
                    "cases": len(suite.cases),
                    "status": "running",
                    "started_at": utcnow(),
                    "finished_at": None,
                    "summary": None,
                    "cost_usd": 0.0,
                    "served": None,
                }
                self._save_run(runs[(m, c)])
        ctx = ScoreContext(self.wb, judge_model=judge_model)

        def one(job: tuple[str, str | None, dict[str, Any], int]) -> list[dict[str, Any]]:
            rows = self._case(suite, runs[(job[0], job[1])]["id"], job, ctx)
            bar.update(1)
            return rows

        pool = ThreadPoolExecutor(concurrency)
        try:
            rows = [row for batch in pool.map(one, jobs) for row in batch]
        except BaseException:
            pool.shutdown(cancel_futures=True)  # cases not started yet are not started
            for run in runs.values():  # the scores written so far stay; the run says it did not finish
                run.update(status="failed", finished_at=utcnow())
                self._save_run(run)
            raise
        finally:
            pool.shutdown()
            bar.close()
        results = pd.DataFrame(rows, columns=RESULT_COLUMNS)
        for run in runs.values():
            part = results[results["run_id"] == run["id"]]
            run["summary"] = json.dumps(part.groupby("scorer")["score"].mean().round(6).to_dict(), sort_keys=True)
            calls = part.drop_duplicates(["case_id", "repeat"])
            served = served_models(self.wb.store, [c for c in calls["call_id"] if c])
            run.update(
                status="done",
                finished_at=utcnow(),
                cost_usd=float(calls["cost_usd"].fillna(0).sum()),
                served=", ".join(sorted({s for s in served.values() if s})) or None,
            )
            self._save_run(run)
        return EvalReport(suite, list(runs.values()), results)

    def _case(
        self, suite: Suite, run_id: str, job: tuple[str, str | None, dict[str, Any], int], ctx: ScoreContext
    ) -> list[dict[str, Any]]:
        model, context, case, repeat = job
        output, result, error = "", None, None
        try:
            result = self.wb.ask(
                suite.render(case),
                model=model,
                system=suite.system,
                spec=context,
                context=case.get("context"),
                task=f"eval:{suite.name}",
                cache=False,
                format="text",
            )
            output = result.text
        except ConfigError:
            raise
        except WorkbenchError as exc:  # a failed call scores zero on every scorer, with why
            error = f"call failed: {str(exc).splitlines()[0][:200]}"
        local = ScoreContext(ctx.wb, result, ctx.judge_model)
        rows = []
        for spec in suite.scorers:
            s = score(spec.name, output, case, local, spec.options) if error is None else None
            value, detail = (s.value, s.detail) if s else (0.0, error)
            detail = scrub(detail)  # (it may quote the expected answer, which may hold a key: it is stored)
            pass_at = PASS_AT.get(spec.name, 1.0)
            pass_at = spec.options.get("min", 0.5) if pass_at == "min" else spec.options.get("pass_at", pass_at)
            rows.append(
                {
                    "run_id": run_id,
                    "model": model,
                    "context": context,
                    "case_id": str(case["id"]),
                    "repeat": repeat,
                    "scorer": spec.label,
                    "score": value,
                    "passed": int(value >= pass_at),
                    "detail": detail,
                    "output": output[:4000],
                    "call_id": result.call_id if result else None,
                    "latency_ms": round(result.latency_ms, 3) if result else None,
                    "cost_usd": result.cost_usd if result else None,
                }
            )
        stored = [c for c in RESULT_COLUMNS if c not in ("model", "context")]
        insert = f"INSERT INTO eval_results ({', '.join(stored)}) VALUES ({', '.join('?' * len(stored))})"
        with self.wb.store.transaction() as conn:  # the case's scores and the audit entry binding them
            written = [conn.execute(insert, tuple(r[k] for k in stored)).lastrowid for r in rows]
            self.wb.store.audit(
                conn,
                "eval_result",
                f"{run_id}/{case['id']}/{repeat}",
                {"scores": {r["scorer"]: r["score"] for r in rows}, "call": rows[0]["call_id"] if rows else None},
                bind=[("eval_results", str(rowid)) for rowid in written],
            )
        return rows

    def _save_run(self, run: dict[str, Any]) -> None:
        """Write the run's row as it stands (running, failed, done) with an audit entry binding it."""
        with self.wb.store.transaction() as conn:
            conn.execute(
                f"INSERT OR REPLACE INTO eval_runs ({', '.join(run)}) VALUES ({', '.join('?' * len(run))})",
                tuple(run.values()),
            )
            fields = ("suite", "suite_hash", "model", "context", "repeats", "cases", "status", "summary", "cost_usd")
            self.wb.store.audit(
                conn, "eval_run", run["id"], {k: run[k] for k in fields}, bind=[("eval_runs", run["id"])]
            )

    def add_cases(
        self,
        suite: str | Path | Suite,
        calls: list[str] | None = None,
        *,
        session: str | None = None,
        flagged: bool = False,
        rated: str | None = None,
        expected: bool = True,
    ) -> int:
        """Turn recorded calls into cases of ``suite``'s dataset: every failure becomes a test.

        Pick the calls by id (``calls``), by ``session``, ``flagged=True`` (those a guardrail
        flagged, redacted or quarantined), or ``rated="down"`` / ``"up"`` (rated so with
        ``wb.feedback`` or the ``%%llm --rate`` buttons). Each becomes ``{"id": "call-ID", "input": prompt,
        "context": what the call was given, "source_call": ID}``, with the recorded answer as
        ``expected`` unless ``expected=False`` (write the right answer in yourself). Cases already
        in the dataset — the same call, or the same input, context and expected answer (a re-run of
        the notebook that recorded them) — are skipped; returns how many were added.
        """
        suite = self.load(suite)
        if suite.path is None:
            raise WorkbenchError("add_cases needs a suite loaded from a file")
        where, params = ["status = 'ok'", "compacted_at IS NULL", "replay_of IS NULL"], []
        if calls:
            where.append(f"id IN ({', '.join('?' * len(calls))})")
            params += list(calls)
        if session:
            where.append("session = ? AND started_at >= ?")  # since the session's last reset
            params += [session, self.wb.store.session_start(session)]
        if flagged:
            where.append(
                "id IN (SELECT call_id FROM guard_events WHERE action IN ('flag', 'redact', 'quarantine', "
                "'fence', 'reask'))"
            )
        if rated is not None:
            if rated not in ("up", "down"):
                raise WorkbenchError(f"rated is 'up' or 'down', not {rated!r}")
            where.append(f"id IN (SELECT call_id FROM feedback WHERE rating {'>' if rated == 'up' else '<'} 0)")
        if len(where) == 3:
            raise WorkbenchError("say which calls: calls=[ids], session=, flagged=True or rated='down'")
        rows = self.wb.store.query(
            f"SELECT id, prompt, request, text FROM calls WHERE {' AND '.join(where)} ORDER BY started_at", params
        )
        dataset = (suite.path.parent / suite.dataset).resolve()
        known = {str(c["id"]) for c in suite.cases}

        def content(case: dict[str, Any]) -> str:
            return json.dumps([case.get(k) for k in ("input", "context", "expected")], sort_keys=True, default=str)

        same = {content(c) for c in suite.cases}  # a re-run's copy of a case already there is not new
        added = []
        for row in rows:
            if f"call-{row['id']}" in known or not row["prompt"]:
                continue
            messages = json.loads(row["request"])["messages"]
            given = "\n".join(
                m["content"]
                for m in messages[:-1]
                if isinstance(m.get("content"), str) and m.get("role") != "assistant"
            )
            case: dict[str, Any] = {"id": f"call-{row['id']}", "input": row["prompt"], "source_call": row["id"]}
            if given:
                case["context"] = given
            if expected:
                case["expected"] = row["text"] or ""
            if content(case) in same:
                continue
            same.add(content(case))
            added.append(json.dumps(case, ensure_ascii=False))
        if added:
            text = dataset.read_text()
            dataset.write_text(text + ("" if text.endswith("\n") or not text else "\n") + "\n".join(added) + "\n")
        return len(added)

    # -- reading back -------------------------------------------------------------------------

    def runs(self, suite: str | None = None) -> pd.DataFrame:
        """Every eval run (of ``suite``), newest first, with its mean score per scorer."""
        import pandas as pd

        where, params = ("WHERE suite = ?", (suite,)) if suite else ("", ())
        rows = self.wb.store.query(f"SELECT * FROM eval_runs {where} ORDER BY started_at DESC", params)
        return pd.DataFrame(
            rows,
            columns=[
                "id",
                "suite",
                "suite_hash",
                "model",
                "context",
                "repeats",
                "cases",
                "status",
                "started_at",
                "finished_at",
                "summary",
                "cost_usd",
            ],
        )

    def results(self, run_id: str) -> pd.DataFrame:
        """Every score of one run (case, repeat, scorer, score, detail, output, call id)."""
        import pandas as pd

        run = self._run(run_id)
        rows = self.wb.store.query(
            "SELECT * FROM eval_results WHERE run_id = ? ORDER BY case_id, repeat, scorer", (run_id,)
        )
        df = pd.DataFrame(rows, columns=[c for c in RESULT_COLUMNS if c not in ("model", "context")])
        return df.assign(model=run["model"], context=run["context"])[RESULT_COLUMNS]

    def latest(
        self, suite: str, model: str | None = None, context: str | None = None, before: str | None = None
    ) -> str | None:
        """The newest finished run of ``suite`` (for that model / context), started before ``before``."""
        sql, params = "SELECT id FROM eval_runs WHERE suite = ? AND status = 'done'", [suite]
        if model:
            sql, params = sql + " AND model = ?", [*params, model]
        if context:
            sql, params = sql + " AND context = ?", [*params, context]
        if before:
            sql, params = sql + " AND started_at < ?", [*params, before]
        rows = self.wb.store.query(sql + " ORDER BY started_at DESC LIMIT 1", params)
        return rows[0]["id"] if rows else None

    def compare(self, run: str, baseline: str, *, min_effect: float = 0.0, n_boot: int = 2000) -> pd.DataFrame:
        """Per scorer, ``run`` against ``baseline``: delta with a bootstrap 95% interval and a verdict.

        ``served_changed`` says when the provider reported other model versions for the two runs
        (``gpt-4o-2024-05-13 -> gpt-4o-2024-08-06``): the same route, a different model behind it.
        """
        new, old = self._run(run), self._run(baseline)
        gate = compare(self.results(baseline), self.results(run), min_effect=min_effect, n_boot=n_boot)
        changed = old["served"] and new["served"] and old["served"] != new["served"]
        gate["served_changed"] = f"{old['served']} -> {new['served']}" if changed else ""
        return gate

    def gate(
        self, report: EvalReport, baseline: str, *, min_effect: float = 0.0
    ) -> list[tuple[dict[str, Any], str | None, pd.DataFrame | None]]:
        """Each run of ``report`` against ``baseline``: a run id, or ``latest`` (the newest earlier run
        of the same suite, model and context). ``(run, baseline id, comparison)``; both ``None`` when
        there is no earlier run (this one becomes the baseline).
        """
        out: list[tuple[dict[str, Any], str | None, pd.DataFrame | None]] = []
        for run in report.runs:
            against: str | None = baseline
            if baseline == "latest":
                against = self.latest(run["suite"], run["model"], run["context"], before=run["started_at"])
            gate = self.compare(run["id"], against, min_effect=min_effect) if against else None
            out.append((run, against, gate))
        return out

    def _run(self, run_id: str) -> dict[str, Any]:
        rows = self.wb.store.query("SELECT * FROM eval_runs WHERE id = ?", (run_id,))
        if not rows:
            raise WorkbenchError(f"no eval run {run_id!r}; wb.evals.runs() lists them")
        return rows[0]


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _progress(total: int, desc: str, show: bool | None) -> Any:
    """The tqdm bar (a widget in notebooks) when shown; ``None`` shows it in a kernel only."""
    if show is None:
        show = "ipykernel" in sys.modules
    if not show:
        return _NoBar()
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return _NoBar()
    return tqdm(total=total, desc=desc)
