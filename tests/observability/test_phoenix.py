"""The OTel export read back from a real Arize Phoenix (``arize-phoenix``, in a venv of its own) through Phoenix's
own REST API: a call, an agent run and an eval run arrive as traces with their OpenInference and GenAI attributes.
"""

import json
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from tests.orchestration.test_agent import RULES
from tests.servers import ROOT, free_port, venv_tool, wait_until_up
from workbench.runtime import Workbench


@pytest.fixture(scope="module")
def phoenix(tmp_path_factory):
    binary = venv_tool(
        ".venv-phoenix",
        "phoenix",
        "WORKBENCH_PHOENIX",
        "python3 -m venv .venv-phoenix && .venv-phoenix/bin/pip install arize-phoenix",
    )
    for attempt in range(3):  # a free port can be taken by another test's server before Phoenix binds it
        folder = tmp_path_factory.mktemp("phoenix")
        port = free_port()
        env = {
            **os.environ,
            "PHOENIX_HOST": "127.0.0.1",
            "PHOENIX_PORT": str(port),
            "PHOENIX_GRPC_PORT": str(free_port()),  # it binds every interface: a free port at least
            "PHOENIX_WORKING_DIR": str(folder),
            "PHOENIX_TELEMETRY_ENABLED": "false",
            "PHOENIX_ALLOW_EXTERNAL_RESOURCES": "false",
            "PHOENIX_DISABLE_AGENT_ASSISTANT": "true",
        }
        log = (folder / "phoenix.log").open("w")
        proc = subprocess.Popen([binary, "serve"], env=env, cwd=folder, stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            wait_until_up(f"{url}/healthz", proc, folder / "phoenix.log", "Phoenix", 120)
            break
        except RuntimeError:
            if attempt == 2:
                raise
    yield url
    proc.terminate()
    proc.wait(20)


def spans(url: str, trace_ids: set[str], want: int, timeout: float = 90.0) -> list[dict]:
    """Phoenix's spans of these traces, read through its REST API (it inserts asynchronously: poll; on a loaded
    2-core machine it took more than 20 s to insert 252 spans it had accepted)."""
    deadline = time.monotonic() + timeout
    found: list[dict] = []
    while time.monotonic() < deadline:
        try:  # a read that times out while Phoenix is busy inserting is asked again, until the deadline
            body = json.loads(urllib.request.urlopen(f"{url}/v1/projects/default/spans?limit=1000", timeout=15).read())
        except (TimeoutError, urllib.error.URLError):
            continue
        found = [s for s in body["data"] if s["context"]["trace_id"] in trace_ids]
        if len(found) >= want:
            break
        time.sleep(0.25)
    return found


def flat(attributes: dict, prefix: str = "") -> dict:
    """Phoenix nests dotted attribute names ({"llm": {"model_name": ...}}): flattened back to dotted keys."""
    out = {}
    for key, value in attributes.items():
        name = f"{prefix}.{key}" if prefix else key
        out.update(flat(value, name) if isinstance(value, dict) else {name: value})
    return out


def test_a_call_an_agent_run_and_an_eval_run_arrive_in_phoenix_with_their_attributes(tmp_path, phoenix):
    shutil.copytree(ROOT / "evals", tmp_path / "evals")
    shutil.copy(ROOT / "scripted.toml", tmp_path / "scripted.toml")
    (tmp_path / "workbench.toml").write_text(
        f'store = "wb.db"\n[otel]\nendpoint = "{phoenix}"\n[scripted]\nfile = "scripted.toml"\n'
    )
    wb = Workbench.from_config(tmp_path / "workbench.toml")
    call = wb.ask("What is OTLP?", session="phoenix", user="ana")

    agent_wb = Workbench.from_config(
        store=str(tmp_path / "agent.db"), otel={"endpoint": phoenix}, scripted={"rules": RULES}
    )

    @agent_wb.tool(name="sales.revenue")
    def revenue(region: str) -> dict:
        """Revenue of a region."""
        return {"region": region, "total": 7}

    run = agent_wb.agent("analyst", tools=["sales.*"], model="local/scripted").run("Revenue of north and south?")
    assert run.status == "done"
    report = wb.evals.run("support", models=["local/extractive"], progress=False)
    wb.otel.flush()
    agent_wb.otel.flush()
    assert wb.otel.errors == [] and agent_wb.otel.errors == []

    eval_calls = wb.store.query("SELECT trace_id FROM calls WHERE task LIKE 'eval:%'")
    assert eval_calls and report.run_ids
    stored = wb.store.query("SELECT trace_id FROM spans") + agent_wb.store.query("SELECT trace_id FROM spans")
    traces = {r["trace_id"] for r in stored}
    assert call.trace_id in traces and {r["trace_id"] for r in eval_calls} <= traces
    expected = len(stored)
    got = spans(phoenix, traces, expected)
    assert len(got) == expected  # every stored span, nothing lost or duplicated

    chat = next(s for s in got if s["context"]["trace_id"] == call.trace_id and s["name"] == "chat local/echo")
    attrs = flat(chat["attributes"])
    assert chat["span_kind"] == "LLM"
    assert attrs["llm.model_name"] == "local/echo" and attrs["gen_ai.request.model"] == "local/echo"
    assert attrs["gen_ai.operation.name"] == "chat" and attrs["llm.token_count.total"] > 0
    assert attrs["session.id"] == "phoenix" and attrs["user.id"] == "ana"

    agent = [s for s in got if s["name"] == "agent.run"]
    assert len(agent) == 1 and agent[0]["span_kind"] == "AGENT"
    tools = [s for s in got if s["name"] == "tool.call"]
    assert len(tools) == 2 and all(flat(t["attributes"])["gen_ai.tool.name"] == "sales.revenue" for t in tools)
    assert {t["span_kind"] for t in tools} == {"TOOL"}

    tasks = {r["task"] for r in wb.store.query("SELECT DISTINCT task FROM calls WHERE task LIKE 'eval:%'")}
    evals = [s for s in got if s["name"].startswith("chat ") and flat(s["attributes"]).get("workbench.task") in tasks]
    assert len(evals) == len(eval_calls)  # each eval call (the cases and their judge) is a trace there
