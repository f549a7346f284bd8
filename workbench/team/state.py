"""The connection to a team's Redis, what happens when it is down, and the shared kill switch.

What every call reads (the kill switch, whether team budgets exist, the breakers) is one
snapshot per process, read again when it is older than ``SNAPSHOT_S`` (50 ms): a switch set
on one machine stops the others' calls within that, without a round trip per call.

Every key lives under ``wb:NAME:`` (``[team] name``), so several teams can share one server.
Each shared step is one Lua script (atomic on the server, one round trip), and the server's
own clock (``TIME``) decides what is due or expired, so analysts' clocks need not agree.

When a command fails (connection refused, timeout), the server counts as down for
``RETRY_S``: callers are told at once instead of each waiting out the timeout. What a caller
does then is its own policy (``budgets_when_down``, ``limits_when_down``).
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from workbench.config import TeamSettings
from workbench.errors import ConfigError, warn_at_caller

RETRY_S = 1.0  # after a failure, Redis is not tried again for this long
SNAPSHOT_S = 0.05  # the kill switch, budgets' existence and breakers are read at most this often per process


class TeamWarning(UserWarning):
    """Shared state fell back to this machine's (Redis is down and the policy allows it)."""


class Unreachable(Exception):
    """Redis could not be reached (internal: each caller turns it into its policy)."""


