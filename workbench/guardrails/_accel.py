"""Scan a text once for a whole set of patterns (Intel Hyperscan), to know which are worth running.

Optional. With the ``hyperscan`` package (Linux x86-64 wheels on PyPI), a pattern set is
compiled into one database in *prefilter* mode — a pattern there may match more than the
original, never less — and a single pass over a text tells which patterns could match it,
at hundreds of MB/s. The scanners then run only those, with Python's ``re``, so results are
exactly what running every pattern would give.

Compiling takes seconds, so it happens once, in a child process, and the database is
cached on disk (``$XDG_CACHE_HOME/workbench``, by default ``~/.cache/workbench``), keyed by
the patterns and the Hyperscan version. Until it is there — and wherever Hyperscan is not
installed, or with ``WORKBENCH_NO_ACCEL=1`` in the environment — :meth:`PatternSet.candidates`
returns ``None`` and callers run every pattern (through their own literal gates).

    python -c "from workbench.guardrails._accel import main; main()"    # build them all now
"""

from __future__ import annotations

import codecs
import hashlib
import importlib
import os
import re
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

# Where each pattern set comes from ("module:function" returning the patterns, in order), and whether it is
# compiled with Unicode classes (HS_FLAG_UCP: \w, \b, \s as Python reads them). That makes a large set's build
# take minutes, so the English signals (all ASCII) are compiled for ASCII and shown an ASCII view of the text
# (see ascii_view), where both engines read \w, \b and \s alike. The four ASCII separators Python counts as \s
# (and Hyperscan does not) are given to it as spaces.
SOURCES = {
    "injection": ("workbench.guardrails.injection:accel_patterns", False),
    "multilingual": ("workbench.guardrails.injection:accel_multilingual", True),
}
_SEPARATORS = bytes.maketrans(b"\x1c\x1d\x1e\x1f", b"    ")
_FORMAT = "prefilter-2"  # how build() compiles: part of a cached database's name
_LOOSE = re.compile(r"\{(\d+),(\d+)\}")


class _AsciiMap(dict):
    """Each character as an ASCII stand-in of its class (filled as characters are met)."""

    def __missing__(self, code: int) -> int:
        ch = chr(code)
        if code < 128:
            stand_in = code
        else:
            stand_in = ord("0" if ch.isdecimal() else "a" if ch.isalnum() else " " if ch.isspace() else "\x01")
        self[code] = stand_in
        return stand_in


_ASCII_MAP = _AsciiMap()


def _stand_ins(error: UnicodeEncodeError) -> tuple[str, int]:
    return error.object[error.start : error.end].translate(_ASCII_MAP), error.end


codecs.register_error("workbench.ascii_view", _stand_ins)  # type: ignore[arg-type]


def ascii_view(text: str) -> bytes:
    r"""``text`` with each non-ASCII character replaced by one ASCII character of the same regex class.

    A digit becomes ``0``, another letter or number ``a``, a space `` ``, anything else ``\x01``
    (matched by ``.`` and every negated class the patterns use, and by no literal). So an ASCII
    pattern that matches ``text`` under Python's Unicode ``\w``, ``\d``, ``\s`` and ``\b`` matches
    the view under ASCII rules, at the same length: a prefilter over the view misses nothing.
    """
    return text.encode("ascii", "workbench.ascii_view")  # ASCII runs in C; each non-ASCII run through the map


def cache_dir() -> Path:
    """Where built databases are kept (never inside a project)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "workbench"


def _hyperscan() -> Any:
    try:
        import hyperscan
    except Exception:  # noqa: BLE001 - not installed, or no wheel for this platform: the plain path works
        return None
    return hyperscan


def prefilter_form(pattern: str) -> str:
    """A pattern as the prefilter compiles it: long bounded repeats opened up (a superset, and far quicker to build)."""
    return _LOOSE.sub(lambda m: m.group(0) if int(m.group(2)) <= 8 else ("*" if m.group(1) == "0" else "+"), pattern)


def _patterns(name: str) -> list[str]:
    module, function = SOURCES[name][0].split(":")
    return list(getattr(importlib.import_module(module), function)())


def _scratch(local: threading.local, db: Any) -> Any:
    """This thread's Hyperscan scratch space for ``db`` (a scan needs one of its own per thread)."""
    scratch = getattr(local, "scratch", None)
    if scratch is None:
        scratch = local.scratch = _hyperscan().Scratch(db)
    return scratch


