"""Alerts: thresholds on error rate, latency and spend over a recent window.

A rule (``[[alerts.rules]]`` in workbench.toml, or ``wb.alerts.add(...)``) names a metric
over the live calls of the last ``window_s`` seconds, optionally of one route:

- ``error_rate``: failed calls / calls (refusals by a budget or the kill switch are not errors);
- ``p50_latency_ms`` / ``p95_latency_ms``: of answered calls (nearest rank);
- ``spend_usd``: cost of the calls in the window.

Rules are checked after every live call. Crossing ``above`` *fires* the alert once (a
visible :class:`AlertWarning` in the notebook, a row in the ``alerts`` table, a JSON POST
to the webhook); it stays quiet while the metric stays over, and *resolves* (recorded,
shown, posted) when the metric is back at or under the threshold. Error rate and
latency need ``min_calls`` calls in the window before they count. The firing state
lives in the store, so processes sharing it fire an alert once between them; with ``[team]
redis_url`` set, metrics and firing state are the team's (``workbench.team.alerts``).
"""

from __future__ import annotations

import json
import math
import os
import threading
import urllib.request
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from workbench.config import AlertRule, Settings
from workbench.errors import ConfigError, warn_at_caller
from workbench.guardrails.scanners import scrub
from workbench.store import Store, utcnow

if TYPE_CHECKING:
    import pandas as pd

WEBHOOK_TIMEOUT_S = 5.0


class AlertWarning(UserWarning):
    """An alert fired or resolved (shown once per transition)."""


class Alerts:
    """``wb.alerts``: the rules, their current values, and what fired when."""

    def __init__(self, store: Store, settings: Settings):
        self.store, self.settings = store, settings
        self._rules: dict[str, AlertRule] = {rule.name: rule for rule in settings.alerts.rules}
        self._added: dict[str, str] = {}  # a rule added at run time: its firing state starts then
        self._posts: list[threading.Thread] = []

    @property
    def rules(self) -> list[AlertRule]:
        """The rules checked after every call."""
        return list(self._rules.values())

    def add(
        self,
        name: str,
        metric: str,
        above: float,
        *,
        window_s: float = 300.0,
        min_calls: int = 5,
        route: str | None = None,
    ) -> AlertRule:
        """Add (or replace) a rule for this Workbench, e.g. ``add("slow", "p95_latency_ms", 2000)``.

        The rule starts afresh: whether an earlier rule of that name was firing does not carry over
        (its window still holds the last ``window_s`` seconds of calls).
        """
        from pydantic import ValidationError

        try:
            rule = AlertRule(name=name, metric=metric, above=above, window_s=window_s, min_calls=min_calls, route=route)
        except ValidationError as exc:
            error = exc.errors()[0]
            where = ".".join(str(p) for p in error["loc"])
            raise ConfigError(f"alert {name!r}: {where}: {error['msg']}") from None
        self._rules[name] = rule
        self._added[name] = utcnow()
        return rule

    def remove(self, name: str) -> None:
        """Stop checking a rule (its history stays)."""
        if self._rules.pop(name, None) is None:
            raise ConfigError(f"no alert rule named {name!r}; wb.alerts.rules lists them")

    # ---- checking -----------------------------------------------------------------

    def check(self, route: str | None = None, call_id: str | None = None, warn: bool = True) -> list[str]:
        """Evaluate the rules (those of ``route``, or all); record, post and (``warn``) show what changed."""
        rules = [r for r in self._rules.values() if route is None or r.route in (None, route)]
        if not rules:
            return []
        changes = []
        with self.store.transaction() as conn:
            for rule in rules:
                added = self._added.get(rule.name, "")
                value = _value(conn, rule)
                last = conn.execute(
                    "SELECT event FROM alerts WHERE rule = ? AND at >= ? AND event != 'notice' "
                    "ORDER BY id DESC LIMIT 1",
                    (rule.name, added),
                ).fetchone()
                firing = last is not None and last[0] == "fired"
                if not firing and value is not None and value > rule.above:
                    event = "fired"
                elif firing and (value is None or value <= rule.above):
                    event = "resolved"
                else:
                    continue
                changes.append(self._insert(conn, rule, event, value, call_id))
        return self._announce(changes, warn)

    def _insert(self, conn: Any, rule: AlertRule, event: str, value: float | None, call_id: str | None) -> dict:
        """Record that ``rule`` fired or resolved (in the caller's transaction); the row, with its id."""
        row: dict[str, Any] = {
            "rule": rule.name,
            "event": event,
            "metric": rule.metric,
            "value": value,
            "above": rule.above,
            "window_s": rule.window_s,
            "route": rule.route,
            "at": utcnow(),
            "call_id": call_id,
        }
        row["id"] = conn.execute(
            f"INSERT INTO alerts ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})", list(row.values())
        ).lastrowid
        return row

    def _announce(self, changes: list[dict], warn: bool, scope: str = "") -> list[str]:
        """Show (``warn``) and post each recorded change; its one-line notices (``scope`` appended)."""
        notices = []
        for row in changes:
            notice = describe(row) + scope
            notices.append(notice)
            if warn:
                warn_at_caller(notice, AlertWarning)  # at the line that made the call
            self._post(row, notice)
        return notices

    def notice(self, rule: str, text: str, ref: str | None = None, warn: bool = True) -> None:
        """Record, show and post a one-off notice (an escalated approval, an audit log refusing to grow)."""
        row: dict[str, Any] = {
            "rule": rule,
            "event": "notice",
            "metric": rule,
            "value": None,
            "above": None,
            "window_s": None,
            "route": None,
            "at": utcnow(),
            "call_id": ref,
        }
        with self.store.transaction() as conn:
            row["id"] = conn.execute(
                f"INSERT INTO alerts ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})", list(row.values())
            ).lastrowid
        if warn:
            warn_at_caller(text, AlertWarning)
        self._post(row, text)

    def values(self) -> pd.DataFrame:
        """Each rule with its metric's current value and whether it is firing."""
        import pandas as pd

        rows = []
        with self.store.lock:
            for rule in self._rules.values():
                added = self._added.get(rule.name, "")
                last = self.store.conn.execute(
                    "SELECT event, at FROM alerts WHERE rule = ? AND at >= ? AND event "
                    "!= 'notice' ORDER BY id DESC LIMIT 1",
                    (rule.name, added),
                ).fetchone()
                firing = bool(last and last[0] == "fired")
                rows.append(
                    {
                        **rule.model_dump(),
                        "value": _value(self.store.conn, rule),
                        "firing": firing,
                        "since": last[1] if last else None,
                    }
                )
        columns = ["name", "metric", "above", "value", "firing", "since", "window_s", "min_calls", "route"]
        return pd.DataFrame(rows, columns=columns)

    def df(self) -> pd.DataFrame:
        """Every alert that fired or resolved, newest first, with the webhook's delivery."""
        import pandas as pd

        rows = self.store.query("SELECT * FROM alerts ORDER BY id DESC")
        columns = ["id", "at", "rule", "event", "metric", "value", "above", "window_s", "route", "call_id", "delivery"]
        return pd.DataFrame(rows, columns=columns)

    def flush(self, timeout: float = WEBHOOK_TIMEOUT_S + 1) -> None:
        """Wait for webhook posts still in flight (tests, end of a script)."""
        for thread in list(self._posts):
            thread.join(timeout)
        self._posts = [t for t in self._posts if t.is_alive()]

    # ---- the webhook --------------------------------------------------------------

    def _webhook(self) -> str | None:
        config = self.settings.alerts
        if config.webhook_env:
            return os.environ.get(config.webhook_env) or None
        return config.webhook

    def _post(self, row: dict[str, Any], text: str | None = None) -> None:
        url = self._webhook()
        if not url:
            return
        thread = threading.Thread(target=self._deliver, args=(url, row, text), daemon=True, name="workbench-alert")
        self._posts = [t for t in self._posts if t.is_alive()] + [thread]
        thread.start()

    def _deliver(self, url: str, row: dict[str, Any], text: str | None = None) -> None:
        body = json.dumps({**{k: v for k, v in row.items() if k != "id"}, "text": text or describe(row)}).encode()
        request = urllib.request.Request(url, body, {"Content-Type": "application/json"}, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=WEBHOOK_TIMEOUT_S) as response:
                delivery = f"delivered ({response.status})"
        except Exception as exc:  # the alert is recorded whatever the webhook does
            delivery = f"failed: {type(exc).__name__}: {getattr(exc, 'reason', exc)}"[:300]
        with self.store.transaction() as conn:  # never the URL: it may carry a token
            conn.execute("UPDATE alerts SET delivery = ? WHERE id = ?", (scrub(delivery), row["id"]))


