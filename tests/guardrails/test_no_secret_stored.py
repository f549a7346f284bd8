"""No secret is stored, anywhere: keys planted in every path a text takes, then the files grepped byte for byte.

Each key is distinct, so a hit names the path that leaked it. The store (database and its
write-ahead log), the audit export, the HTML report, the MCP and other logs next to the
store, and what a streaming preview showed are all searched.
"""

import json
import sqlite3

import pytest

from workbench.config import Settings
from workbench.errors import GuardrailViolation
from workbench.runtime import Workbench

KEYS = {
    "system": "sk-proj-SYSTEMaaaaBBBBccccDDDD1111",
    "context": "AKIACONTEXT2222XYZWQ",
    "document": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYDOCUMENT33",
    "memory": "ghp_MEMORY4444aaaaBBBBccccDDDDeeeeFFFFgggg",
    "tool_argument": "sk-proj-TOOLARGeeeeFFFFggggHHHH5555",
    "tool_result": "xoxb-TOOLRESULT-666666aaaa",
    "answer": "wJalrXUtnFEMI/K7MDENG/bPxRfiANSWER7777AB",
    "params": "sk-proj-PARAMSiiiiJJJJkkkkLLLL8888",
    "mcp_env": "ghp_MCPENV9999aaaaBBBBccccDDDDeeeeFFFFhhhh",
    "tool_error": "sk-proj-TOOLERRORmmmmNNNNooooPPPP0000",
    "connection": "Sup3r-S3cret!pw",
    "session_state": "BEARERstateQQQQrrrrSSSS1212",
    "feedback": "Tr0ub4dor&3xyz",
    "decision": "sk-proj-DECISIONttttUUUUvvvvWWWW1313",
    "step": "sk-proj-STEPMESSAGExxxxYYYYzzzz1414",
    "stream": "sk-proj-STREAMEDaaaaBBBBccccDDDD1515",
    "task": "sk-proj-AGENTTASKeeeeFFFFggggHHHH1616",
    "tool_description": "sk-proj-TOOLDOCiiiiJJJJkkkkLLLL1717",
    "workflow_input": "ghp_WFINPUT1818aaaaBBBBccccDDDDeeeeFFFFiiii",
    "step_result": "sk-proj-STEPRESULTmmmmNNNNoooo1919",
    "map_result": "xoxb-MAPRESULT-202020aaaa",
    "fallback": "sk-proj-FALLBACKqqqqRRRRssss2121",
    "workflow_tool_error": "sk-proj-WFTOOLERRuuuuVVVVwwww2222",
    "eval_expected": "sk-proj-EVALEXPECTxxxxYYYYzzzz2323",
    "image_metadata": "sk-proj-IMAGETEXTaaaaBBBBcccc2424",
}

RULES = [
    {
        "pattern": "(?i)call the webhook",
        "tool": "http__post",
        "arguments": {
            "url": "https://hooks.example.com/x",
            "headers": {"Authorization": f"Bearer {KEYS['tool_argument']}"},
        },
    },
    {"pattern": "(?i)look up the token", "tool": "vault__read", "arguments": {"name": "slack"}},
    {"pattern": "(?i)break the tool", "tool": "vault__break", "arguments": {"name": "x"}},
    {
        "pattern": "(?i)what are the aws credentials",
        "reply": f"Sure: aws_secret_access_key = {KEYS['answer']} for the prod account.",
    },
    {"pattern": "(?i)stream me the key", "reply": f"Here it is: {KEYS['stream']} - keep it safe."},
    {"role": "tool", "pattern": ".*", "reply": "Done."},
]