class PatternSet:
    """One named set of patterns and, once built, its Hyperscan database."""

    def __init__(self, name: str, patterns: list[str]):
        self.name, self.patterns = name, patterns
        self.unicode = SOURCES.get(name, ("", True))[1]  # else: ASCII patterns, shown the text's ascii_view
        self._db: Any = None
        self._state = "new"  # new | building | ready | off
        self._lock = threading.Lock()
        self._local = threading.local()
        self._path: Path | None = None

    @property
    def path(self) -> Path:
        """The cached database's file (named by the patterns and the Hyperscan version)."""
        if self._path is None:
            version = getattr(_hyperscan(), "__version__", "none")
            form = f"{_FORMAT}-{'ucp' if self.unicode else 'ascii'}"
            digest = hashlib.sha256("\x1f".join([version, form, *self.patterns]).encode()).hexdigest()[:16]
            self._path = cache_dir() / f"hs-{self.name}-{digest}.db"
        return self._path

    def candidates(self, text: str) -> set[int] | None:
        """Indices of the patterns that could match ``text``; ``None`` when there is no database (run them all)."""
        db = self._database()
        if db is None:
            return None
        scratch = _scratch(self._local, db)
        found: set[int] = set()
        data = text.encode("utf-8", "replace") if self.unicode else ascii_view(text)
        data = data.translate(_SEPARATORS)  # (no multi-byte UTF-8 character holds one of them)
        db.scan(data, match_event_handler=lambda pid, *_: found.add(pid), scratch=scratch)  # (None: scan on)
        return found

    def load(self) -> bool:
        """Build the database now if it is not cached (in this process, blocking), and load it; False without
        Hyperscan. For benchmarks and tests, which must not measure the fallback while a build runs.
        """
        if _hyperscan() is None:
            return False
        if not self.path.exists():
            self.build()
        with self._lock:
            if self._state != "ready":
                self._state = "new"  # a build started in the background: the file is here now, read it
        return self._database() is not None

    def _database(self) -> Any:
        if os.environ.get("WORKBENCH_NO_ACCEL"):
            return None
        if self._state == "ready":
            return self._db
        if self._state == "off":
            return None
        with self._lock:
            if self._state in ("ready", "off"):
                return self._db
            hs = _hyperscan()
            if hs is None:
                self._state = "off"
                return None
            path = self.path
            if path.exists():
                try:
                    self._db = hs.loadb(path.read_bytes(), hs.HS_MODE_BLOCK)
                    self._state = "ready"
                    return self._db
                except Exception:  # noqa: BLE001 - a stale or foreign file: build it again
                    path.unlink(missing_ok=True)
            if self._state == "new":
                self._state = "building"
                path.parent.mkdir(parents=True, exist_ok=True)
                subprocess.Popen(
                    [sys.executable, "-c", f"from {__name__} import main; main({self.name!r})"],  # noqa: S603
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    start_new_session=True,
                    cwd=path.parent,
                )  # not the project's folder
            return None

    def build(self) -> Path:
        """Compile the database and write it to the cache (atomically); returns its path."""
        hs = _hyperscan()
        if hs is None:
            raise RuntimeError("the hyperscan package is not installed")
        db = hs.Database(mode=hs.HS_MODE_BLOCK)
        flags = hs.HS_FLAG_PREFILTER | hs.HS_FLAG_SINGLEMATCH | hs.HS_FLAG_ALLOWEMPTY
        if self.unicode:
            flags |= hs.HS_FLAG_UTF8 | hs.HS_FLAG_UCP
        db.compile(
            expressions=[prefilter_form(p).encode() for p in self.patterns],
            ids=list(range(len(self.patterns))),
            elements=len(self.patterns),
            flags=[flags] * len(self.patterns),
        )
        path = self.path
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(hs.dumpb(db))
        tmp.replace(path)
        return path


class Literals:
    """Every place a few ASCII literals occur in a text (overlapping ones too), in one Hyperscan pass.

    Compiled on first use, in a few milliseconds (literals need no cached database). The text is shown
    as its :func:`ascii_view`, where a stand-in can spell a literal the text does not hold, so each
    place found is checked against the text itself.
    """

    def __init__(self, words: tuple[str, ...] | list[str], *, present_only: bool = False):
        self.words = list(words)
        self.present_only = present_only  # each word reported once (for present()), not at every place
        self._db: Any = None
        self._lock = threading.Lock()
        self._local = threading.local()

    def starts(self, text: str) -> list[int] | None:
        """Where any of the words starts in ``text``, sorted; ``None`` without Hyperscan (or with
        ``WORKBENCH_NO_ACCEL``): the caller finds them its own way.
        """
        db = self._database()
        if db is None:
            return None
        scratch = _scratch(self._local, db)
        words, ends = self.words, []
        db.scan(
            ascii_view(text), match_event_handler=lambda pid, _start, end, *_: ends.append((pid, end)), scratch=scratch
        )
        return sorted(
            {end - len(words[pid]) for pid, end in ends if text.startswith(words[pid], end - len(words[pid]))}
        )

    def present(self, text: str) -> set[int] | None:
        """The indices of the words ``text`` may hold (a superset: a stand-in of the view can spell one), each
        reported once (``present_only``); ``None`` without Hyperscan: the caller looks for them its own way.
        """
        db = self._database()
        if db is None:
            return None
        found: set[int] = set()
        db.scan(ascii_view(text), match_event_handler=lambda pid, *_: found.add(pid), scratch=_scratch(self._local, db))
        return found

    def _database(self) -> Any:
        if os.environ.get("WORKBENCH_NO_ACCEL"):
            return None
        if self._db is None:
            with self._lock:
                hs = _hyperscan()
                if hs is None:
                    return None
                if self._db is None:
                    db = hs.Database(mode=hs.HS_MODE_BLOCK)
                    db.compile(
                        expressions=[re.escape(w).encode() for w in self.words],
                        ids=list(range(len(self.words))),
                        elements=len(self.words),
                        flags=[hs.HS_FLAG_SINGLEMATCH if self.present_only else 0] * len(self.words),
                    )
                    self._db = db
        return self._db


def main(*names: str) -> None:
    """Build the named sets' databases (all of them without names)."""
    for set_name in names or list(SOURCES):
        PatternSet(set_name, _patterns(set_name)).build()


if __name__ == "__main__":
    main(*sys.argv[1:])
