"""Documents: chunked into the store, retrieved with SQLite FTS5 (BM25), cited by chunk id.

``wb.docs.add("handbook", ["handbook.md", "prices.csv"])`` splits each file — markdown
by heading then paragraph, text by paragraph, CSV one row per chunk (``column: value``
pairs) — into chunks of at most ``chunk_words`` words, with ids like
``handbook.md#3``. Adding a source again replaces its chunks. ``search`` ranks with
FTS5's ``bm25()`` on disk, so a collection never has to fit in memory.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from workbench.errors import WorkbenchError
from workbench.options import whole_number
from workbench.serving.extractive import STOP_WORDS
from workbench.store import Store, utcnow

if TYPE_CHECKING:
    import pandas as pd

_WORD = re.compile(r"\w+", re.UNICODE)
_HEADING = re.compile(r"^#{1,6}\s", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class Chunk:
    """A retrieved piece of a document: its citable ``id``, text and BM25 score (higher is better)."""

    id: str
    collection: str
    source: str
    text: str
    score: float = 0.0


def fts_query(text: str) -> str:
    """A safe FTS5 query: any content word of ``text`` (quoted, so punctuation can't break the syntax)."""
    words = dict.fromkeys(
        w for w in (w.lower() for w in _WORD.findall(text)) if (len(w) > 1 or w.isdigit()) and w not in STOP_WORDS
    )
    return " OR ".join(f'"{w}"' for w in words)


class Docs:
    """``wb.docs``: collections of chunked documents."""

    def __init__(self, store: Store, chunk_words: int = 120, hybrid: bool = False):
        self.store, self.chunk_words, self.hybrid = store, chunk_words, hybrid
        self.screen: Callable[[str, str], str] = lambda text, where: text  # (chunk, its id) -> what may be stored

    def add(self, collection: str, items: str | Path | Iterable[str | Path], *, chunk_words: int | None = None) -> int:
        """Add files (paths) or texts to ``collection``; returns the number of chunks written."""
        if not collection or not isinstance(collection, str):
            raise WorkbenchError("name the collection: wb.docs.add('handbook', ['handbook.md'])")
        from workbench.guardrails.scanners import check_name  # (guardrails imports this package)

        check_name("collection", collection)
        if isinstance(items, (str, Path)):
            items = [items]
        if not isinstance(items, Iterable) or isinstance(items, bytes | bytearray | dict):
            raise WorkbenchError(f"add paths or texts (one, or a list of them), not {type(items).__name__}")
        items = list(items)
        wrong = [i for i in items if not isinstance(i, str | Path)]  # (None among them too)
        if wrong:
            raise WorkbenchError(f"add paths or texts (one, or a list of them): one item is {type(wrong[0]).__name__}")
        size = chunk_words or self.chunk_words
        rows = []
        for item in items:
            source, text, kind = _read(item)
            check_name("document", source)  # a file's path is its name in the collection
            pieces = list(_csv_rows(text) if kind == "csv" else _chunks(text, size, markdown=kind == "md"))
            rows.append((source, [self.screen(p, f"document chunk {source}#{n}") for n, p in enumerate(pieces, 1)]))
        vectors: list[list[bytes | None]] = [[None] * len(pieces) for _, pieces in rows]
        if self.hybrid:
            from workbench.context.embeddings import embedder

            flat = embedder().embed([piece for _, pieces in rows for piece in pieces])
            at = 0
            for i, (_, pieces) in enumerate(rows):
                vectors[i] = [flat[at + j].tobytes() for j in range(len(pieces))]
                at += len(pieces)
        now, written = utcnow(), 0
        with self.store.transaction() as conn:
            for (source, pieces), vecs in zip(rows, vectors, strict=True):
                conn.execute("DELETE FROM documents WHERE collection = ? AND source = ?", (collection, source))
                conn.executemany(
                    "INSERT OR REPLACE INTO documents (id, collection, source, n, text, tokens, added_at, vector) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [
                        (f"{source}#{n}", collection, source, n, piece, len(_WORD.findall(piece)), now, vec)
                        for n, (piece, vec) in enumerate(zip(pieces, vecs, strict=True), 1)
                    ],
                )
                written += len(pieces)
        return written

    def search(self, collection: str, query: str, k: int = 5) -> list[Chunk]:
        """The ``k`` chunks of ``collection`` that best match ``query`` (BM25), best first."""
        if not whole_number(k) or k < 1:
            raise WorkbenchError(f"k is how many chunks to return, a whole number above 0, not {k!r}")
        if not isinstance(query, str):
            raise WorkbenchError(f"a search takes text, not {type(query).__name__}")
        found = self._hybrid(collection, query, k) if self.hybrid else self._bm25(collection, query, k)
        if not found:
            self._check_collection(collection)
        return found

    def _check_collection(self, collection: str) -> None:
        """A one-line error for a collection that holds no documents (a name mistyped here or in a context spec
        would otherwise find nothing, silently).
        """
        if not self.store.query("SELECT 1 FROM documents WHERE collection = ? LIMIT 1", (collection,)):
            names = [r["collection"] for r in self.store.query("SELECT DISTINCT collection FROM documents")]
            raise WorkbenchError(
                f"no documents in collection {collection!r} (collections: {', '.join(sorted(names)) or 'none'}): "
                f"add some with wb.docs.add({collection!r}, [...]), or name one that has them"
            )

    def _bm25(self, collection: str, query: str, k: int) -> list[Chunk]:
        match = fts_query(query)
        if not match:
            return []
        # FTS5's rank column is bm25() by default, and ORDER BY rank is its fast path (~1.4x).
        sql = (
            "SELECT d.id, d.collection, d.source, d.text, -documents_fts.rank AS score "
            "FROM documents_fts JOIN documents d ON d.rowid = documents_fts.rowid "
            "WHERE documents_fts MATCH ? AND d.collection = ? ORDER BY documents_fts.rank LIMIT ?"
        )
        return [Chunk(**row) for row in self.store.query(sql, (match, collection, int(k)))]

    def _hybrid(self, collection: str, query: str, k: int, pool: int = 50) -> list[Chunk]:
        """BM25 and cosine rankings fused (reciprocal rank fusion); vectors are streamed, never all in RAM."""
        from workbench.context.embeddings import embedder, fuse, nearest

        lexical = self._bm25(collection, query, pool)
        target = embedder().embed([query])[0]
        best: list[tuple[float, str]] = []
        with self.store.lock:
            cursor = self.store.conn.execute(
                "SELECT id, vector FROM documents WHERE collection = ? AND vector IS NOT NULL", (collection,)
            )
            while batch := cursor.fetchmany(4096):
                best = sorted(best + nearest(batch, target, pool), reverse=True)[:pool]
        fused = fuse([c.id for c in lexical], [ref for _, ref in best])[:k]
        texts = {c.id: c for c in lexical}
        found = []
        for ref, score in fused:
            chunk = texts.get(ref) or self.get(ref)
            if chunk is not None:
                found.append(Chunk(chunk.id, chunk.collection, chunk.source, chunk.text, round(score, 6)))
        return found

    def get(self, chunk_id: str) -> Chunk | None:
        """One chunk by its id (e.g. a citation in an answer)."""
        rows = self.store.query("SELECT id, collection, source, text FROM documents WHERE id = ?", (chunk_id,))
        return Chunk(**rows[0]) if rows else None

    def remove(self, collection: str, source: str | None = None) -> int:
        """Delete a collection (or one source of it); returns the chunks removed."""
        with self.store.transaction() as conn:
            if source is None:
                return conn.execute("DELETE FROM documents WHERE collection = ?", (collection,)).rowcount
            return conn.execute(
                "DELETE FROM documents WHERE collection = ? AND source = ?", (collection, source)
            ).rowcount

    def df(self, collection: str | None = None) -> pd.DataFrame:
        """Chunks (``id``, ``collection``, ``source``, ``words``, ``text``), in document order."""
        import pandas as pd

        where, params = ("WHERE collection = ?", (collection,)) if collection else ("", ())
        rows = self.store.query(
            f"SELECT id, collection, source, tokens AS words, text FROM documents {where} "
            "ORDER BY collection, source, n",
            params,
        )
        return pd.DataFrame(rows, columns=["id", "collection", "source", "words", "text"])

    def collections(self) -> pd.DataFrame:
        """Each collection with its number of sources and chunks."""
        import pandas as pd

        rows = self.store.query(
            "SELECT collection, COUNT(DISTINCT source) AS sources, COUNT(*) AS chunks "
            "FROM documents GROUP BY collection ORDER BY collection"
        )
        return pd.DataFrame(rows, columns=["collection", "sources", "chunks"])