@pytest.fixture
def planted(tmp_path):
    (tmp_path / "contexts").mkdir()
    (tmp_path / "contexts" / "kb.yaml").write_text(
        "budget_tokens: 2000\nsources:\n  - {kind: documents, collection: kb, k: 3}\n"
    )
    (tmp_path / "workbench.toml").write_text(f"""
store = "s.db"
default_route = "local/scripted"
[guardrails.input]
secrets = "redact"
[routes.team]
deployments = [{{ model = "local/echo", params = {{ api_key = "{KEYS["params"]}" }} }}]
[mcp.servers.keeper]
command = "python"
args = ["-c", "pass"]
env = {{ VAULT_TOKEN = "{KEYS["mcp_env"]}" }}
""")
    wb = Workbench.from_config(tmp_path / "workbench.toml", scripted={"rules": RULES})

    @wb.tool(name="http.post", risk="read")
    def post(url: str, headers: dict) -> str:
        """Post to a URL."""
        return "posted"

    def read(name: str) -> str:
        return f"the {name} token is {KEYS['tool_result']}"

    read.__doc__ = f"Read a token (the vault's own is {KEYS['tool_description']})."  # sent with every step
    wb.tool(name="vault.read")(read)

    @wb.tool(name="vault.break")
    def broken(name: str) -> str:
        """Fail."""
        raise RuntimeError(f"vault refused key {KEYS['tool_error']}")

    yield wb, tmp_path
    wb.close()


def test_a_key_planted_in_every_path_is_found_nowhere(planted):
    wb, root = planted
    wb.ask(
        "Summarise our setup.",
        model="local/echo",
        system=f"Deploy with {KEYS['system']}.",
        context={"ops": f"The CI uses {KEYS['context']} as its access key id."},
        session="ops",
    )
    wb.docs.add("kb", [f"Rotation notes: aws_secret_access_key = {KEYS['document']} was rotated in May."])
    wb.ask("When was the key rotated?", model="local/echo", spec="kb")
    wb.memory.add(f"The deploy bot token is {KEYS['memory']}", "user:ana")
    wb.ask("Which token does the deploy bot use?", model="local/echo", memory="user:ana", user="ana")
    agent = wb.agent("ops", tools=["http.*", "vault.*"])
    agent.run("Please call the webhook")
    agent.run("look up the token for slack")
    agent.run("break the tool")
    agent.run(f"Please call the webhook, the old key was {KEYS['task']}")
    answer = wb.ask("What are the AWS credentials?")
    wb.ask(f"Connect with postgres://admin:{KEYS['connection']}@db.internal:5432/app", model="local/echo")
    wb.session("ops").state["auth"] = f"Authorization: Bearer {KEYS['session_state']}"
    wb.feedback.rate(answer.call_id, "down", note=f"it printed password: {KEYS['feedback']}")
    row = wb.approvals.request("db.drop", {"table": "t"}, risk="destructive", reason="destructive tool")
    wb.approvals.decide(row["id"], "reject", by="ana", reason=f"never with {KEYS['decision']}")
    wb.step([{"role": "user", "content": f"what is {KEYS['step']} for?"}], model="local/echo")
    wb.ask(["What does this chart show?", _png_with_text(KEYS["image_metadata"])], model="local/echo")
    run = _workflow(wb).run(vault=f"token={KEYS['workflow_input']}")
    assert run.status == "done", run.error
    assert run.results["fetch"] == {"token": "[REDACTED:openai_key]"}  # what a dependent got is what is stored
    assert run.results["use"] == "using [REDACTED:openai_key]"
    evals = wb.evals.run(_suite(root, "keys", "c1", KEYS["eval_expected"]), progress=False)
    assert set(evals.results["detail"]) == {"expected '[REDACTED:openai_key]'", "missing ['[REDACTED:openai_key]']"}
    shown: list[str] = []
    streamed = wb.ask("stream me the key", stream=True, on_token=lambda d: shown.append(d or ""))
    assert KEYS["stream"] not in streamed.text
    assert "[REDACTED:openai_key]" in "".join(shown)
    assert "aws_secret_access_key = [REDACTED:aws_secret_key]" in answer.text
    assert wb.audit.verify().ok
    export = root / "audit.jsonl"
    wb.audit.export(export)
    report = root / "report.html"
    wb.report("ops", report)
    wb.store.close()
    files = [root / "s.db", root / "s.db-wal", export, report, *root.glob("*.log")]
    blob = b"".join(p.read_bytes() for p in files if p.exists()) + "".join(shown).encode()
    leaked = {name: key for name, key in KEYS.items() if key.encode() in blob}
    assert leaked == {}, f"leaked: {leaked}"


