"""wb.embed: vectors through a route like a completion — failover, cost, recording, replay — and offline MiniLM."""

import numpy as np
import pytest

from workbench import GuardrailViolation, KillSwitchActive, ProviderError, ReplayMiss
from workbench.runtime import Workbench


def _minilm_available() -> bool:
    try:
        from workbench.context.embeddings import model_dir

        model_dir()
        return True
    except Exception:  # noqa: BLE001 - the embeddings extra is optional
        return False


@pytest.mark.skipif(not _minilm_available(), reason="the embeddings extra is not installed")
def test_local_minilm_embeds_offline_and_similar_texts_are_close(wb):
    out = wb.embed(["The office opens at 9.", "Opening hours start at nine.", "Quarterly revenue fell."])
    assert out.vectors.shape == (3, 384)
    assert out.vectors.dtype == np.float32
    near, far = out.vectors[0] @ out.vectors[1], out.vectors[0] @ out.vectors[2]
    assert near > far + 0.2
    row = wb.calls.last()
    assert row["model"] == "local/minilm"
    assert row["text"].startswith("[embeddings 3x384 float32 sha256:")
    assert row["prompt_tokens"] > 0
    assert out.model == "local/minilm"


def test_a_route_over_http_fails_over_records_attempts_and_replays_from_the_store(tmp_path, chaos):
    down = chaos(name="down", error_rate=1.0)
    up = chaos(name="up")
    store = str(tmp_path / "e.db")
    wb = Workbench.from_config(store=store)
    wb.add_route(
        "vectors",
        [
            {"model": "openai/text-embedding-3-small", "api_base": down.url},
            {"model": "openai/text-embedding-3-small", "api_base": up.url},
        ],
        retries=0,
    )
    out = wb.embed(["alpha", "beta"], model="vectors", user="ana")
    assert out.vectors.shape == (2, 8)
    assert [a.status for a in out.attempts] == ["error", "ok"]
    assert up.stats.requests == 1
    row = wb.calls.last()
    assert (row["route"], row["user"], row["status"]) == ("vectors", "ana", "ok")
    assert row["cost_usd"] > 0  # litellm's price for text-embedding-3-small
    assert len(wb.store.query("SELECT * FROM attempts WHERE call_id = ?", (out.call_id,))) == 2
    wb.close()
    down.stop()
    up.stop()
    replay = Workbench.from_config(store=store, mode="replay")
    again = replay.embed(["alpha", "beta"], model="vectors")
    assert again.replayed
    assert np.array_equal(again.vectors, out.vectors)
    with pytest.raises(ReplayMiss, match="no recorded embedding"):
        replay.embed(["gamma"], model="vectors")
    replay.close()


def test_every_deployment_failing_is_a_provider_error_recorded_and_the_kill_switch_refuses(tmp_path, chaos):
    down = chaos(name="down", error_rate=1.0)
    wb = Workbench.from_config(store=str(tmp_path / "f.db"))
    wb.add_route("v", [{"model": "openai/text-embedding-3-small", "api_base": down.url}], retries=1)
    with pytest.raises(ProviderError, match="failed to embed"):
        wb.embed("hello", model="v")
    assert wb.calls.last()["status"] == "error"
    wb.kill("maintenance")
    with pytest.raises(KillSwitchActive):
        wb.embed("hello", model="v")
    with pytest.raises(Exception, match="none of them empty"):
        wb.embed(["ok", "  "], model="v")
    wb.close()


def test_a_secret_in_a_text_to_embed_is_not_stored(wb, chaos):
    server = chaos(name="up")
    wb.add_route("v", [{"model": "openai/text-embedding-3-small", "api_base": server.url}])
    key = "sk-proj-" + "Zq9" * 12
    with pytest.raises(GuardrailViolation, match="holds openai_key"):  # the input policy blocks, as for a prompt
        wb.embed(["fine", f"my key is {key}"], model="v")
    assert server.stats.requests == 0
    assert not wb.store.query("SELECT id FROM calls WHERE prompt LIKE ? OR request LIKE ?", (f"%{key}%", f"%{key}%"))


@pytest.mark.skipif(not _minilm_available(), reason="the embeddings extra is not installed")
def test_the_semantic_cache_answers_a_request_that_means_the_same_and_nothing_else(tmp_path):
    wb = Workbench.from_config(store=str(tmp_path / "s.db"), cache={"enabled": True, "semantic": 0.85})
    first = wb.ask("When does the office open on Saturdays?", model="local/echo")
    again = wb.ask("On Saturdays, when does the office open?", model="local/echo")
    assert again.text == first.text  # local/echo would have echoed the new words: this came from the store
    row = wb.calls.last()
    assert row["cached_from"] == first.call_id
    assert row["routing"].startswith("semantic cache: 0.")
    other = wb.ask("What is the refund policy for damaged kettles?", model="local/echo")
    assert other.text.startswith("What is the refund policy")  # a different question is asked anew
    briefed = wb.ask("On Saturdays, when does the office open?", model="local/echo", system="Answer in French.")
    assert briefed.text.startswith("On Saturdays")  # other instructions: another request, not a hit
    wb.close()
    replay = Workbench.from_config(
        store=str(tmp_path / "s.db"), mode="replay", cache={"enabled": True, "semantic": 0.85}
    )
    with pytest.raises(ReplayMiss):  # replay answers recorded requests only, never near ones
        replay.ask("When is the office open on Saturdays?", model="local/echo")
    replay.close()
