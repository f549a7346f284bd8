"""The MCP client: servers from ``[mcp.servers]``, their tools as workbench tools, pinned definitions.

A stdio server's stderr goes to ``mcp-NAME.log`` next to the store. Each server runs in one
long-lived task on a background event loop (the ``mcp`` SDK's
client is async and its transports must be entered and left in the same task), so the
notebook's synchronous code — and the agent loop's worker threads — call it with a
timeout and never hang: a server that dies mid-call is an error at once (``Connection
closed``), a server that hangs is an error after ``timeout_s``, and either way the next
call starts it again.

**Pinning** (against tool poisoning and rug pulls): the first time a server's tool is
seen, a hash of its description and input schema is stored. If a later listing differs,
the tool is flagged ``changed`` and refuses to run until a human re-approves it
(``wb.mcp.approve("server.tool")``), after looking at what changed (``wb.mcp.df()``).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import sys
import tempfile
import threading
import time
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench.config import MCPServerConfig, MCPSettings
from workbench.guardrails.scanners import scrub, scrub_values
from workbench.integrations.text import ToolText
from workbench.integrations.tools import Tool, ToolError, Tools
from workbench.store import Store, utcnow

if TYPE_CHECKING:
    import pandas as pd


class _Server:
    """One connection: a task that holds the client open and serves requests from a queue."""

    def __init__(self, name: str, config: MCPServerConfig, root: Path, log: Path):
        self.name, self.config, self.root, self.log = name, config, root, log
        self.queue: asyncio.Queue[Any] | None = None
        self.task: asyncio.Task[Any] | None = None
        self.info: Any = None
        self.pidfile: Path | None = None  # where the launcher wrote the server's pid (= its process group)

    def params(self) -> Any:
        from mcp import StdioServerParameters

        c = self.config
        if c.url:
            return c.url
        env = {k: os.environ[k] for k in c.env_pass if k in os.environ} | c.env
        # The server starts in the project root, so relative paths in args are relative to workbench.toml;
        # "python" is the interpreter running workbench (its venv has the mcp SDK), wherever PATH points.
        command = sys.executable if c.command in ("python", "python3") else c.command
        if os.name != "posix":
            return StdioServerParameters(command=command, args=c.args, env=env or None, cwd=str(self.root))
        fd, pidfile = tempfile.mkstemp(prefix=f"workbench-mcp-{self.name}-", suffix=".pid")
        os.close(fd)
        self.pidfile = Path(pidfile)
        return StdioServerParameters(
            command=sys.executable, args=[str(LAUNCHER), pidfile, command, *c.args], env=env or None, cwd=str(self.root)
        )

    def kill(self) -> None:
        """End the server and everything it started (its process group): TERM, then KILL if it lingers."""
        pid = _read_pid(self.pidfile)
        if pid is not None:
            try:
                if os.getpgid(pid) == pid:  # still the group the launcher made, not a reused pid
                    os.killpg(pid, signal.SIGTERM)
                    deadline = time.monotonic() + 1.0
                    while time.monotonic() < deadline and _alive(pid):
                        time.sleep(0.02)
                    if _alive(pid):
                        os.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        if self.pidfile is not None:
            self.pidfile.unlink(missing_ok=True)
            self.pidfile = None

    async def serve(self, ready: asyncio.Future[Any]) -> None:
        from mcp import Client
        from mcp.client.stdio import stdio_client

        self.queue = asyncio.Queue()
        params = self.params()
        errlog = None
        try:
            if not isinstance(params, str):  # a stdio server's stderr goes to a log file, not into the notebook
                errlog = ScrubbedLog(self.log)
                params = stdio_client(params, errlog=errlog.writer)
            # The handshake may take the connect timeout (a loaded machine starting Python); each call is held
            # to timeout_s by _request, which stops the server when it is exceeded.
            read_timeout = max(self.config.timeout_s, self.config.connect_timeout_s)
            async with Client(params, read_timeout_seconds=read_timeout, mode="legacy", cache=None) as client:
                self.info = client.server_info
                ready.set_result(True)
                while True:
                    op, args, done = await self.queue.get()
                    if op is None:
                        return
                    try:
                        done.set_result(await op(client, *args))
                    except Exception as exc:  # noqa: BLE001 - handed to the caller's future
                        done.set_exception(exc)
                        if _fatal(exc):
                            return
        except Exception as exc:  # noqa: BLE001 - the connection failed or broke
            if not ready.done():
                ready.set_exception(exc)
        finally:
            if errlog is not None:
                errlog.close()
            while self.queue and not self.queue.empty():
                _, _, done = self.queue.get_nowait()
                if done is not None and not done.done():
                    done.set_exception(ConnectionError(f"MCP server {self.name} closed"))
            self.queue = None


class ScrubbedLog:
    """A stdio server's stderr, copied to its log file a line at a time with every secret redacted (a server may
    print its token, or the environment it was given): the server writes into a pipe, a thread copies.
    A private-key block is left out whole, from its BEGIN line to its END line.
    """

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        read, write = os.pipe()
        self.writer = os.fdopen(write, "w", encoding="utf-8")  # the server's stderr
        self._reader = os.fdopen(read, "r", encoding="utf-8", errors="replace")
        self._out = path.open("a", encoding="utf-8")
        self._thread = threading.Thread(target=self._copy, name=f"mcp-log-{path.stem}", daemon=True)
        self._thread.start()

    def _copy(self) -> None:
        in_key = False
        with self._reader, self._out:
            for line in self._reader:
                if in_key or ("-----BEGIN" in line and "PRIVATE KEY-----" in line):
                    if not in_key:
                        self._out.write("[REDACTED:private_key]\n")
                    in_key = "-----END" not in line.split("-----BEGIN")[-1]  # inside until a line ends the block
                    continue
                self._out.write(scrub(line) or "")
                self._out.flush()

    def close(self, wait_s: float = 10.0) -> None:
        """Close this process's end of the pipe; the copy ends when the server's end closes too (at once, the
        server being stopped first), so what it said is in the log when this returns. ``wait_s`` only bounds a
        machine too busy to schedule the copy: 2 s was once not enough, and the log was read empty.
        """
        self.writer.close()
        self._thread.join(timeout=wait_s)


LAUNCHER = Path(__file__).with_name("_launch.py")


def _read_pid(pidfile: Path | None) -> int | None:
    try:
        return int(pidfile.read_text()) if pidfile is not None else None
    except (OSError, ValueError):
        return None


def _alive(pid: int) -> bool:
    """Whether ``pid`` still runs (a zombie waiting to be reaped by asyncio does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _fatal(exc: BaseException) -> bool:
    """Whether ``exc`` means the server's connection is unusable (judged by type and error code, not text)."""
    if isinstance(exc, BaseExceptionGroup):
        return any(_fatal(e) for e in exc.exceptions)
    from mcp.shared.exceptions import MCPError
    from mcp_types import CONNECTION_CLOSED, REQUEST_TIMEOUT

    if isinstance(exc, MCPError):  # the connection is gone, or a request ran out of time: restart next call
        return exc.code in (CONNECTION_CLOSED, REQUEST_TIMEOUT)
    return isinstance(exc, (ConnectionError, EOFError, BrokenPipeError, TimeoutError))


class MCP:
    """``wb.mcp``: connect the configured servers, list what they offer, call their tools."""

    def __init__(self, store: Store, settings: MCPSettings, root: Path, tools: Tools):
        self.store, self.settings, self.root, self.tools = store, settings, root, tools
        self._loop: asyncio.AbstractEventLoop | None = None
        self._servers: dict[str, _Server] = {}
        self._lock = threading.Lock()

    # -- connection ---------------------------------------------------------------------------

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                self._loop = asyncio.new_event_loop()
                threading.Thread(target=self._loop.run_forever, name="workbench-mcp", daemon=True).start()
            return self._loop

    def _server(self, name: str) -> _Server:
        if name not in self.settings.servers:
            known = ", ".join(sorted(self.settings.servers)) or "none ([mcp.servers.NAME] in workbench.toml)"
            raise ToolError(f"unknown MCP server {name!r}; configured: {known}")
        loop = self._ensure_loop()
        server = self._servers.get(name)
        if server is None or server.queue is None:
            log = Path(self.store.path).parent / f"mcp-{name}.log"
            server = _Server(name, self.settings.servers[name], self.root, log)
            self._servers[name] = server

            async def start() -> None:
                ready = loop.create_future()
                server.task = loop.create_task(server.serve(ready))
                await ready

            try:
                asyncio.run_coroutine_threadsafe(start(), loop).result(server.config.connect_timeout_s)
            except FutureTimeout:
                limit = server.config.connect_timeout_s
                raise ToolError(f"MCP server {name} did not start within {limit:.0f} s") from None
            except Exception as exc:  # noqa: BLE001 - any start failure is one clear error
                self._servers.pop(name, None)
                raise ToolError(f"MCP server {name} could not be started: {_message(exc)}") from exc
        return server

    def _request(self, name: str, op: Any, *args: Any, timeout: float | None = None) -> Any:
        server = self._server(name)
        loop = self._ensure_loop()
        limit = timeout or server.config.timeout_s

        async def submit() -> Any:
            done = loop.create_future()
            if server.queue is None:
                raise ConnectionError(f"MCP server {name} closed")
            await server.queue.put((op, args, done))
            return await asyncio.wait_for(done, limit)

        try:
            return asyncio.run_coroutine_threadsafe(submit(), loop).result(limit + 5)
        except (TimeoutError, FutureTimeout):
            self._drop(name)
            raise ToolError(
                f"MCP server {name} did not answer within {limit:.0f} s; it was stopped and will be "
                "restarted on the next call"
            ) from None
        except ToolError:
            raise
        except Exception as exc:  # noqa: BLE001 - a dead server, a protocol error
            if _fatal(exc):
                self._drop(name)
            raise ToolError(f"MCP server {name}: {_message(exc)}") from exc  # the cause stays for %tb

    def _drop(self, name: str) -> None:
        """Stop a server for certain: its whole process group is ended, then its connection task."""
        server = self._servers.pop(name, None)
        if server is None:
            return
        server.kill()
        if server.task and self._loop:
            self._loop.call_soon_threadsafe(server.task.cancel)

    def close(self) -> None:
        """Stop every server (and whatever it started) and the background loop."""
        for name in list(self._servers):
            self._drop(name)
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._loop = None

    # -- what servers offer -------------------------------------------------------------------

    def connect(self, name: str | None = None) -> list[Tool]:
        """Start ``name`` (or every configured server), pin and register its tools as ``server.tool``."""
        names = [name] if name else sorted(self.settings.servers)
        added: list[Tool] = []
        for server in names:
            listed = self._request(server, lambda c: c.list_tools())
            for t in listed.tools:
                added.append(self._register(server, t))
        return added

    def _register(self, server: str, t: Any) -> Tool:
        name = f"{server}.{t.name}"
        schema = t.input_schema if hasattr(t, "input_schema") else t.inputSchema
        schema = {k: v for k, v in (schema or {"type": "object"}).items() if k != "title"}
        definition = {"description": t.description or "", "schema": schema}
        self._pin(server, name, definition)
        hints = t.annotations
        risk = self.settings.servers[server].risk.get(t.name) or (
            "destructive"
            if hints is not None and hints.destructive_hint
            else "read"
            if hints is not None and hints.read_only_hint
            else "write"
        )

        def call(**arguments: Any) -> str:
            return self.call(server, t.name, arguments)

        tool = Tool(name, t.description or name, schema, risk, call, f"mcp:{server}")
        return self.tools.add(tool)

    def call(self, server: str, tool: str, arguments: dict[str, Any]) -> str:
        """Call a server's tool (pinned definitions only); its text content, or a ToolError."""
        self._check_pin(f"{server}.{tool}")
        result = self._request(server, lambda c, n, a: c.call_tool(n, a), tool, arguments)
        text = "\n".join(
            getattr(block, "text", "") or json.dumps(getattr(block, "model_dump", dict)()) for block in result.content
        )
        if result.is_error:
            raise ToolError(f"{server}.{tool}: {text}")
        return ToolText(text)  # a str; a table in a notebook when it is CSV

    def resources(self, server: str) -> pd.DataFrame:
        """A server's resources: uri, name, description, mime type."""
        import pandas as pd

        listed = self._request(server, lambda c: c.list_resources())
        rows = [
            {
                "uri": str(r.uri),
                "name": r.name,
                "description": r.description,
                "mime_type": getattr(r, "mime_type", None),
            }
            for r in listed.resources
        ]
        return pd.DataFrame(rows, columns=["uri", "name", "description", "mime_type"])

    def read(self, server: str, uri: str) -> str:
        """A resource's text."""
        result = self._request(server, lambda c, u: c.read_resource(u), uri)
        return "\n".join(getattr(c, "text", "") for c in result.contents)

    def prompts(self, server: str) -> pd.DataFrame:
        """A server's prompts: name, description, arguments."""
        import pandas as pd

        listed = self._request(server, lambda c: c.list_prompts())
        rows = [
            {"name": p.name, "description": p.description, "arguments": ", ".join(a.name for a in (p.arguments or []))}
            for p in listed.prompts
        ]
        return pd.DataFrame(rows, columns=["name", "description", "arguments"])

    # -- pins ---------------------------------------------------------------------------------

    def _pin(self, server: str, name: str, definition: dict[str, Any]) -> None:
        digest = hashlib.sha256(json.dumps(definition, sort_keys=True).encode()).hexdigest()  # of what it says
        text = json.dumps(scrub_values(definition), sort_keys=True)  # stored for review: never with a key in it
        rows = self.store.query("SELECT hash, status, changed_hash FROM mcp_pins WHERE name = ?", (name,))
        if rows and digest == (rows[0]["changed_hash"] if rows[0]["status"] == "changed" else rows[0]["hash"]):
            return  # as pinned, or as already flagged: nothing to write
        with self.store.transaction() as conn:
            if not rows:
                conn.execute(
                    "INSERT INTO mcp_pins (name, server, hash, definition, first_seen, status) "
                    "VALUES (?, ?, ?, ?, ?, 'pinned')",
                    (name, server, digest, text, utcnow()),
                )
                event = {"event": "pinned", "hash": digest}
            elif rows[0]["hash"] != digest:
                conn.execute(
                    "UPDATE mcp_pins SET status = 'changed', changed_hash = ?, changed_definition = ?, "
                    "changed_at = COALESCE(changed_at, ?) WHERE name = ?",
                    (digest, text, utcnow(), name),
                )
                event = {"event": "changed", "pinned": rows[0]["hash"], "seen": digest}
            else:  # back to what was approved
                conn.execute(
                    "UPDATE mcp_pins SET status = 'pinned', changed_hash = NULL, changed_definition = NULL, "
                    "changed_at = NULL WHERE name = ?",
                    (name,),
                )
                event = {"event": "restored", "hash": digest}
            self.store.audit(conn, "mcp_pin", name, event, bind=[("mcp_pins", name)])

    def _check_pin(self, name: str) -> None:
        rows = self.store.query("SELECT status, changed_at FROM mcp_pins WHERE name = ?", (name,))
        if rows and rows[0]["status"] == "changed":
            raise ToolError(
                f"{name} changed its description or schema since it was pinned (at "
                f"{rows[0]['changed_at']}); it is blocked until a human re-approves it: review "
                f"wb.mcp.df(), then wb.mcp.approve({name!r})"
            )

    def approve(self, name: str, by: str | None = None) -> None:
        """Pin a changed tool's new definition (after a human reviewed it)."""
        rows = self.store.query("SELECT status FROM mcp_pins WHERE name = ?", (name,))
        if not rows:
            raise ToolError(f"no pinned MCP tool {name!r}")
        with self.store.transaction() as conn:
            conn.execute(
                "UPDATE mcp_pins SET hash = COALESCE(changed_hash, hash), definition = "
                "COALESCE(changed_definition, definition), status = 'pinned', changed_hash = NULL, "
                "changed_definition = NULL, changed_at = NULL, approved_by = ? WHERE name = ?",
                (by or "a human", name),
            )
            self.store.audit(
                conn,
                "mcp_pin",
                name,
                {"event": "approved", "by": by or "a human"},
                who={"user": by},
                bind=[("mcp_pins", name)],
            )

    def df(self) -> pd.DataFrame:
        """Every MCP tool seen: server, pin status (pinned / changed), when first seen, who re-approved."""
        import pandas as pd

        cols = ["name", "server", "status", "first_seen", "changed_at", "approved_by", "hash"]
        return pd.DataFrame(self.store.query(f"SELECT {', '.join(cols)} FROM mcp_pins ORDER BY name"), columns=cols)


def _message(exc: BaseException) -> str:
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(_message(e) for e in exc.exceptions)
    return str(exc) or type(exc).__name__
