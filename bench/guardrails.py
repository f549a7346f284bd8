"""Guardrails, measured: detection rates on the labelled corpus, what the scanners add to a call, their speed.

G1  Detection. Every row of ``tests/data/guard_corpus.jsonl`` through the input stage's
    scanners: attacks of the injection families count as caught when ``injection`` finds
    them (three columns: its phrase signals alone, the default — phrases and the learned
    model — and the default plus ``injection_semantic``); ``secrets`` and ``pii`` rows when
    those scanners do. A benign row is a false positive when any of them fires. Reported
    per split (``dev``, ``test`` and ``train`` were tuned and trained on), and per family
    on ``heldout``: written before the last detector change, measured, never tuned on.
    Target on ``heldout`` with the default config: TPR >= 0.9 at FPR <= 0.03.
G2  Added time. ``wb.ask`` on ``local/echo`` with every guardrail off, with the default
    policy, and with ``injection_semantic`` added at the input; alternating blocks in one
    process, median over rounds of the per-call time and its ratio to the unguarded call.
G3  Throughput. The default input scanners (secrets, pii, injection: phrases and model)
    on ordinary prose (the Python docs, ``pydoc_data.topics``) and on code (the standard
    library's Python source) of 1 KB, 100 KB, 1 MB and 10 MB, in MB/s, with the Hyperscan prefilter
    and without it (``WORKBENCH_NO_ACCEL``: the literal gates alone), side by side (10 MB: one
    scan, with the prefilter only); then the time ``wb.ask`` takes to refuse a 10 MB prompt on
    its length (target < 50 ms), and hostile shapes of 100 KB. Medians of rounds.
    Target: each scanner >= 10 MB/s.
    With ``--against REV``: the injection scanner of the working tree and of the git revision REV
    (its injection.py and classifier.py, loaded beside), alternating in one process, on 1 KB,
    100 KB and 1 MB of prose and code: MB/s of each and their ratio.

Usage: python bench/guardrails.py [--block 100] [--rounds 5] [--only G1,G2,G3] [--against REV]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("LITELLM_OFFLINE_MODE", "true")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

ROOT = Path(__file__).parents[1]
CORPUS = ROOT / "tests" / "data" / "guard_corpus.jsonl"
SPLITS = ("dev", "test", "train", "heldout")
PROMPT = "Summarise the refund policy for a customer who returned a damaged kettle last week."


def _semantic_available() -> bool:
    try:
        from workbench.context.embeddings import model_dir

        model_dir()
        return True
    except Exception:  # noqa: BLE001 - the embeddings extra is optional
        return False


def g1() -> None:
    import pandas as pd

    from workbench.guardrails import find_injection, find_pii, find_secrets

    semantic = _semantic_available()
    if semantic:
        from workbench.guardrails.semantic import find_injection_semantic
    rows = [json.loads(line) for line in CORPUS.open(encoding="utf-8")]
    results = []
    for r in rows:
        text, family = r["text"], r["family"]
        if family in ("secrets", "pii") and r["label"] == "attack":
            hit = bool(find_secrets(text) if family == "secrets" else find_pii(text))
            results.append({**r, "phrases": hit, "default": hit, "+semantic": hit})
            continue
        other = r["label"] == "benign" and bool(find_secrets(text) or find_pii(text))
        phrases = other or bool(find_injection(text, quoted_discount=True, learned=False))
        default = other or bool(find_injection(text, quoted_discount=True))
        both = default or (semantic and bool(find_injection_semantic(text, quoted_discount=True)))
        results.append({**r, "phrases": phrases, "default": default, "+semantic": both if semantic else None})
    df = pd.DataFrame(results)
    cols = ["phrases", "default", "+semantic"] if semantic else ["phrases", "default"]
    injection = df[~df["family"].isin(["secrets", "pii"]) | (df["label"] == "benign")]
    print("G1 detection: TPR over attacks of the injection families, FPR over benign rows, per split")
    table = []
    for split in SPLITS:
        part = injection[injection["split"] == split]
        attacks, benign = part[part["label"] == "attack"], part[part["label"] == "benign"]
        table.append(
            {
                "split": split,
                "attacks": len(attacks),
                "benign": len(benign),
                **{f"TPR {c}": attacks[c].mean() for c in cols},
                **{f"FPR {c}": benign[c].mean() for c in cols},
            }
        )
    print(pd.DataFrame(table).to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    held = injection[injection["split"] == "heldout"]
    print("\n   held-out split, per attack family (TPR) and per benign family (FPR):")
    per = held.groupby(["label", "family"])[cols].agg(["mean"]).droplevel(1, axis=1)
    per["n"] = held.groupby(["label", "family"]).size()
    print(per.to_string(float_format=lambda v: f"{v:.2f}"))
    for label, name in (("secrets", "secrets"), ("pii", "pii")):
        found = df[(df["family"] == label) & (df["label"] == "attack")]
        print(f"   {name} rows found: {int(found['default'].sum())}/{len(found)}")
    if not semantic:
        print("   (install the embeddings extra for the +semantic column)")


def _bench(guardrails: dict) -> object:
    from workbench.runtime import Workbench

    folder = tempfile.mkdtemp(prefix="wb-guard-bench-")
    return Workbench.from_config(store=os.path.join(folder, "b.db"), root=folder, guardrails=guardrails)


def g2(block: int, rounds: int) -> None:
    from workbench.config import GUARD_DEFAULTS

    off = {stage: dict.fromkeys(policy, "off") for stage, policy in GUARD_DEFAULTS.items()}
    sides = {"off": _bench({**off, "canary": False}), "default": _bench({})}
    if _semantic_available():
        sides["+semantic"] = _bench({"input": {"injection_semantic": "flag"}})
    for wb in sides.values():  # warm up: imports, litellm, the embedding model
        for _ in range(20):
            wb.ask(PROMPT, model="local/echo", system="Be brief.")
    per_call: dict[str, list[float]] = defaultdict(list)
    for _ in range(rounds):
        for name, wb in sides.items():
            t = time.perf_counter()
            for _ in range(block):
                wb.ask(PROMPT, model="local/echo", system="Be brief.")
            per_call[name].append((time.perf_counter() - t) / block * 1000)
    base = statistics.median(per_call["off"])
    print(f"G2 added time per local/echo call ({rounds} rounds x {block} calls, medians)")
    for name, values in per_call.items():
        m = statistics.median(values)
        print(f"   {name:10s} {m:7.2f} ms/call   +{m - base:6.2f} ms   ratio {m / base:.3f}")


def _forget() -> None:
    """Drop the injection scanner's per-text caches, so a repeated text costs what a new one would (the caches
    are found once: looking for them among the module's ~150 names took 20-30 us, a tenth of a 1 KB scan).
    """
    global _CACHES
    if _CACHES is None:
        from workbench.guardrails import injection

        _CACHES = _caches(injection)
    for cache in _CACHES:
        cache.cache_clear()


_CACHES: list | None = None


def _prose(n: int) -> str:
    from pydoc_data.topics import topics

    text = "\n\n".join(topics[k] for k in sorted(topics))
    return (text * (n // len(text) + 1))[:n]


def _code(n: int) -> str:
    """Python source (the standard library's top-level modules, about 4.7 MB), repeated to ``n`` characters.
    Not the workbench's own: its guardrail modules are lists of attack phrases and sample keys.
    """
    folder = Path(os.__file__).parent
    text = "\n\n".join(p.read_text(errors="replace") for p in sorted(folder.glob("*.py")))
    return (text * (n // len(text) + 1))[:n]


def _refusal(rounds: int) -> None:
    """How long ``wb.ask`` takes to refuse a 10 MB prompt on its length (``max_length = "block"``, the default)."""
    import tempfile

    from workbench.errors import GuardrailViolation
    from workbench.runtime import Workbench

    wb = Workbench.from_config(store=os.path.join(tempfile.mkdtemp(prefix="wb-g3-"), "g3.db"))
    prompt = _prose(10_000_000)
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        try:
            wb.ask(prompt, model="local/echo")
        except GuardrailViolation:
            times.append(time.perf_counter() - t)
    assert len(times) == rounds, "a 10 MB prompt was not refused on its length"
    print(
        f"   a 10 MB prompt refused on its length by wb.ask in {statistics.median(times) * 1000:.1f} ms "
        f"(median of {rounds}; target < 50 ms)"
    )


HOSTILE = {
    "one long word": "a" * 100_000,
    "leet everywhere": "a1" * 50_000,
    "spaced letters": "a " * 50_000,
    "digits and spaces": "1 " * 50_000,
    "base64 blob": "QUJD" * 25_000,
    "key=value lines": "token=abc\n" * 10_000,
    "emails": "a@b.co " * 14_000,
    "CJK": "的" * 100_000,
    "URLs with queries": "![x](https://e.x/p?q=a) " * 4_000,
}


def _mbs(fn: object, text: str, rounds: int) -> float:
    """MB/s of ``fn(text)``: the median of ``rounds`` timings (each a few calls for short texts)."""
    reps = max(1, 200_000 // len(text))
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        for _ in range(reps):
            fn(text)  # type: ignore[operator]
        times.append((time.perf_counter() - t) / reps)
    return len(text.encode()) / statistics.median(times) / 1e6


def g3(rounds: int) -> None:
    from workbench.guardrails import find_pii, find_secrets
    from workbench.guardrails.injection import _ACCEL, find_injection

    accelerated = all(s.load() for s in _ACCEL.values())
    scanners = {
        "secrets": find_secrets,
        "pii": find_pii,
        "injection": lambda t: (_forget(), find_injection(t, quoted_discount=True)),
        "all three": lambda t: (_forget(), find_secrets(t), find_pii(t), find_injection(t, quoted_discount=True)),
    }
    print(f"G3 throughput, MB/s (median of {rounds}); prefilter: {'hyperscan' if accelerated else 'not installed'}")
    print(f"   {'text':>22} {'scanner':>10} {'gates only':>11} {'prefilter':>10}")
    for kind, make in (("prose", _prose), ("code", _code)):
        for n in (1_000, 100_000, 1_000_000, 10_000_000):
            text = make(n)
            for name, fn in scanners.items():
                times = rounds if n < 10_000_000 else 1  # one 10 MB scan of each: tens of seconds
                fast = _mbs(fn, text, times) if accelerated else float("nan")
                os.environ["WORKBENCH_NO_ACCEL"] = "1"
                plain = _mbs(fn, text, times) if n < 10_000_000 or not accelerated else float("nan")
                del os.environ["WORKBENCH_NO_ACCEL"]
                print(f"   {f'{kind} {n:,} chars':>22} {name:>10} {plain:11.1f} {fast:10.1f}", flush=True)
    _refusal(rounds)
    print("   hostile 100 KB inputs, all three scanners, ms (median):")
    for name, text in HOSTILE.items():
        mbs = _mbs(scanners["all three"], text, rounds)
        print(f"   {name:>22} {len(text.encode()) / mbs / 1e3:8.1f} ms  ({mbs:.1f} MB/s)")


def _at_revision(rev: str) -> object:
    """The injection scanner as it was at git revision ``rev``, as a module beside the working tree's."""
    import importlib
    import subprocess
    import sys

    folder = Path(tempfile.mkdtemp(prefix="wb-g3-rev-"))
    for name in ("injection.py", "classifier.py", "injection_model.json"):
        text = subprocess.run(
            ["git", "-C", str(ROOT), "show", f"{rev}:workbench/guardrails/{name}"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        text = text.replace("from workbench.guardrails.classifier import", "from wb_rev_classifier import")
        (folder / (f"wb_rev_{name}" if name.endswith(".py") else name)).write_text(text)
    sys.path.insert(0, str(folder))
    return importlib.import_module("wb_rev_injection")


def _caches(module: object) -> list:
    """A scanner module's per-text caches (the ``lru_cache`` s larger than one: the others hold no text)."""
    found = []
    for value in vars(module).values():
        info = getattr(value, "cache_info", None)
        if info is not None and (info().maxsize or 2) > 1:
            found.append(value)
    return found


def g3_against(rev: str, rounds: int) -> None:
    import timeit

    from workbench.guardrails import injection

    before = _at_revision(rev)
    caches = {id(scanner): _caches(scanner) for scanner in (before, injection)}
    for scanner in (before, injection):
        for prefilter in scanner._ACCEL.values():  # type: ignore[attr-defined]
            prefilter.load()
    print(f"G3 injection, the working tree against {rev}, alternating in one process (MB/s, median of {rounds})")
    for kind, make in (("prose", _prose), ("code", _code)):
        for n in (1_000, 100_000, 1_000_000):
            text, reps = make(n), max(1, 200_000 // n)
            times: dict[str, list[float]] = {"before": [], "after": []}
            for _ in range(rounds):
                for name, scanner in (("before", before), ("after", injection)):

                    def scan(scanner: object = scanner, text: str = text) -> None:
                        for cache in caches[id(scanner)]:
                            cache.cache_clear()
                        scanner.find_injection(text, quoted_discount=True)  # type: ignore[attr-defined]

                    times[name].append(timeit.timeit(scan, number=reps) / reps)
            was, now = (statistics.median(times[k]) for k in ("before", "after"))
            size = len(text.encode()) / 1e6
            label = f"{kind} {n:,} chars"
            print(f"   {label:>22}   {rev} {size / was:6.1f}   now {size / now:6.1f}   {was / now:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--block", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--only", default="G1,G2,G3")
    parser.add_argument("--against", metavar="REV", help="compare the injection scanner with a git revision's")
    args = parser.parse_args()
    if args.against:
        g3_against(args.against, args.rounds)
        return
    only = set(args.only.split(","))
    if "G1" in only:
        g1()
    if "G2" in only:
        g2(args.block, args.rounds)
    if "G3" in only:
        g3(args.rounds)


if __name__ == "__main__":
    main()