def _value(conn: Any, rule: AlertRule) -> float | None:
    """The rule's metric over its window now (``None``: too few calls to say)."""
    since = (datetime.now(UTC) - timedelta(seconds=rule.window_s)).isoformat(timespec="microseconds")
    where = "mode = 'live' AND started_at >= ?" + (" AND route = ?" if rule.route else "")
    params = (since, rule.route) if rule.route else (since,)
    if rule.metric == "spend_usd":
        return conn.execute(f"SELECT COALESCE(SUM(cost_usd), 0) FROM calls WHERE {where}", params).fetchone()[0]
    if rule.metric == "error_rate":
        n, errors = conn.execute(
            f"SELECT COUNT(*), COALESCE(SUM(status = 'error'), 0) FROM calls "
            f"WHERE {where} AND status IN ('ok', 'error')",
            params,
        ).fetchone()
        return errors / n if n >= rule.min_calls else None
    latencies = [
        r[0]
        for r in conn.execute(
            f"SELECT latency_ms FROM calls WHERE {where} AND status = 'ok' ORDER BY latency_ms", params
        )
    ]
    if len(latencies) < rule.min_calls:
        return None
    q = 0.5 if rule.metric == "p50_latency_ms" else 0.95
    return latencies[max(0, math.ceil(q * len(latencies)) - 1)]


def describe(row: dict[str, Any]) -> str:
    """One line saying what an alert row means (fired or resolved, the value against the threshold)."""
    scope = f" on route {row['route']}" if row["route"] else ""
    value = "n/a (too few calls)" if row["value"] is None else f"{row['value']:.4g}"
    if row["event"] == "fired":
        return (
            f"ALERT {row['rule']}: {row['metric']} = {value} is over {row['above']:g} "
            f"in the last {row['window_s']:g} s{scope}"
        )
    return f"resolved {row['rule']}: {row['metric']} = {value}, back at or under {row['above']:g}{scope}"