def _png_with_text(text):
    """A 2x2 PNG whose text chunk holds ``text`` (where image tools write the prompt that made a picture)."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = chunk(b"IHDR", struct.pack(">IIBBBBB", 2, 2, 8, 2, 0, 0, 0))
    pixels = chunk(b"IDAT", zlib.compress(b"\x00" + b"\x10\x20\x30" * 2 + b"\x00" + b"\x40\x50\x60" * 2))
    return (
        b"\x89PNG\r\n\x1a\n" + header + chunk(b"tEXt", b"parameters\x00" + text.encode()) + pixels + chunk(b"IEND", b"")
    )


def _file(path):
    path.write_text("Refunds take 30 days.")
    return path


def _suite(root, name, case_id, expected):
    """An eval suite of one case, whose scorers' details quote what it expected."""
    (root / f"{name}.jsonl").write_text(json.dumps({"id": case_id, "input": "say hello", "expected": expected}))
    path = root / f"{name}.eval.yaml"
    path.write_text(
        f"name: {name}\ndataset: {name}.jsonl\nprompt: '{{input}}'\nmodel: local/echo\nscorers: [exact, contains]\n"
    )
    return path


def _workflow(wb):
    """A workflow whose inputs, step results, map branches, fallback and tool error each carry a key."""
    wf = wb.workflow("rotate")

    @wf.step("fetch", depends_on=[])
    def fetch(vault: str = ""):
        return {"token": KEYS["step_result"]}

    @wf.step("use", depends_on=["fetch"])
    def use(fetch):
        return f"using {fetch['token']}"

    wf.map("each", over=["a", "b"], fn=lambda item: f"{item}: {KEYS['map_result']}")

    @wf.step("flaky", depends_on=[], on_error="fallback", fallback=lambda exc: KEYS["fallback"])
    def flaky():
        raise ValueError("down")

    @wb.tool(name="vault.rotate")
    def rotate(name: str) -> str:
        """Rotate a key."""
        raise RuntimeError(f"rotation refused for {KEYS['workflow_tool_error']}")

    wf.tool("rotate", "vault.rotate", arguments={"name": "ci"}, on_error="skip")
    return wf


def test_under_the_default_policy_a_secret_anywhere_blocks_and_nothing_is_stored(tmp_path):
    wb = Workbench.from_config(store=str(tmp_path / "b.db"))
    key = "sk-proj-BLOCKEDaaaaBBBBccccDDDD9999"
    with pytest.raises(GuardrailViolation, match="the system prompt holds openai_key"):
        wb.ask("hello", system=f"use {key}")
    with pytest.raises(GuardrailViolation, match="context item 'ops' holds openai_key"):
        wb.ask("hello", context={"ops": key})
    with pytest.raises(GuardrailViolation, match="document chunk text-[0-9a-f]+#1 holds openai_key"):
        wb.docs.add("kb", [f"key: {key}"])
    with pytest.raises(GuardrailViolation, match="the memory for shared holds"):
        wb.memory.add(f"the key is {key}")
    with pytest.raises(GuardrailViolation, match="workflow w's inputs holds openai_key"):
        wb.workflow("w").run(key=key)
    wf = wb.workflow("w2")
    wf.step("leak", depends_on=[], retry=3)(lambda: {"key": key})
    run = wf.run()  # the step fails at once (a retry would hold it again), and its result is not kept
    assert run.status == "failed" and "holds openai_key" in run.error
    assert run.steps[0]["attempts"] == 1
    assert wb.store.query("SELECT COUNT(*) AS n FROM calls")[0]["n"] == 0
    assert wb.store.query("SELECT COUNT(*) AS n FROM documents")[0]["n"] == 0
    events = wb.guard.df()
    assert set(events["scanner"]) == {"secrets"}
    assert len(events) == 6
    wb.store.close()
    conn = sqlite3.connect(tmp_path / "b.db")
    dump = "\n".join(conn.iterdump())
    assert key not in dump
    assert key.encode() not in (tmp_path / "b.db-wal").read_bytes()


