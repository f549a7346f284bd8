"""P5: retrieval over 100,000 chunks — workbench (SQLite FTS5) vs bm25s and rank-bm25, in one run.

A deterministic synthetic corpus (Zipf-distributed pseudo-words, 20-80 words a document)
and queries of 2-4 mid-frequency words. Each engine runs in its own process so its peak
resident memory (``ru_maxrss``) is its own:

- ``workbench-insert``: ``wb.docs.add`` of the corpus into a new store (chunks/s);
- ``workbench-search``: a fresh process opening that store and searching (top-10) — the
  store is never loaded into RAM, so its peak RSS is the search footprint;
- ``bm25s``: index in memory, then ``retrieve(k=10)`` one query at a time;
- ``rank-bm25``: ``BM25Okapi.get_top_n`` (scores every document per query: fewer queries).

Prints queries per second of each, workbench / bm25s (target >= 1.0), overlap@10 of
workbench and rank-bm25 with bm25s, and peak RSS. Then the composer: planning a spec with
4 sources and an 8k-token budget, relative to one ``local/echo`` call (medians).

Also measures long-term memory writes (``wb.memory.add``, which checks for duplicates and
supersession on every write) on ``--memory-items``.

Usage: python bench/retrieval.py [--docs 100000] [--queries 300] [--memory-items 10000]
(needs the bench extra: pip install -e '.[bench]')
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("LITELLM_OFFLINE_MODE", "true")

SYLLABLES = ["ka", "lo", "mi", "tu", "ne", "ro", "pa", "vi", "zu", "da", "ri", "so", "ba", "ku", "te"]


def vocabulary(n: int, rng: random.Random) -> list[str]:
    words: set[str] = set()
    while len(words) < n:
        words.add("".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 4))))
    return sorted(words)


def corpus(docs: int, queries: int, seed: int = 7) -> tuple[list[str], list[str]]:
    rng = random.Random(seed)
    vocab = vocabulary(20000, rng)
    weights = [1 / (rank + 1) for rank in range(len(vocab))]  # Zipf
    texts = [" ".join(rng.choices(vocab, weights, k=rng.randint(20, 80))) for _ in range(docs)]
    middle = vocab[200:5000]  # mid-frequency words make discriminating queries
    asked = [" ".join(rng.sample(middle, rng.randint(2, 4))) for _ in range(queries)]
    return texts, asked


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_engine(engine: str, data: str, store: str, limit: int) -> dict:
    with open(data) as f:
        payload = json.load(f)
    texts, queries = payload["texts"], payload["queries"][:limit]
    result: dict = {"engine": engine}
    if engine == "workbench-insert":
        from workbench.runtime import Workbench

        wb = Workbench.from_config(store=store)
        t0 = time.perf_counter()
        wb.docs.add("bench", texts, chunk_words=1000)  # one chunk per document
        result["insert_per_s"] = len(texts) / (time.perf_counter() - t0)
        return {**result, "peak_rss_mb": peak_rss_mb()}
    if engine == "workbench-search":
        from workbench.runtime import Workbench

        wb = Workbench.from_config(store=store)
        ids = {}  # chunk id -> corpus index (sources are text-<hash>, one chunk each)
        wb.docs.search("bench", queries[0], k=10)  # warm the page cache like the others' first query
        t0 = time.perf_counter()
        tops = [[c.id for c in wb.docs.search("bench", q, k=10)] for q in queries]
        elapsed = time.perf_counter() - t0
        result["tops"] = [[ids.setdefault(i, i) for i in top] for top in tops]
    elif engine == "bm25s":
        import bm25s

        retriever = bm25s.BM25()
        retriever.index(bm25s.tokenize(texts, stopwords="en", show_progress=False), show_progress=False)
        tokenized = [bm25s.tokenize(q, stopwords="en", show_progress=False) for q in queries]
        t0 = time.perf_counter()
        tops = [retriever.retrieve(q, k=10, show_progress=False)[0][0].tolist() for q in tokenized]
        elapsed = time.perf_counter() - t0
        result["tops"] = tops
    else:
        from rank_bm25 import BM25Okapi

        index = BM25Okapi([t.split() for t in texts])
        numbered = list(range(len(texts)))
        t0 = time.perf_counter()
        tops = [index.get_top_n(q.split(), numbered, n=10) for q in queries]
        elapsed = time.perf_counter() - t0
        result["tops"] = tops
    return {**result, "qps": len(queries) / elapsed, "queries": len(queries), "peak_rss_mb": peak_rss_mb()}


def composer(rounds: int = 30) -> tuple[float, float]:
    """Median ms to plan a 4-source, 8k-token spec, and of one local/echo call."""
    from workbench.runtime import Workbench

    folder = tempfile.mkdtemp(prefix="wb-bench-")
    os.makedirs(os.path.join(folder, "contexts"))
    with open(os.path.join(folder, "contexts", "big.yaml"), "w") as f:
        f.write(
            "system: You are {{ company }}'s analyst.\nvariables: {company: Acme}\nbudget_tokens: 8000\n"
            "sources:\n  - {kind: documents, collection: c, k: 8, priority: 4, max_tokens: 4000}\n"
            "  - {kind: memory, scopes: [user, shared], k: 8, priority: 3, max_tokens: 1000}\n"
            "  - {kind: history, turns: 10, priority: 2, max_tokens: 2000, overflow: truncate}\n"
            "  - {kind: tools, priority: 1, max_tokens: 800}\n"
        )
    with open(os.path.join(folder, "workbench.toml"), "w") as f:
        f.write('store = "b.db"\n')
    wb = Workbench.from_config(os.path.join(folder, "workbench.toml"))
    texts, _ = corpus(2000, 1, seed=3)
    wb.docs.add("c", texts, chunk_words=1000)
    for i in range(200):
        wb.memory.add(f"note {i}: " + texts[i][:120], "shared")
    for i in range(10):
        wb.ask(f"turn {i}: " + texts[i][:200], model="local/echo", session="s")
    query = " ".join(texts[5].split()[:6])
    tool_results = {f"tool{i}": texts[100 + i][:300] for i in range(4)}
    plan_ms, echo_ms = [], []
    for _ in range(rounds):
        t0 = time.perf_counter()
        wb.plan_context("big", query, model="local/echo", user="u", session="s", context=tool_results)
        plan_ms.append((time.perf_counter() - t0) * 1000)
        t0 = time.perf_counter()
        wb.ask(query, model="local/echo", cache=False)
        echo_ms.append((time.perf_counter() - t0) * 1000)
    return statistics.median(plan_ms), statistics.median(echo_ms)


def memory_writes(n: int) -> float:
    from workbench.runtime import Workbench

    wb = Workbench.from_config(store=os.path.join(tempfile.mkdtemp(prefix="wb-bench-"), "m.db"))
    texts, _ = corpus(n, 1, seed=11)
    t0 = time.perf_counter()
    for i, text in enumerate(texts):
        wb.memory.add(" ".join(text.split()[:25]), f"user:u{i % 50}")
    return n / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--docs", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--rank-bm25-queries", type=int, default=20)
    parser.add_argument("--memory-items", type=int, default=10_000)
    parser.add_argument("--engine", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--store", help=argparse.SUPPRESS)
    parser.add_argument("--limit", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.engine:
        print(json.dumps(run_engine(args.engine, args.data, args.store, args.limit)))
        return

    folder = tempfile.mkdtemp(prefix="wb-bench-")
    data, store = os.path.join(folder, "corpus.json"), os.path.join(folder, "docs.db")
    texts, queries = corpus(args.docs, args.queries)
    with open(data, "w") as f:
        json.dump({"texts": texts, "queries": queries}, f)
    results = {}
    for engine, limit in (
        ("workbench-insert", 0),
        ("workbench-search", args.queries),
        ("bm25s", args.queries),
        ("rank-bm25", args.rank_bm25_queries),
    ):
        out = subprocess.run(
            [sys.executable, __file__, "--engine", engine, "--data", data, "--store", store, "--limit", str(limit)],
            capture_output=True,
            text=True,
            check=True,
        )
        results[engine] = json.loads(out.stdout.strip().splitlines()[-1])
    # Map workbench chunk ids back to corpus positions (a text's source name is its hash).
    import hashlib

    position = {f"text-{hashlib.sha256(t.encode()).hexdigest()[:8]}#1": i for i, t in enumerate(texts)}
    wb_tops = [[position.get(i, -1) for i in top] for top in results["workbench-search"]["tops"]]
    bm_tops = results["bm25s"]["tops"]

    def overlap(a: list[list[int]], b: list[list[int]]) -> float:
        return statistics.mean(len(set(x) & set(y)) / 10 for x, y in zip(a, b, strict=False))

    ins = results["workbench-insert"]
    print(f"P5 corpus: {args.docs} documents (one chunk each), {args.queries} queries of 2-4 words, top-10")
    print(f"P5 workbench insert: {ins['insert_per_s']:,.0f} chunks/s (peak RSS {ins['peak_rss_mb']:.0f} MB)")
    for engine in ("workbench-search", "bm25s", "rank-bm25"):
        r = results[engine]
        print(f"P5 {engine:<17} {r['qps']:>9,.1f} q/s over {r['queries']} queries; peak RSS {r['peak_rss_mb']:.0f} MB")
    ratio = results["workbench-search"]["qps"] / results["bm25s"]["qps"]
    print(f"P5 workbench / bm25s q/s = {ratio:.2f} (target >= 1.0)")
    rb = results["rank-bm25"]["tops"]
    print(
        f"P5 overlap@10 with bm25s: workbench {overlap(wb_tops, bm_tops):.2f}, "
        f"rank-bm25 {overlap(rb, bm_tops[: len(rb)]):.2f}"
    )
    print(
        f"P5 memory writes (dedupe + supersession check each): {memory_writes(args.memory_items):,.0f} items/s "
        f"over {args.memory_items}"
    )
    plan, echo = composer()
    print(
        f"P5 composer, spec with 4 sources and an 8k budget: median {plan:.2f} ms; one local/echo call "
        f"{echo:.2f} ms; ratio {plan / echo:.2f}"
    )


if __name__ == "__main__":
    main()
