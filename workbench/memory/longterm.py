"""Long-term memory: scoped items in SQLite (FTS5), ranked, deduplicated, superseded, forgotten.

Scopes: ``user:NAME``, ``agent:NAME``, ``session:NAME`` and ``shared`` (or ``shared:TOPIC``).
An agent sees its own scope plus ``shared``. Kinds: ``fact``, ``preference``, ``episode``.

Ranking (weights in ``[memory.weights]``): ``bm25 * match + recency * 0.5 ** (days since
last use / half_life_days) + importance * importance``, where ``match`` is the item's
FTS5 BM25 score over the best score of the query (0..1). Candidates are the FTS matches
plus up to 10 of the most important, most recently used items of the scopes, so a
standing preference reaches a question that shares no word with it.

Writing is not append-only. Against the active items of the same scope and kind, the
share of content words two texts have in common (Jaccard) decides:

- at or above ``duplicate`` (0.8): the same memory — it is updated, not added again;
- at or above ``related`` (0.5): the same subject with a new value (``Alice prefers tea``
  then ``Alice prefers coffee``) — the new item *supersedes* the old, which is kept
  with a link both ways (``history(id)``);
- below: a new item.

Every write is an audit entry of its own (kind ``memory``, ref the item's id) binding the row as written, and a
search checks each item it returns against that entry (:meth:`Store.check_memories`): a memory edited in the
SQLite file is refused, never given to a model.

Forgetting: a time-to-live per item or per kind (``ttl_days``; episodes: 90 days), the
recency decay above, ``forget(id)`` (deletes the item and its history), and
``compact()`` which deletes what has expired.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from workbench.config import MemorySettings
from workbench.context.docs import fts_query
from workbench.errors import WorkbenchError, shown
from workbench.guardrails.scanners import check_name
from workbench.options import real_number, whole_number
from workbench.serving.extractive import terms
from workbench.store import Store, new_id, utcnow

if TYPE_CHECKING:
    import pandas as pd

Kind = Literal["fact", "preference", "episode"]
KINDS = ("fact", "preference", "episode")
_SCOPE = re.compile(r"^(user|agent|session|shared):[^\s:][^\s]*$|^shared$")
_COLUMNS = (
    "id",
    "scope",
    "kind",
    "text",
    "importance",
    "created_at",
    "updated_at",
    "accessed_at",
    "access_count",
    "expires_at",
    "status",
    "supersedes",
    "superseded_by",
    "source_call",
)
SCAN_LIMIT = 300  # a scope (and kind) this small is compared whole on every write
MAX_TTL_DAYS = 36_500  # a hundred years; a memory kept for good has ttl_days 0 (or None, when its kind has none)
_INSERT = f"INSERT INTO memories ({', '.join(_COLUMNS)}, vector) VALUES ({', '.join('?' * len(_COLUMNS))}, ?)"


@dataclass(frozen=True, slots=True)
class MemoryItem:
    """One memory; ``action`` says what a write did (added / updated / superseded), ``score`` how it ranked."""

    id: str
    scope: str
    kind: str
    text: str
    importance: float
    created_at: str
    updated_at: str
    access_count: int = 0
    expires_at: str | None = None
    supersedes: str | None = None
    source_call: str | None = None
    action: str = ""
    score: float = 0.0


def check_scope(scope: str) -> str:
    """``scope`` if it is well formed, else a one-line error saying what is."""
    if not isinstance(scope, str) or not _SCOPE.match(check_name("memory scope", scope)):
        raise WorkbenchError(
            f"memory scope {scope!r} is not one of user:NAME, agent:NAME, session:NAME, shared or shared:TOPIC"
        )
    return scope


def visible_scopes(scope: str) -> list[str]:
    """What a reader of ``scope`` sees: the scope itself plus ``shared``."""
    check_scope(scope)
    return [scope] if scope == "shared" else [scope, "shared"]


def similarity(a: str, b: str) -> float:
    """Jaccard overlap of two texts' content words (0..1)."""
    x, y = set(terms(a)), set(terms(b))
    return len(x & y) / len(x | y) if x and y else 0.0


