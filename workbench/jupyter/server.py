"""The workbench's ``jupyter_server`` extension: the panel's API under ``/workbench/api/``.

Enabled by the config file the package installs (``jupyter server extension list`` shows
``workbench.jupyter.server``). Every handler is a Jupyter ``APIHandler`` behind
``@authenticated``: the server's own token or login, and its XSRF check on writes.

Which stores it serves: those of the notebooks open in this server (its sessions), each
found from the notebook's folder as the kernel finds it (``workbench.toml`` there or in a
parent, the ``WORKBENCH_*`` variables the kernels inherit), and only if the file exists. A
request names a store by an opaque id from ``GET /workbench/api/stores``, never by a path.

Store reads and writes run on one worker thread per server, off the event loop, so the
panel never stalls JupyterLab's own requests.

    GET    /workbench/api/stores                     the stores of the open notebooks
    GET    /workbench/api/poll?store=ID&after=T      new calls, pending approvals, spend: one query, once a second
    GET    /workbench/api/calls?store=ID&session=&model=&status=&after=&limit=
    GET    /workbench/api/calls/CALL?store=ID        one call: request, answer, attempts, spans
    GET    /workbench/api/approvals?store=ID         the pending approvals
    POST   /workbench/api/approvals/ID?store=ID      {"decision", "reason", "arguments", "to"}
    GET    /workbench/api/alerts?store=ID            recent alerts and guard events
    GET    /workbench/api/spend?store=ID             spend against the tightest budget, by model, the kill switch
    POST   /workbench/api/kill?store=ID              {"reason"}: the kill switch on
    DELETE /workbench/api/kill?store=ID              lifted
    GET    /workbench/api/report?store=ID&session=S  the session's HTML report
    GET    /workbench/api/dashboard?store=ID         the store's dashboard page
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jupyter_server.base.handlers import APIHandler, JupyterHandler
from jupyter_server.utils import url_path_join
from tornado import web

from workbench.approvals import ApprovalError
from workbench.errors import WorkbenchError
from workbench.jupyter import panel

if TYPE_CHECKING:
    from workbench.runtime import Workbench


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "workbench.jupyter.server"}]


class Stores:
    """The stores of the notebooks open in one Jupyter server, by opaque id, each opened once."""

    def __init__(self, serverapp: Any):
        self.serverapp = serverapp
        self.root = Path(serverapp.root_dir).resolve()
        self.known: dict[str, dict[str, Any]] = {}  # id -> {"path", "label", "notebooks"}
        self.opened: dict[str, Workbench] = {}
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="workbench-panel")

    async def discover(self) -> list[dict[str, Any]]:
        """The stores of the open notebooks (read afresh: notebooks open and close)."""
        sessions = await self.serverapp.session_manager.list_sessions()
        paths = [s.get("path") or (s.get("notebook") or {}).get("path") for s in sessions]
        found = await self.run(self._resolve, [p for p in paths if p])
        self.known = found
        return [{"id": i, "label": s["label"], "notebooks": s["notebooks"]} for i, s in found.items()]

    def _resolve(self, notebooks: list[str]) -> dict[str, dict[str, Any]]:
        from workbench.config import load_settings

        out: dict[str, dict[str, Any]] = {}
        for notebook in notebooks:
            folder = (self.root / notebook).parent.resolve()
            if not folder.is_relative_to(self.root):
                continue  # a session path outside the server's root (never from a request, but still)
            try:
                store = Path(load_settings(start=folder).store).resolve()
            except WorkbenchError:
                continue  # a broken config: the kernel shows its error, the panel skips the store
            if not store.is_file():
                continue  # nothing recorded yet: the panel does not create stores
            key = hashlib.sha256(str(store).encode()).hexdigest()[:16]
            entry = out.setdefault(key, {"path": store, "label": self._label(store), "notebooks": []})
            entry["notebooks"].append(notebook)
        return out

    def _label(self, store: Path) -> str:
        return str(store.relative_to(self.root)) if store.is_relative_to(self.root) else store.name

    async def get(self, store_id: str | None) -> Workbench:
        """The Workbench of the store with this id (404 if no open notebook uses it)."""
        if not store_id:
            raise web.HTTPError(400, "name a store: ?store=ID (GET /workbench/api/stores lists them)")
        if store_id not in self.known:
            await self.discover()
        if store_id not in self.known:
            raise web.HTTPError(404, "no open notebook uses that store")
        return await self.run(self._open, store_id)

    def _open(self, store_id: str) -> Workbench:
        wb = self.opened.get(store_id)
        if wb is None:
            from workbench.config import load_settings
            from workbench.runtime import Workbench

            path = self.known[store_id]["path"]
            notebook = self.known[store_id]["notebooks"][0]
            settings = load_settings(start=(self.root / notebook).parent.resolve())
            wb = self.opened[store_id] = Workbench(settings.model_copy(update={"store": path}))
        return wb

    async def run(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``fn(*args, **kwargs)`` on the panel's worker thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, lambda: fn(*args, **kwargs))

    def close(self) -> None:
        for wb in self.opened.values():
            wb.close()
        self.executor.shutdown(wait=False)


class _Handler(APIHandler):
    stores: Stores

    def initialize(self, stores: Stores) -> None:
        self.stores = stores

    @property
    def who(self) -> str:
        """The Jupyter user deciding (from the server's own auth, never from the request body)."""
        user = self.current_user
        return str(getattr(user, "username", None) or getattr(user, "name", None) or user or "jupyter")

    async def answer(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """Run ``fn(wb, ...)`` for the request's store and send its JSON (errors: one line, a status)."""
        wb = await self.stores.get(self.get_query_argument("store", None))
        try:
            out = await self.stores.run(fn, wb, *args, **kwargs)
        except ApprovalError as exc:
            raise web.HTTPError(409, str(exc)) from None
        except WorkbenchError as exc:
            raise web.HTTPError(400, str(exc)) from None
        self.set_header("Cache-Control", "no-store")
        self.finish(json.dumps(out, default=str))

    def body(self) -> dict[str, Any]:
        try:
            data = json.loads(self.request.body or b"{}")
        except ValueError:
            raise web.HTTPError(400, "the body must be a JSON object") from None
        if not isinstance(data, dict):
            raise web.HTTPError(400, "the body must be a JSON object")
        return data


class StoresHandler(_Handler):
    @web.authenticated
    async def get(self) -> None:
        self.finish(json.dumps({"stores": await self.stores.discover()}))


class PollHandler(_Handler):
    @web.authenticated
    async def get(self) -> None:
        await self.answer(panel.poll, self.get_query_argument("after", None))


class CallsHandler(_Handler):
    @web.authenticated
    async def get(self, call_id: str | None = None) -> None:
        if call_id:
            await self.answer(panel.call, call_id)
            return
        q = self.get_query_argument
        try:
            limit = int(q("limit", "50"))
        except ValueError:
            raise web.HTTPError(400, "limit must be a number") from None
        await self.answer(
            panel.calls,
            after=q("after", None),
            session=q("session", None),
            model=q("model", None),
            status=q("status", None),
            limit=limit,
        )


class ApprovalsHandler(_Handler):
    @web.authenticated
    async def get(self, approval_id: str | None = None) -> None:
        await self.answer(panel.approvals)

    @web.authenticated
    async def post(self, approval_id: str | None = None) -> None:
        if not approval_id:
            raise web.HTTPError(404, "POST /workbench/api/approvals/ID decides one approval")
        data = self.body()
        await self.answer(
            panel.decide,
            approval_id,
            str(data.get("decision", "")),
            by=self.who,
            reason=str(data.get("reason") or ""),
            arguments=data.get("arguments"),
            to=data.get("to"),
        )


class AlertsHandler(_Handler):
    @web.authenticated
    async def get(self) -> None:
        await self.answer(panel.alerts)


class SpendHandler(_Handler):
    @web.authenticated
    async def get(self) -> None:
        await self.answer(panel.spend)


class KillHandler(_Handler):
    @web.authenticated
    async def post(self) -> None:
        await self.answer(panel.kill, str(self.body().get("reason") or ""), self.who)

    @web.authenticated
    async def delete(self) -> None:
        await self.answer(panel.lift)


class _Page(JupyterHandler):
    """A page to open in a browser tab (HTML, not JSON; signed-out browsers are sent to the login page)."""

    stores: Stores

    def initialize(self, stores: Stores) -> None:
        self.stores = stores


class ReportHandler(_Page):
    """A session's HTML report (the same page as ``wb.report``), to open in a browser tab."""

    @web.authenticated
    async def get(self) -> None:
        session = self.get_query_argument("session", "")
        wb = await self.stores.get(self.get_query_argument("store", None))
        try:
            html = await self.stores.run(wb.report, session)
        except WorkbenchError as exc:
            raise web.HTTPError(400, str(exc)) from None
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.finish(html)


class DashboardHandler(_Page):
    """The store's dashboard (``wb.dashboard()``) as a standalone page."""

    @web.authenticated
    async def get(self) -> None:
        wb = await self.stores.get(self.get_query_argument("store", None))

        def page(wb: Workbench) -> str:
            return str(wb.dashboard().to_html(include_plotlyjs=True, full_html=True))

        try:
            html = await self.stores.run(page, wb)
        except WorkbenchError as exc:
            raise web.HTTPError(400, str(exc)) from None
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.finish(html)


def _load_jupyter_server_extension(serverapp: Any) -> None:
    stores = Stores(serverapp)
    base = url_path_join(serverapp.web_app.settings["base_url"], "workbench", "api")
    routes: list[tuple[str, type[_Handler] | type[_Page]]] = [
        ("stores", StoresHandler),
        ("poll", PollHandler),
        (r"calls(?:/([A-Za-z0-9_-]+))?", CallsHandler),
        (r"approvals(?:/([A-Za-z0-9_-]+))?", ApprovalsHandler),
        ("alerts", AlertsHandler),
        ("spend", SpendHandler),
        ("kill", KillHandler),
        ("report", ReportHandler),
        ("dashboard", DashboardHandler),
    ]
    serverapp.web_app.add_handlers(
        ".*$", [(url_path_join(base, pattern), handler, {"stores": stores}) for pattern, handler in routes]
    )
    serverapp.web_app.settings["workbench_stores"] = stores
    serverapp.log.info("workbench: the panel's API is at %s", base)