def test_config_is_audited_by_names_and_digests_never_values(planted):
    wb, _ = planted
    [entry] = [w for w in wb.audit.df(kind="config")["what"]]
    settings = entry["settings"]
    assert "routes.team.deployments[0].params.api_key" in settings
    assert "mcp.servers.keeper.env.VAULT_TOKEN" in settings
    assert all(isinstance(v, str) and len(v) == 16 for v in settings.values())
    assert KEYS["params"] not in json.dumps(entry)


def test_a_name_holding_a_key_is_refused_before_anything_is_recorded_and_a_kill_reason_is_scrubbed(
    tmp_path, monkeypatch, request
):
    """Names (sessions, users, tasks, agents, scopes, who decided) are stored and shown as written: one holding a
    key is refused with a one-line error that shows it redacted; reasons and the notebook an audit entry names
    are stored scrubbed."""
    from workbench.errors import WorkbenchError

    wb = Workbench.from_config(store=str(tmp_path / "n.db"))
    keys = iter(f"sk-proj-NAME{n:02d}aaaaBBBBccccDDDDeeee" for n in range(40))
    used: list[str] = []

    def key() -> str:
        used.append(next(keys))
        return used[-1]

    from workbench.audit.entry import actor

    monkeypatch.setenv("JPY_SESSION_NAME", f"notebooks/{key()}.ipynb")  # who wrote each audit entry
    actor.cache_clear()  # (read once per process)
    request.addfinalizer(actor.cache_clear)
    answer = wb.ask("hi", model="local/echo")
    row = wb.approvals.request("db.drop", {"table": "t"}, risk="destructive", reason="destructive tool")
    refused = {
        "session": lambda: wb.ask("hi", model="local/echo", session=key()),
        "user": lambda: wb.ask("hi", model="local/echo", user=key()),
        "task": lambda: wb.ask("hi", model="local/echo", task=key()),
        "agent": lambda: wb.ask("hi", model="local/echo", agent=key()),
        "memory": lambda: wb.ask("hi", model="local/echo", memory=f"user:{key()}"),
        "memory scope": lambda: wb.memory.add("likes tea", f"user:{key()}"),
        "budget scope": lambda: wb.budgets.set(f"user:{key()}", 5),
        "agent name": lambda: wb.agent(key(), model="local/echo"),
        "workflow name": lambda: wb.workflow(key()),
        "step name": lambda: wb.workflow("etl").step(key())(lambda: 1),
        "document": lambda: wb.docs.add("kb", [_file(tmp_path / f"notes-{key()}.md")]),
        "collection": lambda: wb.docs.add(key(), ["notes about tea"]),
        "case id": lambda: wb.evals.run(_suite(tmp_path, "ids", f"c-{key()}", "hi"), progress=False),
        "tool": lambda: wb.approvals.request(key(), {"table": "t"}, risk="destructive", reason="x"),
        "by": lambda: wb.approvals.decide(row["id"], "approve", by=key()),
        "escalated to": lambda: wb.approvals.escalate(row["id"], to=key(), by="ana"),
        "model": lambda: wb.ask("hi", model=f"openai/{key()}"),  # (never sent: nothing is imported or called)
        "route": lambda: wb.add_route(key(), ["local/echo"]),
        "deployment name": lambda: wb.add_route("kb", [{"model": "local/echo", "name": key()}]),
        "deployment model": lambda: wb.add_route("kb", [f"openai/{key()}"]),
        "api_key_env": lambda: wb.add_route("kb", [{"model": "openai/m", "api_key_env": key()}]),
        "api_base": lambda: wb.add_route("kb", [{"model": "openai/m", "api_base": f"http://h/{key()}/v1"}]),
    }
    for what, attempt in refused.items():
        with pytest.raises(WorkbenchError, match=rf"^{what} '[^']*\[REDACTED:openai_key\][^']*' holds what looks"):
            attempt()
    with pytest.raises(WorkbenchError, match=r"^session '\[REDACTED:openai_key\]'"):
        wb.session(key()).state["x"] = 1
    with pytest.raises(WorkbenchError, match=r"^by '\[REDACTED:openai_key\]'"):
        wb.feedback.rate(answer.call_id, "up", by=key())
    assert wb.store.query("SELECT COUNT(*) AS n FROM calls")[0]["n"] == 1
    assert wb.approvals.get(row["id"])["status"] == "pending"
    asked = wb.approvals.request("db.drop", {"table": f"t {key()}"}, risk="destructive", reason="x")
    assert json.loads(asked["arguments"]) == {"table": "t [REDACTED:openai_key]"}  # stored (and run) redacted
    with pytest.raises(GuardrailViolation, match="the response format holds openai_key"):
        wb.ask("hi", model="local/echo", response_format={"type": "json_schema", "note": key()})
    wb.kill(f"leaked key {key()} in the logs")
    assert wb.store.query("SELECT reason FROM switches")[0]["reason"] == "leaked key [REDACTED:openai_key] in the logs"
    wb.budgets.lift()
    assert wb.audit.verify().ok
    wb.store.close()
    blob = b"".join(p.read_bytes() for p in (tmp_path / "n.db", tmp_path / "n.db-wal") if p.exists())
    assert [k for k in used if k.encode() in blob] == []
    assert len(used) == 28
    configured = Settings.model_validate(
        {"routes": {"team": {"deployments": [{"model": "local/echo", "name": key()}]}}}
    )
    with pytest.raises(WorkbenchError, match=r"^deployment name '\[REDACTED:openai_key\]' holds what looks"):
        Workbench(configured.model_copy(update={"store": tmp_path / "c.db"}))  # a route in workbench.toml: at start


