"""The token counts the workbench makes without litellm are litellm's own, figure for figure."""

import random

import pytest

from workbench.serving import litellm_module, tokens


def _prose() -> str:
    from pydoc_data.topics import topics

    return "\n\n".join(topics[k] for k in sorted(topics))


TEXTS = [
    "",
    "hi",
    "héllo wörld 的的的 🙂 ﬁ",
    "<|endoftext|> and <|im_start|>system",
    " " * 3000,
    "a" * 5000,
    "x\n" * 700,
]
MODELS = ["local/echo", "local/scripted", "local/extractive", "local/some-plugin", "gpt-4o"]


@pytest.fixture(scope="module")
def corpus() -> list[str]:
    prose, rng = _prose(), random.Random(7)
    cut = [prose[:1023], prose[:1024], prose[:1025], prose[:40_000]]
    return TEXTS + cut + [prose[s : s + rng.randint(1, 6000)] for s in rng.sample(range(len(prose) - 7000), 30)]


@pytest.mark.parametrize("model", MODELS)
def test_text_counts_are_litellms(model, corpus):
    litellm = litellm_module()
    assert [tokens.count_text(model, t) for t in corpus] == [litellm.token_counter(model=model, text=t) for t in corpus]


@pytest.mark.parametrize("model", MODELS)
def test_message_counts_are_litellms(model, corpus):
    litellm = litellm_module()
    for text in corpus[:20]:
        call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"region": "north"}'}}
        conversation = [
            {"role": "system", "content": text},
            {"role": "user", "content": "Revenue?", "name": "alice"},
            {"role": "assistant", "content": None, "tool_calls": [call, {**call, "id": "c2"}]},
            {"role": "tool", "tool_call_id": "c1", "content": text[:200]},
            {"role": "assistant", "content": "It is 1005."},
        ]
        for messages in (conversation, conversation[:1], conversation[:3], []):
            assert tokens.count_messages(model, messages) == litellm.token_counter(model=model, messages=messages)


def test_what_it_does_not_read_the_same_way_is_litellms_to_count():
    litellm = litellm_module()
    parts = [{"role": "user", "content": [{"type": "text", "text": "look"}]}]  # content parts: litellm's rules
    odd = [{"role": "user", "content": "hi", "reasoning_content": "hmm"}]  # a field it may count its own way
    for messages in (parts, odd):
        assert tokens.count_messages("local/echo", messages) == litellm.token_counter(
            model="local/echo", messages=messages
        )
    assert tokens.count_text("openai/gpt-4o-mini", "hello") == litellm.token_counter(
        model="openai/gpt-4o-mini", text="hello"
    )


def test_encode_and_decode_are_litellms(corpus):
    litellm = litellm_module()
    for text in corpus[:12]:
        encoded = tokens.encode("gpt-4o", text)
        assert encoded == list(litellm.encode(model="gpt-4o", text=text))
        assert tokens.decode("gpt-4o", encoded[:9]) == litellm.decode(model="gpt-4o", tokens=encoded[:9])


def test_a_users_litellm_tuning_is_honoured(monkeypatch):
    litellm = litellm_module()
    text = _prose()[:9000]
    monkeypatch.setenv("TIKTOKEN_ENCODE_CHUNK_SIZE_CHARS", "4096")  # read by litellm at import: passed to it
    assert tokens.count_text("local/echo", text) == litellm.token_counter(model="local/echo", text=text)
    monkeypatch.setattr(litellm, "disable_token_counter", True)
    assert tokens.count_text("local/echo", text) == 0


def test_without_litellms_tokenizer_files_where_expected_litellm_counts(monkeypatch):
    litellm = litellm_module()
    asked: list[str] = []
    monkeypatch.setattr(tokens, "_bundled", lambda: None)  # a litellm release that moved them: never download
    monkeypatch.setattr(tokens, "_litellm", lambda: asked.append("litellm") or litellm)
    assert tokens.count_text("local/echo", "hello there") == litellm.token_counter(
        model="local/echo", text="hello there"
    )
    assert asked == ["litellm"]
