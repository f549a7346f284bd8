"""OpenTelemetry export (the ``otel`` extra): stored spans sent over OTLP/HTTP.

Each span keeps its ids, parent and timings, and gets the attributes an observability
backend expects: the GenAI semantic conventions (``gen_ai.operation.name``,
``gen_ai.request.model``, ``gen_ai.usage.input_tokens`` ...) and OpenInference's
(``openinference.span.kind`` LLM / TOOL / AGENT / GUARDRAIL / RETRIEVER / CHAIN,
``llm.model_name``, ``llm.token_count.*``), so Phoenix, Langfuse, Jaeger or any OTLP
collector shows calls, tool calls and runs as they are. Workbench's own attributes are
kept under ``workbench.``. Prompts and answers are sent only with ``capture_content``
(they may be sensitive), scrubbed of secrets.

``wb.otel.export(since=..., ref=...)`` sends what is stored; with ``[otel] endpoint`` set,
every recorded call and run is also sent as it is written, from a background thread that
never slows or fails a call (an unreachable collector is logged in ``wb.otel.errors``).
"""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Sequence
from typing import Any

from workbench.errors import WorkbenchError
from workbench.guardrails.scanners import scrub
from workbench.observability.spans import iso_ns
from workbench.store import Store, cutoff

KINDS = {
    "llm.call": "LLM",
    "tool.call": "TOOL",
    "agent.run": "AGENT",
    "workflow.run": "CHAIN",
    "context.retrieve": "RETRIEVER",
    "memory.search": "RETRIEVER",
}
_SPANS = "SELECT span_id, trace_id, parent_id, call_id, name, start_ns, end_ns, status, attributes FROM spans"
_CALL = (
    "SELECT id, route, model, prompt, text, prompt_tokens, completion_tokens, total_tokens, cost_usd, "
    'finish_reason, session, "user", task, agent, status, error FROM calls WHERE id IN ({})'
)


def _otel() -> Any:
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import ReadableSpan
        from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags
    except ImportError:
        raise WorkbenchError("OpenTelemetry export needs the otel extra: pip install 'workbench[otel]'") from None
    return OTLPSpanExporter, Resource, ReadableSpan, SpanContext, SpanKind, Status, StatusCode, TraceFlags


def attributes(name: str, attrs: dict[str, Any], call: dict[str, Any] | None, content: bool) -> dict[str, Any]:
    """The exported attributes of one span: GenAI and OpenInference conventions, then ``workbench.*``."""
    out: dict[str, Any] = {
        "openinference.span.kind": KINDS.get(
            name.split(" ")[0], "GUARDRAIL" if name.startswith("guardrails.") else "CHAIN"
        )
    }
    for key, value in attrs.items():
        if value is not None:
            out[f"workbench.{key}"] = value if isinstance(value, str | bool | int | float) else json.dumps(value)
    if name == "llm.call" and call:
        provider = (call["model"] or "").split("/")[0] or "unknown"
        out.update(
            {
                "gen_ai.operation.name": "chat",
                "gen_ai.system": provider,
                "gen_ai.provider.name": provider,
                "gen_ai.request.model": call["route"],
                "gen_ai.response.model": call["model"] or "",
                "llm.model_name": call["model"] or "",
                "llm.provider": provider,
                "workbench.call_id": call["id"],
                "workbench.status": call["status"],
            }
        )
        for key, value in (
            ("gen_ai.usage.input_tokens", call["prompt_tokens"]),
            ("gen_ai.usage.output_tokens", call["completion_tokens"]),
            ("llm.token_count.prompt", call["prompt_tokens"]),
            ("llm.token_count.completion", call["completion_tokens"]),
            ("llm.token_count.total", call["total_tokens"]),
            ("workbench.cost_usd", call["cost_usd"]),
            ("session.id", call["session"]),
            ("user.id", call["user"]),
            ("workbench.task", call["task"]),
            ("workbench.agent", call["agent"]),
        ):
            if value is not None:
                out[key] = value
        if call["finish_reason"]:
            out["gen_ai.response.finish_reasons"] = [call["finish_reason"]]
        if content:
            out.update({"input.value": scrub(call["prompt"] or ""), "output.value": scrub(call["text"] or "")})
    elif name == "tool.call":
        out.update(
            {
                "gen_ai.operation.name": "execute_tool",
                "gen_ai.tool.name": attrs.get("tool", ""),
                "tool.name": attrs.get("tool", ""),
            }
        )
    elif name == "agent.run":
        out.update(
            {
                "gen_ai.operation.name": "invoke_agent",
                "gen_ai.agent.name": attrs.get("agent", ""),
                "agent.name": attrs.get("agent", ""),
            }
        )
    return out


def to_otel(
    rows: Sequence[dict[str, Any]], calls: dict[str, dict[str, Any]], content: bool = False, service: str = "workbench"
) -> list[Any]:
    """Stored span rows as OpenTelemetry ``ReadableSpan`` objects."""
    _, Resource, ReadableSpan, SpanContext, SpanKind, Status, StatusCode, TraceFlags = _otel()
    resource = Resource.create({"service.name": service, "telemetry.sdk.name": "workbench"})
    flags = TraceFlags(TraceFlags.SAMPLED)
    spans = []
    for row in rows:
        trace_id = int(row["trace_id"], 16)
        context = SpanContext(trace_id, int(row["span_id"], 16), is_remote=False, trace_flags=flags)
        parent = (
            SpanContext(trace_id, int(row["parent_id"], 16), is_remote=False, trace_flags=flags)
            if row["parent_id"]
            else None
        )
        attrs = json.loads(row["attributes"]) if row["attributes"] else {}
        call = calls.get(row["call_id"]) if row["call_id"] else None
        name = row["name"]
        exported = f"chat {call['model'] or call['route']}" if name == "llm.call" and call else name
        status = (
            Status(StatusCode.ERROR, str(attrs.get("error", ""))) if row["status"] == "error" else Status(StatusCode.OK)
        )
        kind = SpanKind.CLIENT if name in ("llm.call", "serving.attempt") else SpanKind.INTERNAL
        spans.append(
            ReadableSpan(
                exported,
                context,
                parent,
                resource,
                attributes(name, attrs, call, content),
                kind=kind,
                status=status,
                start_time=row["start_ns"],
                end_time=row["end_ns"] or row["start_ns"],
            )
        )
    return spans