_LOOKS_LIKE_PATH = re.compile(r"^[^\s]+\.(md|markdown|txt|csv|rst)$", re.IGNORECASE)


def _read(item: str | Path) -> tuple[str, str, str]:
    """(source name, text, kind) for a path or a literal text."""
    if (isinstance(item, Path) or "\n" not in item) and _is_dir(item):
        raise WorkbenchError(f"{item} is a folder: add its files, e.g. sorted(Path({str(item)!r}).glob('*.md'))")
    if isinstance(item, str) and ("\n" in item or (not _LOOKS_LIKE_PATH.match(item) and not _is_file(item))):
        return f"text-{hashlib.sha256(item.encode()).hexdigest()[:8]}", item, "md"
    path = Path(item)
    if not path.is_file():
        raise WorkbenchError(f"no such file: {item}; pass an existing path, or the text itself")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise WorkbenchError(f"{path}: not UTF-8 text; convert it, or pass its text") from None
    suffix = path.suffix.lower()
    return path.name, text, "csv" if suffix == ".csv" else "md" if suffix in (".md", ".markdown") else "txt"


def _is_file(text: str) -> bool:
    try:
        return Path(text).is_file()
    except OSError:  # e.g. a long sentence is "a file name too long"
        return False


def _is_dir(item: str | Path) -> bool:
    try:
        return Path(item).is_dir()
    except OSError:
        return False


def _chunks(text: str, size: int, markdown: bool) -> Iterator[str]:
    """Sections (markdown headings), then paragraphs, packed into chunks of at most ``size`` words."""
    sections = _split_headings(text) if markdown else [text]
    for section in sections:
        current: list[str] = []
        words = 0
        for para in (p.strip() for p in re.split(r"\n\s*\n", section)):
            if not para:
                continue
            n = len(para.split())
            if current and words + n > size:
                yield "\n\n".join(current)
                current, words = [], 0
            if n > size:  # one long paragraph: split it by words
                tokens = para.split()
                for i in range(0, len(tokens), size):
                    yield " ".join(tokens[i : i + size])
                continue
            current.append(para)
            words += n
        if current:
            yield "\n\n".join(current)


def _split_headings(text: str) -> list[str]:
    starts = [m.start() for m in _HEADING.finditer(text)]
    if not starts or starts[0] != 0:
        starts = [0, *starts]
    return [text[a:b] for a, b in zip(starts, [*starts[1:], len(text)], strict=True) if text[a:b].strip()]


def _csv_rows(text: str) -> Iterator[str]:
    for row in csv.DictReader(io.StringIO(text)):
        yield "; ".join(f"{k}: {v}" for k, v in row.items() if k and v not in (None, ""))
