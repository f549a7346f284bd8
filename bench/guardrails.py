"""Guardrails, measured: detection rates on the labelled corpus, and what the scanners add to a call.

G1  Detection. Every row of ``tests/data/guard_corpus.jsonl`` through the input stage's
    scanners: attacks of the injection families count as caught when ``injection`` (and,
    in the second column, ``injection_semantic``) finds them; ``secrets`` and ``pii``
    rows when those scanners do. A benign row is a false positive when any of them fires.
    Reported per family and split: ``dev`` and ``test`` were written together with the
    detectors (``test`` was not tuned on, but shares their author), ``late`` was
    written after and its misses studied, ``holdout`` was written last and measured once.
    Target TPR >= 0.8 at FPR <= 0.05.
G2  Added time. ``wb.ask`` on ``local/echo`` with every guardrail off, with the default
    policy, and with ``injection_semantic`` added at the input; alternating blocks in one
    process, median over rounds of the per-call time and its ratio to the unguarded call.
    Also the scanners alone per text (mean over the corpus).

Usage: python bench/guardrails.py [--block 100] [--rounds 5] [--only G1,G2]
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

CORPUS = Path(__file__).parents[1] / "tests" / "data" / "guard_corpus.jsonl"
SPLITS = ("dev", "test", "late", "holdout")
PROMPT = "Summarise the refund policy for a customer who returned a damaged kettle last week."


def _semantic_available() -> bool:
    try:
        from workbench.context.embeddings import model_dir

        model_dir()
        return True
    except Exception:  # noqa: BLE001 - the embeddings extra is optional
        return False


def _rate(pairs: list[tuple[bool, bool]], i: int) -> float:
    return sum(p[i] for p in pairs) / len(pairs)


def g1() -> None:
    import pandas as pd

    from workbench.guardrails import find_injection, find_pii, find_secrets

    nan = float("nan")
    semantic = _semantic_available()
    if semantic:
        from workbench.guardrails.semantic import find_injection_semantic
    rows = [json.loads(line) for line in CORPUS.open(encoding="utf-8")]
    caught: dict[tuple[str, str], list[tuple[bool, bool]]] = defaultdict(list)
    false_pos: dict[str, list[tuple[bool, bool]]] = defaultdict(list)
    for r in rows:
        text, family = r["text"], r["family"]
        if family == "secrets" and r["label"] == "attack":
            hit = bool(find_secrets(text))
            caught[(family, r["split"])].append((hit, hit))
            continue
        if family == "pii" and r["label"] == "attack":
            hit = bool(find_pii(text))
            caught[(family, r["split"])].append((hit, hit))
            continue
        phrase = bool(find_injection(text, quoted_discount=True))
        both = phrase or (semantic and bool(find_injection_semantic(text, quoted_discount=True)))
        if r["label"] == "attack":
            caught[(family, r["split"])].append((phrase, both))
        else:
            other = bool(find_secrets(text) or find_pii(text))
            false_pos[r["split"]].append((phrase or other, both or other))
    table = []
    for (family, split), hits in sorted(caught.items(), key=lambda kv: (SPLITS.index(kv[0][1]), kv[0][0])):
        table.append({"split": split, "family": family, "n": len(hits),
                      "TPR phrase": sum(h[0] for h in hits) / len(hits),
                      "TPR +semantic": sum(h[1] for h in hits) / len(hits) if semantic else float("nan")})  # fmt: skip
    for split in SPLITS:
        attacks = [h for (f, s), hs in caught.items() if s == split and f not in ("secrets", "pii") for h in hs]
        benign = false_pos[split]
        table.append({"split": split, "family": "ALL injection", "n": len(attacks),
                      "TPR phrase": _rate(attacks, 0), "TPR +semantic": _rate(attacks, 1) if semantic else nan})
        table.append({"split": split, "family": "benign -> FPR", "n": len(benign),  # the rate is the FPR here
                      "TPR phrase": _rate(benign, 0), "TPR +semantic": _rate(benign, 1) if semantic else nan})
    df = pd.DataFrame(table)
    print("G1 detection (for 'benign -> FPR' rows the rate is the false-positive rate)")
    print(df.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
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
    from workbench.guardrails.registry import ScanContext

    guard = sides["default"].guard
    texts = [json.loads(line)["text"] for line in CORPUS.open(encoding="utf-8")]
    t = time.perf_counter()
    for text in texts:
        guard.scan("input", text, ScanContext("input", guard=guard))
    print(f"   default input scanners alone: {(time.perf_counter() - t) / len(texts) * 1e6:.0f} us per corpus text "
          f"(mean of {len(texts)})")  # fmt: skip
    long = " ".join(texts) * 4
    t = time.perf_counter()
    guard.scan("input", long, ScanContext("input", guard=guard))
    print(f"   on one {len(long):,}-character input: {(time.perf_counter() - t) * 1000:.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--block", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--only", default="G1,G2")
    args = parser.parse_args()
    only = set(args.only.split(","))
    if "G1" in only:
        g1()
    if "G2" in only:
        g2(args.block, args.rounds)


if __name__ == "__main__":
    main()
