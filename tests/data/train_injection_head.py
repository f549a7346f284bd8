"""Train the semantic injection scanner's logistic head; writes ``workbench/guardrails/injection_head.json``.

Training data: the corpus rows of every split except ``heldout`` (attacks of the injection
families, and all benign rows), plus the example banks in ``workbench/guardrails/semantic.py``.
Plain batch gradient descent on the logistic loss with a little L2; deterministic. Needs
the ``embeddings`` extra. Run: ``python tests/data/train_injection_head.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from workbench.context.embeddings import embedder
from workbench.guardrails.semantic import ATTACK_EXAMPLES, BENIGN_EXAMPLES, HEAD

NOT_INJECTION = {"secrets", "pii"}


def main() -> None:
    rows = [json.loads(line) for line in Path(__file__).with_name("guard_corpus.jsonl").open(encoding="utf-8")]
    rows = [r for r in rows if r["split"] != "heldout" and r["family"] not in NOT_INJECTION]
    texts = [r["text"] for r in rows] + ATTACK_EXAMPLES + BENIGN_EXAMPLES
    y = np.array(
        [r["label"] == "attack" for r in rows] + [1] * len(ATTACK_EXAMPLES) + [0] * len(BENIGN_EXAMPLES),
        dtype=np.float64,
    )
    x = embedder().embed(texts).astype(np.float64)
    w, b = np.zeros(x.shape[1]), 0.0
    for _ in range(3000):
        p = 1 / (1 + np.exp(-(x @ w + b)))
        g = p - y
        w -= 0.5 * (x.T @ g / len(y) + 1e-3 * w)
        b -= 0.5 * g.mean()
    accuracy = float(((x @ w + b >= 0) == (y == 1)).mean())
    HEAD.write_text(
        json.dumps(
            {
                "weights": [round(v, 6) for v in w],
                "bias": round(b, 6),
                "trained_on": len(y),
                "train_accuracy": round(accuracy, 3),
            }
        )
        + "\n"
    )
    print(f"{HEAD}: {len(y)} examples, train accuracy {accuracy:.3f}")


if __name__ == "__main__":
    main()
