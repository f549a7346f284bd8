import json

from workbench.config import Scripted, ScriptedRule
from workbench.serving import extractive, litellm_module
from workbench.serving.scripted import respond


def test_echo_goes_through_litellm_with_real_token_counts():
    litellm = litellm_module()
    short = litellm.completion(model="local/echo", messages=[{"role": "user", "content": "hi"}])
    long = litellm.completion(model="local/echo", messages=[{"role": "user", "content": "hi " * 50}])
    assert short.choices[0].message.content == "hi"
    assert long.usage.prompt_tokens > short.usage.prompt_tokens + 40  # counted, not fixed
    assert long.usage.completion_tokens >= 50


def test_streaming_yields_words_and_usage():
    litellm = litellm_module()
    chunks = list(
        litellm.completion(
            model="local/echo",
            stream=True,
            stream_options={"include_usage": True},
            messages=[{"role": "user", "content": "one two three"}],
        )
    )
    deltas = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert "".join(deltas) == "one two three"
    assert len(deltas) == 3
    built = litellm.stream_chunk_builder(chunks)
    assert built.usage.completion_tokens == 3


def test_async_path():
    import asyncio

    litellm = litellm_module()
    r = asyncio.run(litellm.acompletion(model="local/echo", messages=[{"role": "user", "content": "async"}]))
    assert r.choices[0].message.content == "async"


DOCS = [
    {
        "role": "system",
        "content": "Context:\n[hours] The shop opens at 9am. It closes at 6pm.\n[pets] Dogs are welcome inside.",
    }
]


def test_extractive_cites_the_source_of_each_sentence():
    answer = extractive.answer([*DOCS, {"role": "user", "content": "When does the shop open?"}])
    assert answer.startswith("The shop opens at 9am. [hours]")
    assert "[pets]" not in answer


def test_extractive_says_plainly_when_there_is_no_answer():
    assert extractive.answer([*DOCS, {"role": "user", "content": "Who won the match?"}]) == extractive.NO_ANSWER
    assert extractive.answer([{"role": "user", "content": "Anything?"}]) == extractive.NO_CONTEXT


def test_extractive_reads_context_from_the_prompt_paragraphs():
    prompt = "[a] Rust is a language. Python is another.\n\nWhich language is Rust?"
    assert extractive.answer([{"role": "user", "content": prompt}]).startswith("Rust is a language. [a]")


SCRIPT = Scripted(
    default="no rule",
    rules=[
        ScriptedRule(pattern=r"weather in (?P<city>\w+)", tool="get_weather", arguments={"city": r"\g<city>"}),
        ScriptedRule(pattern=r"(\d+)C", role="tool", reply=r"It is \1 degrees."),
        ScriptedRule(pattern=r"^hello", reply="Hi there"),
    ],
)


def test_scripted_rules_reply_call_tools_and_fall_back():
    assert respond([{"role": "user", "content": "hello you"}], SCRIPT).text == "Hi there"
    turn = respond([{"role": "user", "content": "weather in Oslo?"}], SCRIPT)
    assert turn.tool == "get_weather"
    assert turn.arguments == {"city": "Oslo"}
    assert respond([{"role": "tool", "content": "21C"}], SCRIPT).text == "It is 21 degrees."
    assert respond([{"role": "user", "content": "unmatched"}], SCRIPT).text == "no rule"


def test_scripted_tool_call_through_litellm():
    litellm = litellm_module()
    r = litellm.completion(
        model="local/scripted", local_scripted=SCRIPT, messages=[{"role": "user", "content": "weather in Lima"}]
    )
    call = r.choices[0].message.tool_calls[0]
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Lima"}
    assert r.choices[0].finish_reason == "tool_calls"


def test_local_models_stop_at_max_tokens_like_real_ones():
    litellm = litellm_module()
    long = "one two three four five six seven eight nine ten"
    r = litellm.completion(model="local/echo", max_tokens=3, messages=[{"role": "user", "content": long}])
    assert r.choices[0].message.content == "one two three"
    assert r.choices[0].finish_reason == "length"
    assert r.usage.completion_tokens == 3


def test_a_scripted_tool_rule_reads_every_result_of_the_last_step():
    script = Scripted(
        rules=[
            ScriptedRule(
                role="tool",
                pattern=r"(?P<a>\w+) costs (?P<x>\d+)\n(?P<b>\w+) costs (?P<y>\d+)",
                reply=r"\g<a> is \g<x> and \g<b> is \g<y>",
            ),
            ScriptedRule(role="tool", pattern=r"^(?P<a>\w+) costs (?P<x>\d+)", reply=r"only \g<a>"),
        ]
    )
    step = [
        {"role": "user", "content": "compare"},
        {"role": "assistant", "content": None},
        {"role": "tool", "content": "team costs 45"},
        {"role": "tool", "content": "business costs 120"},
    ]
    assert respond(step, script).text == "team is 45 and business is 120"
    single = [{"role": "user", "content": "q"}, {"role": "tool", "content": "basic costs 9"}]
    assert respond(single, script).text == "only basic"
    earlier = [
        {"role": "tool", "content": "old costs 1"},
        {"role": "assistant", "content": "x"},
        {"role": "tool", "content": "basic costs 9"},
    ]
    assert respond(earlier, script).text == "only basic"  # results of an earlier step are not read again