class TeamState:
    """One team's shared state on a Redis server: ``run`` a script, ``kill`` / ``lift`` / ``killed``."""

    def __init__(self, settings: TeamSettings):
        if not settings.redis_url:
            raise ConfigError("[team] needs redis_url = 'redis://host:6379/0' to share anything")
        parts = urlsplit(settings.redis_url)
        if parts.scheme not in ("redis", "rediss", "unix"):
            raise ConfigError(
                f"[team] redis_url must start with redis://, rediss:// or unix:// (got {parts.scheme}://)"
            )
        if parts.password:
            raise ConfigError("[team] redis_url holds a password: put it in a variable and name it in password_env")
        self.settings, self.prefix = settings, f"wb:{settings.name}:"
        # who and where, for audit entries and messages (never a password)
        self.where = f"{settings.name}@{parts.hostname or parts.path}:{parts.port or 6379}{parts.path or '/0'}"
        self._client: Any = None
        self._scripts: dict[str, Any] = {}
        self._down_until = 0.0
        self._snap: Snapshot | None = None
        self._lock = threading.Lock()

    # ---- the connection ---------------------------------------------------------

    @property
    def client(self) -> Any:
        """The ``redis.Redis`` client (imported and connected on first use)."""
        if self._client is None:
            with self._lock:
                if self._client is None:
                    try:
                        import redis
                    except ImportError:
                        raise ConfigError(
                            "[team] redis_url is set but the redis package is missing: pip install 'workbench[team]'"
                        ) from None
                    env = self.settings.password_env
                    password = os.environ.get(env) if env else None
                    if env and password is None:
                        raise ConfigError(f"[team] password_env={env}: that variable is not set")
                    timeout = self.settings.timeout_s
                    self._client = redis.Redis.from_url(
                        self.settings.redis_url or "",
                        password=password,
                        socket_timeout=timeout,
                        socket_connect_timeout=timeout,
                        health_check_interval=30,
                    )
        return self._client

    @property
    def down(self) -> bool:
        """Whether Redis failed less than ``RETRY_S`` ago (it is not tried until then)."""
        return time.monotonic() < self._down_until

    def run(self, name: str, source: str, keys: list[str], args: list[Any]) -> Any:
        """Run a Lua script (loaded once, then by its hash). Raises :class:`Unreachable` when Redis is down."""

        def call(client: Any) -> Any:
            script = self._scripts.get(name)
            if script is None:
                script = self._scripts[name] = client.register_script(source)
            return script(keys=keys, args=args)

        return self.command(call)

    def command(self, fn: Callable[[Any], Any]) -> Any:
        """``fn(client)``, with the same down handling as :meth:`run`."""
        if self.down:
            raise Unreachable(f"Redis at {self.where} failed less than {RETRY_S:g}s ago")
        import redis

        try:
            return fn(self.client)
        except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
            self._down_until = time.monotonic() + RETRY_S
            raise Unreachable(f"Redis at {self.where} cannot be reached ({exc})") from None

    def fallback(self, what: str, reason: Unreachable) -> None:
        """Warn that ``what`` uses this machine's state for now."""
        warn_at_caller(f"{reason}: {what} fall back to this machine's state until it is back", TeamWarning)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    # ---- the kill switch ---------------------------------------------------------

    def kill(self, reason: str) -> None:
        """Refuse every new call of every analyst on the team until :meth:`lift`."""
        value = json.dumps({"reason": reason, "by": _who(), "at": time.time()})
        self.command(lambda r: r.set(self.prefix + "kill", value))
        self.changed()

    def lift(self) -> bool:
        """Allow calls again; whether the switch was on."""
        lifted = bool(self.command(lambda r: r.delete(self.prefix + "kill")))
        self.changed()
        return lifted

    def snapshot(self) -> Snapshot:
        """The kill switch, whether team budgets or alert rules exist, and the breakers: read at most every
        ``SNAPSHOT_S`` (one round trip for all), so a busy caller does not pay a round trip for each on every call.
        """
        snap = self._snap
        if snap is not None and time.monotonic() - snap.at < SNAPSHOT_S:
            return snap
        keys = ["kill", "budgets", "breakers", "alerts:rules"]
        kill, budgets, now_ms, breakers, alerts = self.run("snapshot", _SNAPSHOT, [self.prefix + k for k in keys], [])
        states = {text(breakers[i]): _breaker(text(breakers[i + 1])) for i in range(0, len(breakers), 2)}
        self._snap = snap = Snapshot(
            _killed(kill), bool(budgets), int(now_ms), states, time.monotonic(), alerts=bool(alerts)
        )
        return snap

    def changed(self) -> None:
        """This process changed the shared state: the next :meth:`snapshot` reads it afresh."""
        self._snap = None

    def gate(self) -> tuple[str | None, bool]:
        """(the kill switch's reason if it is on, whether any team budget exists), at most ``SNAPSHOT_S`` old."""
        snap = self.snapshot()
        return snap.killed, snap.budgets


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The team's state as read at ``at`` (``time.monotonic``); ``server_ms`` is Redis's clock then."""

    killed: str | None
    budgets: bool
    server_ms: int
    breakers: dict[str, tuple[int, float | None, float | None]]  # endpoint -> failures, opened at, probe until
    at: float
    alerts: bool = False  # whether any analyst on the team has alert rules (calls then go into their window)

    def now_ms(self) -> float:
        """Redis's clock now, as this snapshot and the time since it was read tell."""
        return self.server_ms + (time.monotonic() - self.at) * 1000


def text(value: Any) -> str:
    """A Redis reply as text (bytes decoded)."""
    return value.decode() if isinstance(value, bytes) else str(value)


def _breaker(value: str) -> tuple[int, float | None, float | None]:
    failures, opened, probe = (value.split(" ") + ["", "", ""])[:3]
    return int(failures or 0), float(opened) if opened else None, float(probe) if probe else None


def _killed(value: Any) -> str | None:
    if value is None:
        return None
    try:
        data = json.loads(value)
        said = data.get("reason") or "kill switch"
        return f"{said}, set by {data['by']}" if data.get("by") else said
    except (ValueError, AttributeError):
        return text(value)


def _who() -> str:
    """user@host of this process (names who set the team's kill switch)."""
    import getpass
    import socket

    try:
        user = getpass.getuser()
    except Exception:  # noqa: BLE001 - no user name on this system
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


_SNAPSHOT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return {redis.call('GET', KEYS[1]), redis.call('EXISTS', KEYS[2]), now, redis.call('HGETALL', KEYS[3]),
        redis.call('EXISTS', KEYS[4])}
"""