class OTel:
    """``wb.otel``: export stored spans, or stream them as they are written (``[otel] endpoint``)."""

    def __init__(
        self,
        store: Store,
        endpoint: str | None = None,
        headers: dict[str, str] | None = None,
        content: bool = False,
        service: str = "workbench",
    ) -> None:
        self.store, self.endpoint, self.headers, self.content, self.service = store, endpoint, headers, content, service
        self.errors: list[str] = []
        self.sent = 0
        self._queue: queue.Queue[list[tuple[str, str]] | threading.Event | None] = queue.Queue()  # (an Event: flush)
        self._thread: threading.Thread | None = None
        self._roots: dict[str, str | None] = {}

    def _exporter(self, endpoint: str | None) -> Any:
        OTLPSpanExporter = _otel()[0]
        url = (endpoint or self.endpoint or "").rstrip("/")
        if not url:
            raise WorkbenchError("no OTLP endpoint: set [otel] endpoint (e.g. http://127.0.0.1:4318) or pass endpoint=")
        return OTLPSpanExporter(
            endpoint=url if url.endswith("/v1/traces") else f"{url}/v1/traces", headers=self.headers, timeout=10
        )

    def rows(self, since: str | None = None, ref: str | None = None) -> list[dict[str, Any]]:
        """The stored spans to export: of one call/run/trace (``ref``), or since a time."""
        if ref:
            from workbench.observability.traces import resolve

            return self.store.query(f"{_SPANS} WHERE trace_id = ? ORDER BY start_ns", (resolve(self.store, ref),))
        if since:
            return self.store.query(f"{_SPANS} WHERE start_ns >= ? ORDER BY start_ns", (iso_ns(cutoff(since)),))
        return self.store.query(f"{_SPANS} ORDER BY start_ns")

    def export(self, since: str | None = None, ref: str | None = None, endpoint: str | None = None) -> int:
        """Send stored spans (all, ``since`` a time, or of ``ref``) to the collector; returns how many."""
        rows = self.rows(since, ref)
        self._send(rows, self._exporter(endpoint))
        return len(rows)

    def _send(self, rows: list[dict[str, Any]], exporter: Any) -> None:
        from opentelemetry.sdk.trace.export import SpanExportResult

        for start in range(0, len(rows), 512):
            batch = rows[start : start + 512]
            ids = sorted({r["call_id"] for r in batch if r["call_id"]})
            calls = {c["id"]: c for c in self.store.query(_CALL.format(",".join("?" * len(ids))), ids)} if ids else {}
            result = exporter.export(to_otel(batch, calls, self.content, self.service))
            if result != SpanExportResult.SUCCESS:
                raise WorkbenchError(f"the collector at {exporter._endpoint} did not take the spans; is it running?")
            self.sent += len(batch)

    # -- streaming ------------------------------------------------------------------------------

    def submit(self, spans: list[tuple[str, str]]) -> None:
        """Queue just-written spans (``(trace_id, span_id)`` each) for the background exporter, after a commit."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._pump, daemon=True, name="workbench-otel")
            self._thread.start()
        self._queue.put(spans)

    def flush(self, timeout: float = 10.0) -> None:
        """Wait until everything queued has been sent (tests, end of a script)."""
        done = threading.Event()
        self._queue.put(done)
        if self._thread is not None:
            done.wait(timeout)

    def _new(self, row: dict[str, Any]) -> bool:
        """A run's root span is rewritten as the run goes on: send it once it ends, and each version once."""
        if row["name"] not in ("agent.run", "workflow.run"):
            return True
        if '"status": "running"' in (row["attributes"] or "") or self._roots.get(row["span_id"]) == row["attributes"]:
            return False
        self._roots[row["span_id"]] = row["attributes"]
        return True

    def _pump(self) -> None:
        exporter = None
        while True:
            item = self._queue.get()
            if item is None:
                return
            if isinstance(item, threading.Event):  # (a flush: everything before it was sent)
                item.set()
                continue
            try:
                exporter = exporter or self._exporter(None)
                traces, ids = sorted({t for t, _ in item}), sorted({s for _, s in item})
                marks = ",".join("?" * len(traces)), ",".join("?" * len(ids))
                # (by the key: a row-value IN over VALUES would read the whole table)
                rows = self.store.query(
                    f"{_SPANS} WHERE trace_id IN ({marks[0]}) AND span_id IN ({marks[1]})", traces + ids
                )
                wanted = set(item)
                rows = [r for r in rows if (r["trace_id"], r["span_id"]) in wanted and self._new(r)]
                self._send(rows, exporter)
            except Exception as exc:  # noqa: BLE001 - export must never break a call; the error is kept
                self.errors = [*self.errors[-99:], f"{type(exc).__name__}: {exc}"[:300]]
