"""Working memory: named sessions with persisted history and small key-value state.

Live mode loads a session's history from the store (so it survives a kernel
restart). Replay mode rebuilds history as the run goes, starting empty, so a
notebook recorded from a fresh start replays identically however many times it
was run live before.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterator, MutableMapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench.errors import WorkbenchError
from workbench.guardrails.scanners import check_name, map_strings
from workbench.store import Store, utcnow

if TYPE_CHECKING:
    from workbench.memory.transcript import TranscriptFormat


class SessionState(MutableMapping[str, Any]):
    """A session's key-value state, written through to the store on every change."""

    def __init__(self, store: Store, name: str, screen: Callable[[str, str], str] | None = None):
        self._store, self._name = store, name
        self._screen = screen or (lambda text, where: text)
        rows = store.query("SELECT state FROM sessions WHERE name = ?", (name,))
        self._data: dict[str, Any] = json.loads(rows[0]["state"] or "{}") if rows else {}

    def _save(self) -> None:
        state = json.dumps(self._data, sort_keys=True)
        self._store.execute(
            "INSERT INTO sessions (name, created_at, history_from, state) VALUES (?, ?, '', ?) "
            "ON CONFLICT(name) DO UPDATE SET state = excluded.state",
            (self._name, utcnow(), state),
        )

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __setitem__(self, key: str, value: Any) -> None:
        if not isinstance(key, str):
            raise WorkbenchError(f"a session state key is text, not {type(key).__name__}")
        check_name("session state key", key)
        try:
            json.dumps(value)  # fail here, not at save time, if the value is not JSON
        except (TypeError, ValueError, RecursionError) as exc:
            why = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
            raise WorkbenchError(
                f"session state {key!r} must be JSON (text, numbers, True/False, None, lists, dicts): {why}"
            ) from None
        where = f"session {self._name}'s state {key!r}"
        self._data[key] = map_strings(value, lambda text: self._screen(text, where))  # (every string, keys too)
        self._save()

    def __delitem__(self, key: str) -> None:
        del self._data[key]
        self._save()

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return f"SessionState({self._data!r})"


class Session:
    """One conversation: ``history`` (list of messages) and ``state``."""

    def __init__(self, book: Sessions, name: str):
        if not isinstance(name, str) or not name.strip():
            raise WorkbenchError(f"a session is named by text, as in wb.session('chat'), not {name!r}")
        self._book, self.name = book, check_name("session", name)

    @property
    def history(self) -> list[dict[str, Any]]:
        """The messages a next call in this session sends before its prompt (a copy)."""
        return list(self._book.history(self.name))

    @property
    def state(self) -> SessionState:
        """Small persisted key-value state."""
        return SessionState(self._book.store, self.name, self._book.screen)

    def reset(self) -> None:
        """Start the session afresh: its history, and what its views show — ``wb.calls.df(session=)``,
        ``wb.replay(session)``, ``wb.guard.df(session)`` begin here. Recorded calls stay in the store.
        """
        self._book.reset(self.name)

    def export(
        self, path: str | os.PathLike[str], format: TranscriptFormat | None = None, overwrite: bool = False
    ) -> Path:
        """Write this session's turns (since its last reset) as Markdown (``.md``), a new notebook
        (``.ipynb``: one markdown cell per turn, its footer in the cell's metadata) or JSON lines
        (``.jsonl``), with secrets scrubbed; returns the path. A file there that is not a transcript written
        here is replaced only with ``overwrite``.
        """
        from workbench.memory.transcript import export

        return export(self._book.store, self.name, path, format, overwrite)

    @property
    def started(self) -> str:
        """When the session (re)started, as an ISO instant (``''``: never reset): ``since=`` for other views."""
        return self._book.store.session_start(self.name)

    def __repr__(self) -> str:
        return f"Session({self.name!r}, turns={len(self._book.history(self.name)) // 2})"


class Sessions:
    """The ``memory.observe`` stage and the session history cache."""

    def __init__(self, store: Store, replay: bool):
        self.store = store
        self.replay = replay
        self.screen: Callable[[str, str], str] = lambda text, where: text  # state values -> what may be stored
        self._history: dict[str, list[dict[str, Any]]] = {}
        self._lock = threading.Lock()

    def history(self, name: str) -> list[dict[str, Any]]:
        """The cached history of ``name`` (loaded from the store once, in live mode)."""
        with self._lock:
            if name not in self._history:
                self._history[name] = [] if self.replay else self._load(name)
            return self._history[name]

    def _load(self, name: str) -> list[dict[str, Any]]:
        """The recorded turns since the last reset, each read as its audit entry recorded it: a prompt or answer
        edited in the SQLite file, or a turn deleted from it, is refused (``AuditChainBroken``, and an alert),
        never sent to the model as (partial) history. Compacted turns, whose text is gone, are left out.
        """
        rows = self.store.query(
            "SELECT c.id FROM calls c LEFT JOIN sessions s ON s.name = c.session "
            "WHERE c.session = ? AND c.status = 'ok' AND c.mode = 'live' AND c.compacted_at IS NULL "
            "AND c.started_at >= COALESCE(s.history_from, '') ORDER BY c.started_at",
            (name,),
        )
        self.store.check_session_calls(name, "session history")  # none deleted from the file
        history: list[dict[str, Any]] = []
        for row in rows:
            call = self.store.recorded_call(row["id"], "session history")
            history += [{"role": "user", "content": call["prompt"]}, {"role": "assistant", "content": call["text"]}]
        return history

    def observe(self, name: str, prompt: str, answer: str) -> None:
        """Append one turn to the session's history."""
        history = self.history(name)
        with self._lock:
            history += [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}]

    def reset(self, name: str) -> None:
        """Forget the history from now on (live: persisted as ``history_from``)."""
        with self._lock:
            self._history[name] = []
        if not self.replay:
            now = utcnow()
            self.store.execute(
                "INSERT INTO sessions (name, created_at, history_from, state) VALUES (?, ?, ?, '{}') "
                "ON CONFLICT(name) DO UPDATE SET history_from = excluded.history_from",
                (name, now, now),
            )