def test_credentials_in_a_base_url_are_masked_wherever_the_endpoint_is_named(tmp_path, capsys):
    """A base URL may carry a password (``https://user:pass@host``) or a key in its query (Azure's ``api-key``):
    the endpoint's name (attempts, breakers, health, ``wb.models()``, ``%llm_config``) shows them as ``***``."""
    from workbench.config import shown_url

    password, key = "Zq8S3cretPassw0rdX", "k3yInTheQueryAbCdEf123456"
    (tmp_path / "workbench.toml").write_text(f"""
store = "u.db"
[routes.gw]
deployments = [
  {{ model = "openai/m", api_base = "http://admin:{password}@127.0.0.1:9/v1", timeout = 2 }},
  {{ model = "openai/n", api_base = "http://127.0.0.1:9/v1?api-version=2024-02-01&api-key={key}", timeout = 2 }},
  {{ model = "local/echo" }},
]
[prices."openai/m"]
input_cost_per_token = 0
output_cost_per_token = 0
[prices."openai/n"]
input_cost_per_token = 0
output_cost_per_token = 0
""")
    wb = Workbench.from_config(tmp_path / "workbench.toml")
    answer = wb.ask("hi", model="gw")  # both servers refuse the connection: the local model answers
    assert answer.model == "local/echo"
    endpoints = list(wb.models()["endpoint"])
    assert "openai/m @ http://admin:***@127.0.0.1:9/v1" in endpoints
    assert "openai/n @ http://127.0.0.1:9/v1?api-version=2024-02-01&api-key=***" in endpoints
    assert shown_url("https://h/x?sig=AbC&se=2026") == "https://h/x?sig=***&se=2026"
    stored = wb.store.query("SELECT endpoint, error FROM attempts WHERE status != 'ok'")
    assert len(stored) == 4 and all("***" in row["endpoint"] for row in stored)  # two attempts each
    assert {row["error"] for row in stored} == {"cannot connect to 127.0.0.1:9 (Connection error.)"}
    wb.store.close()
    blob = b"".join(p.read_bytes() for p in (tmp_path / "u.db", tmp_path / "u.db-wal") if p.exists())
    assert password.encode() not in blob and key.encode() not in blob
