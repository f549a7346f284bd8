"""OTel export received by a real collector process (oteltest's otelsink), with GenAI/OpenInference attributes."""

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.orchestration.test_agent import RULES
from workbench.errors import WorkbenchError
from workbench.runtime import Workbench

HERE = Path(__file__).parent


@pytest.fixture
def collector(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "received.jsonl"
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "otlp_sink.py"), str(port), str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
    yield f"http://127.0.0.1:{port}", out
    proc.kill()
    proc.wait()


def _spans(out: Path, want: int, timeout: float = 15.0) -> list[dict]:
    deadline = time.monotonic() + timeout
    spans: list[dict] = []
    while time.monotonic() < deadline:
        spans = [
            span
            for line in (out.read_text().splitlines() if out.exists() else [])
            for rs in json.loads(line)["resourceSpans"]
            for ss in rs["scopeSpans"]
            for span in ss["spans"]
        ]
        if len(spans) >= want:
            break
        time.sleep(0.1)
    return spans


def _attrs(span: dict) -> dict:
    return {a["key"]: next(iter(a["value"].values())) for a in span.get("attributes", [])}


def test_stored_spans_export_with_genai_and_openinference_attributes(tmp_path, collector):
    url, out = collector
    wb = Workbench.from_config(store=str(tmp_path / "w.db"), otel={"capture_content": True})
    result = wb.ask("What is OTLP?", session="otel", user="ana")
    sent = wb.otel.export(ref=result.call_id, endpoint=url)
    spans = _spans(out, sent)
    assert len(spans) == sent == len(wb.trace(result.call_id).df)
    by_name = {s["name"]: s for s in spans}
    chat = by_name["chat local/echo"]
    attrs = _attrs(chat)
    assert attrs["gen_ai.operation.name"] == "chat"
    assert attrs["gen_ai.request.model"] == "local/echo"
    assert attrs["openinference.span.kind"] == "LLM"
    assert attrs["llm.model_name"] == "local/echo"
    assert int(attrs["gen_ai.usage.input_tokens"]) > 0
    assert int(attrs["llm.token_count.total"]) > 0
    assert attrs["session.id"] == "otel"
    assert attrs["user.id"] == "ana"
    assert attrs["input.value"] == "What is OTLP?"
    assert bytes.fromhex(result.trace_id) == __import__("base64").b64decode(chat["traceId"])
    guard = _attrs(by_name["guardrails.check_input"])
    assert guard["openinference.span.kind"] == "GUARDRAIL"
    assert "workbench.scanners" in guard
    attempt = by_name["serving.attempt"]
    assert attempt["parentSpanId"] == by_name["serving.complete"]["spanId"]
    assert "input.value" not in _attrs(chat) or wb.settings.otel.capture_content


def test_calls_and_agent_runs_stream_live_when_an_endpoint_is_set(tmp_path, collector):
    url, out = collector
    wb = Workbench.from_config(
        store=str(tmp_path / "w.db"), otel={"endpoint": url}, scripted={"rules": RULES}, default_route="local/scripted"
    )

    @wb.tool(name="sales.revenue")
    def revenue(region: str) -> dict:
        """Revenue of a region."""
        return {"region": region, "total": 7}

    run = wb.agent("analyst", tools=["sales.*"]).run("What is the revenue of north and south?")
    wb.otel.flush()
    spans = _spans(out, len(wb.trace(run.id).df))
    names = [s["name"] for s in spans]
    assert names.count("agent.run") == 1
    assert names.count("tool.call") == 2
    assert names.count("chat local/scripted") == 2
    tool = _attrs(next(s for s in spans if s["name"] == "tool.call"))
    assert tool["openinference.span.kind"] == "TOOL"
    assert tool["gen_ai.tool.name"] == "sales.revenue"
    agent = _attrs(next(s for s in spans if s["name"] == "agent.run"))
    assert agent["gen_ai.operation.name"] == "invoke_agent"
    assert agent["workbench.status"] == "done"
    assert "input.value" not in _attrs(next(s for s in spans if s["name"].startswith("chat")))  # content is opt-in
    assert wb.otel.errors == []


def test_an_unreachable_collector_never_breaks_a_call(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once the socket closes
    wb = Workbench.from_config(store=str(tmp_path / "w.db"), otel={"endpoint": f"http://127.0.0.1:{port}"})
    assert wb.ask("still answered").text == "still answered"
    wb.otel.flush(30)
    assert wb.otel.errors
    assert "ConnectionError" in wb.otel.errors[0] or "did not take" in wb.otel.errors[0]
    with pytest.raises(WorkbenchError, match="no OTLP endpoint"):
        Workbench.from_config(store=str(tmp_path / "x.db")).otel.export()