class Memory:
    """``wb.memory``: add, search, update, forget, history, compact."""

    def __init__(self, store: Store, settings: MemorySettings, hybrid: bool = False):
        self.store, self.settings, self.hybrid = store, settings, hybrid
        self.screen: Callable[[str, str], str] = lambda text, where: text  # (text, what it is) -> what may be stored

    # ---- writing --------------------------------------------------------------------

    def add(
        self,
        text: str,
        scope: str = "shared",
        kind: Kind = "fact",
        *,
        importance: float = 0.5,
        ttl_days: float | None = None,
        source_call: str | None = None,
    ) -> MemoryItem:
        """Remember ``text`` in ``scope``; a near-duplicate updates, a same-subject item is superseded."""
        if not isinstance(text, str):
            raise WorkbenchError(
                f"a memory is text, not {type(text).__name__}: wb.memory.add('prefers CSV', 'user:ana')"
            )
        text = " ".join(text.split())
        if not text:
            raise WorkbenchError("nothing to remember: the memory text is empty")
        if ttl_days is not None and not (real_number(ttl_days) and abs(ttl_days) <= MAX_TTL_DAYS):
            raise WorkbenchError(
                f"ttl_days is how many days the memory is kept, at most {MAX_TTL_DAYS:,} (0: until forgotten; None: as "
                f"its kind is configured), not {shown(ttl_days)}"
            )
        check_scope(scope)
        text = self.screen(text, f"the memory for {scope}")
        _check(kind, importance)
        now = utcnow()
        vector = self._vector(text)
        ttl = ttl_days if ttl_days is not None else self.settings.ttl_days.get(kind)
        expires = (datetime.now(UTC) + timedelta(days=ttl)).isoformat(timespec="microseconds") if ttl else None
        with self.store.transaction() as conn:
            best, best_sim = None, 0.0
            for row in self._similar(conn, text, scope, kind):
                sim = similarity(text, row["text"])
                if sim > best_sim:
                    best, best_sim = row, sim
            if best is not None and best_sim >= self.settings.related:  # about to be rewritten: not an edited one
                self.store.check_memories([best["id"]], conn)
            if best is not None and best_sim >= self.settings.duplicate:
                conn.execute(
                    "UPDATE memories SET importance = MAX(importance, ?), updated_at = ?, accessed_at = ?, "
                    "access_count = access_count + 1, expires_at = COALESCE(?, expires_at) WHERE id = ?",
                    (importance, now, now, expires, best["id"]),
                )
                self._audit(conn, best["id"], "repeated", scope)
                row = conn.execute(f"SELECT {', '.join(_COLUMNS)} FROM memories WHERE id = ?", (best["id"],)).fetchone()
                return replace(_item(dict(zip(_COLUMNS, row, strict=True))), action="updated")
            supersedes = best["id"] if best is not None and best_sim >= self.settings.related else None
            item = {
                "id": new_id(),
                "scope": scope,
                "kind": kind,
                "text": text,
                "importance": importance,
                "created_at": now,
                "updated_at": now,
                "accessed_at": now,
                "access_count": 0,
                "expires_at": expires,
                "status": "active",
                "supersedes": supersedes,
                "superseded_by": None,
                "source_call": source_call,
            }
            conn.execute(_INSERT, [*(item[c] for c in _COLUMNS), vector])
            self._audit(conn, str(item["id"]), "added", scope)
            if supersedes:
                conn.execute(
                    "UPDATE memories SET status = 'superseded', superseded_by = ?, updated_at = ? WHERE id = ?",
                    (item["id"], now, supersedes),
                )
                self._audit(conn, supersedes, "superseded", scope)
        return replace(_item(item), action="superseded" if supersedes else "added")

    def update(
        self, memory_id: str, text: str | None = None, *, importance: float | None = None, kind: Kind | None = None
    ) -> MemoryItem:
        """Change a memory: new text makes a new version that supersedes it (history kept)."""
        old = self._get(memory_id)
        self.store.check_memories([memory_id])  # a write binds the row as it is: never an edit made in the file
        if old["status"] != "active":
            raise WorkbenchError(
                f"memory {memory_id} was {old['status']}; update its latest version ({old['superseded_by'] or 'none'})"
            )
        _check(kind or old["kind"], importance if importance is not None else old["importance"])
        now = utcnow()
        if text is None or " ".join(text.split()) == old["text"]:
            with self.store.transaction() as conn:
                conn.execute(
                    "UPDATE memories SET importance = ?, kind = ?, updated_at = ? WHERE id = ?",
                    (importance if importance is not None else old["importance"], kind or old["kind"], now, memory_id),
                )
                self._audit(conn, memory_id, "updated", old["scope"])
            return replace(_item(self._get(memory_id)), action="updated")
        text = self.screen(" ".join(text.split()), f"the memory for {old['scope']}")
        item = {
            **old,
            "id": new_id(),
            "text": text,
            "kind": kind or old["kind"],
            "importance": importance if importance is not None else old["importance"],
            "created_at": now,
            "updated_at": now,
            "accessed_at": now,
            "access_count": 0,
            "supersedes": memory_id,
            "superseded_by": None,
            "status": "active",
        }
        vector = self._vector(item["text"])
        with self.store.transaction() as conn:
            conn.execute(_INSERT, [*(item[c] for c in _COLUMNS), vector])
            self._audit(conn, item["id"], "added", old["scope"])
            conn.execute(
                "UPDATE memories SET status = 'superseded', superseded_by = ?, updated_at = ? WHERE id = ?",
                (item["id"], now, memory_id),
            )
            self._audit(conn, memory_id, "superseded", old["scope"])
        return replace(_item(item), action="superseded")

    def forget(self, memory_id: str | None = None, *, scope: str | None = None) -> int:
        """Delete a memory and every version in its history, or (``scope=``) every memory of a scope;
        returns how many rows went.
        """
        if scope is not None and memory_id is None:
            check_scope(scope)
            with self.store.transaction() as conn:
                ids = [row[0] for row in conn.execute("SELECT id FROM memories WHERE scope = ?", (scope,))]
                conn.execute("DELETE FROM memories WHERE scope = ?", (scope,))
                for gone in ids:
                    self._audit(conn, gone, "forgotten", scope)
                return len(ids)
        if memory_id is None or scope is not None:
            raise WorkbenchError("forget one memory (its id) or a whole scope (scope='user:NAME'), not both")
        return self._delete(memory_id, "forgotten")

    def _delete(self, memory_id: str, action: str) -> int:
        """Delete a memory and every version in its history, each deletion an audit entry (``action``)."""
        chain = self._chain(memory_id)
        with self.store.transaction() as conn:
            conn.executemany("DELETE FROM memories WHERE id = ?", [(row["id"],) for row in chain])
            for row in chain:
                self._audit(conn, row["id"], action, row["scope"])
        return len(chain)

    def compact(self) -> int:
        """Delete expired memories (and versions they superseded); returns how many rows went."""
        now = utcnow()
        sql = "SELECT id FROM memories WHERE status = 'active' AND expires_at IS NOT NULL AND expires_at < ?"
        expired = [r["id"] for r in self.store.query(sql, (now,))]
        self.store.check_memories(expired)  # an expiry edited in the file does not delete what it did to a row
        return sum(self._delete(i, "expired") for i in expired)

    def _audit(self, conn: Any, memory_id: str, action: str, scope: str) -> None:
        """The audit entry of one write, binding the memory's row as it is now (``None``: deleted), under its id:
        what :meth:`Store.check_memories` checks the row against before a model is given it.
        """
        self.store.audit(conn, "memory", memory_id, {"action": action, "scope": scope}, bind=[("memories", memory_id)])

    # ---- reading --------------------------------------------------------------------

    def search(
        self,
        query: str,
        scopes: str | list[str] = "shared",
        k: int | None = None,
        kinds: list[str] | None = None,
        touch: bool = True,
        matching: bool = False,
    ) -> list[MemoryItem]:
        """The best ``k`` active, unexpired memories in ``scopes`` for ``query`` (see the module doc).

        ``matching=True`` returns only items sharing a word with the query; ``touch=False``
        leaves their access time and count alone.
        """
        scopes = [scopes] if isinstance(scopes, str) else list(scopes)
        for scope in scopes:
            check_scope(scope)
        if not scopes:
            return []
        k = self.settings.k if k is None else k
        if not whole_number(k) or k < 1:
            raise WorkbenchError(f"k is how many memories to return, a whole number above 0, not {k!r}")
        if not isinstance(query, str):
            raise WorkbenchError(f"a memory search takes text, not {type(query).__name__}")
        with self.store.lock:
            rows = self._candidates(
                self.store.conn, query, scopes, kinds=kinds, limit=max(50, 5 * k), fill=not matching
            )
            if self.hybrid and not matching:
                rows = self._semantic(self.store.conn, query, scopes, rows, limit=max(20, 2 * k))
        if not rows:
            return []
        w, now = self.settings.weights, datetime.now(UTC)
        top = max((r["match"] for r in rows), default=0.0) or 1.0
        scored = []
        for row in rows:
            days = (now - _when(row["accessed_at"], now)).total_seconds() / 86400
            score = (
                w.bm25 * row["match"] / top
                + w.recency * 0.5 ** (days / self.settings.half_life_days)
                + w.importance * row["importance"]
            )
            scored.append(replace(_item(row), score=round(score, 4)))
        scored.sort(key=lambda m: m.score, reverse=True)
        found = scored[:k]
        self.store.check_memories([m.id for m in found])  # as the audit log recorded them, or refused
        if touch and found:
            stamp = utcnow()
            with self.store.transaction() as conn:
                conn.executemany(
                    "UPDATE memories SET accessed_at = ?, access_count = access_count + 1 WHERE id = ?",
                    [(stamp, m.id) for m in found],
                )
        return found

    def history(self, memory_id: str) -> pd.DataFrame:
        """Every version of a memory, oldest first (``status``: superseded … active)."""
        import pandas as pd

        return pd.DataFrame(self._chain(memory_id), columns=list(_COLUMNS))

    def df(self, scope: str | None = None, all_versions: bool = False) -> pd.DataFrame:
        """Memories (active ones, unless ``all_versions``), most recently used first."""
        import pandas as pd

        where, params = ["1 = 1"], []
        if scope:
            where.append("scope = ?")
            params.append(scope)
        if not all_versions:
            where.append("status = 'active'")
        rows = self.store.query(
            f"SELECT {', '.join(_COLUMNS)} FROM memories WHERE {' AND '.join(where)} ORDER BY accessed_at DESC", params
        )
        return pd.DataFrame(rows, columns=list(_COLUMNS))

    # ---- inside -----------------------------------------------------------------------

    def _candidates(
        self,
        conn: Any,
        query: str,
        scopes: list[str],
        kind: str | None = None,
        kinds: list[str] | None = None,
        limit: int = 20,
        fill: bool = True,
    ) -> list[dict[str, Any]]:
        marks = ", ".join("?" * len(scopes))
        where = f"m.status = 'active' AND m.scope IN ({marks}) AND (m.expires_at IS NULL OR m.expires_at >= ?)"
        params: list[Any] = [*scopes, utcnow()]
        if kind:
            where += " AND m.kind = ?"
            params.append(kind)
        if kinds:
            where += f" AND m.kind IN ({', '.join('?' * len(kinds))})"
            params.extend(kinds)
        columns = ", ".join(f"m.{c}" for c in _COLUMNS)
        match = fts_query(query)
        rows = []
        if match:
            sql = (
                f"SELECT {columns}, -memories_fts.rank AS match FROM memories_fts "
                f"JOIN memories m ON m.rowid = memories_fts.rowid WHERE memories_fts MATCH ? AND {where} "
                "ORDER BY memories_fts.rank LIMIT ?"
            )
            rows = conn.execute(sql, [match, *params, limit]).fetchall()
        # Items that share no word with the query still compete on importance and recency (a standing
        # preference applies to every question), up to a few per call.
        seen = [row[0] for row in rows]
        extra = max(0, min(limit - len(rows), 10)) if fill or not match else 0
        if extra:
            sql = (
                f"SELECT {columns}, 0.0 AS match FROM memories m WHERE {where} "
                f"AND m.id NOT IN ({', '.join('?' * len(seen))}) "
                "ORDER BY m.importance DESC, m.accessed_at DESC LIMIT ?"
            )
            rows += conn.execute(sql, [*params, *seen, extra]).fetchall()
        return [dict(zip((*_COLUMNS, "match"), row, strict=True)) for row in rows]

    def _similar(self, conn: Any, text: str, scope: str, kind: str) -> list[dict[str, Any]]:
        """Items a write could duplicate or supersede: all of a small scope, else its best BM25 matches."""
        where = "scope = ? AND kind = ? AND status = 'active' AND (expires_at IS NULL OR expires_at >= ?)"
        params = (scope, kind, utcnow())
        if conn.execute(f"SELECT COUNT(*) FROM memories WHERE {where}", params).fetchone()[0] <= SCAN_LIMIT:
            rows = conn.execute(f"SELECT id, text FROM memories WHERE {where}", params).fetchall()
            return [{"id": i, "text": t} for i, t in rows]  # a scan beats ranking the whole FTS index
        return self._candidates(conn, text, [scope], kind=kind)

    def _vector(self, text: str) -> bytes | None:
        if not self.hybrid:
            return None
        from workbench.context.embeddings import embedder

        return embedder().embed([text])[0].tobytes()

    def _semantic(
        self, conn: Any, query: str, scopes: list[str], rows: list[dict[str, Any]], limit: int
    ) -> list[dict[str, Any]]:
        """Add the items closest in meaning to ``query``; ``match`` becomes the fused (RRF) rank score."""
        from workbench.context.embeddings import embedder, fuse, nearest

        target = embedder().embed([query])[0]
        marks = ", ".join("?" * len(scopes))
        sql = (
            f"SELECT id, vector FROM memories WHERE status = 'active' AND scope IN ({marks}) "
            "AND vector IS NOT NULL AND (expires_at IS NULL OR expires_at >= ?)"
        )
        pairs = conn.execute(sql, [*scopes, utcnow()]).fetchall()
        if not pairs:
            return rows
        close = [ref for _, ref in nearest(pairs, target, limit)]
        lexical = [r["id"] for r in sorted(rows, key=lambda r: -r["match"]) if r["match"] > 0]
        fused = dict(fuse(lexical, close))
        have = {r["id"] for r in rows}
        missing = [i for i in close if i not in have]
        if missing:
            columns = ", ".join(_COLUMNS)
            extra = conn.execute(
                f"SELECT {columns}, 0.0 FROM memories WHERE id IN ({', '.join('?' * len(missing))})", missing
            ).fetchall()
            rows = rows + [dict(zip((*_COLUMNS, "match"), row, strict=True)) for row in extra]
        return [{**r, "match": fused.get(r["id"], 0.0)} for r in rows]

    def _find(self, memory_id: str | None) -> dict[str, Any] | None:
        rows = self.store.query(f"SELECT {', '.join(_COLUMNS)} FROM memories WHERE id = ?", (memory_id,))
        return rows[0] if rows else None

    def _get(self, memory_id: str) -> dict[str, Any]:
        row = self._find(memory_id)
        if row is None:
            raise WorkbenchError(f"no memory {memory_id!r}; wb.memory.df() lists them")
        return row

    def _chain(self, memory_id: str) -> list[dict[str, Any]]:
        """The versions linked to ``memory_id`` (through supersedes / superseded_by), oldest first."""
        row = self._get(memory_id)
        while row["supersedes"] and (older := self._find(row["supersedes"])) is not None:
            row = older
        chain = [row]
        while chain[-1]["superseded_by"] and (newer := self._find(chain[-1]["superseded_by"])) is not None:
            chain.append(newer)
        return chain


def _when(stamp: Any, now: datetime) -> datetime:
    """When a memory was last read (``now`` for a time that does not read as one: it is not bound, so a file
    edit may hold anything there, and a search must still answer).
    """
    try:
        when = datetime.fromisoformat(stamp)
    except (TypeError, ValueError):
        return now
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _check(kind: str, importance: float) -> None:
    if kind not in KINDS:
        raise WorkbenchError(f"memory kind {kind!r} is not one of {', '.join(KINDS)}")
    if not 0.0 <= float(importance) <= 1.0:
        raise WorkbenchError(f"importance must be between 0 and 1, not {importance!r}")


def _item(row: dict[str, Any]) -> MemoryItem:
    fields = MemoryItem.__dataclass_fields__
    return MemoryItem(**{k: v for k, v in row.items() if k in fields})
