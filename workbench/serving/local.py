"""The offline models, registered with litellm as the custom provider ``local``.

They go through ``litellm.completion``/``acompletion`` like any provider, so usage,
streaming and pricing take the same path as real models. Token counts are real
(litellm's ``token_counter``). ``local/scripted`` takes its rules per call in the
``local_scripted`` keyword (a :class:`workbench.config.Scripted`).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from typing import Any

import litellm
from litellm import CustomLLM
from litellm.types.utils import (
    ChatCompletionMessageToolCall,
    Function,
    GenericStreamingChunk,
    Usage,
)

from workbench.config import Scripted
from workbench.plugins import REGISTRY
from workbench.serving import extractive, scripted
from workbench.serving.scripted import ScriptedTurn
from workbench.serving.types import local_models

PROVIDER = "local"


_CHUNK = re.compile(r"\s*\S+\s*")


def _echoed(messages: list[dict[str, Any]]) -> str:
    """The last user message as it came: its text, and each image part described (size, format, hash)."""
    from workbench.serving.images import describe

    for message in reversed(messages):
        if message.get("role") != "user":
            continue
        content = message.get("content")
        if not isinstance(content, list):
            return extractive._text_of(content)
        return "".join(
            describe(part["image_url"].get("url", "")) if part.get("type") == "image_url" else part.get("text", "")
            for part in content
            if isinstance(part, dict)
        )
    return ""


def respond(model: str, messages: list[dict[str, Any]], optional_params: dict[str, Any]) -> ScriptedTurn:
    """What the local model ``model`` answers to ``messages``, cut at ``max_tokens`` like a real model."""
    turn = _respond(model, messages, optional_params)
    limit = optional_params.get("max_tokens")
    if limit and turn.text and not turn.tool:
        tokens = litellm.encode(model="gpt-4o", text=turn.text)
        if len(tokens) > limit:
            return ScriptedTurn(litellm.decode(model="gpt-4o", tokens=list(tokens[:limit])), truncated=True)
    return turn


def _respond(model: str, messages: list[dict[str, Any]], optional_params: dict[str, Any]) -> ScriptedTurn:
    name = model.removeprefix(f"{PROVIDER}/")
    if name == "echo":
        return ScriptedTurn(_echoed(messages))
    if name == "extractive":
        return ScriptedTurn(extractive.answer(messages))
    if name == "scripted":
        return scripted.respond(messages, optional_params.get("local_scripted") or Scripted())
    plugin = REGISTRY.get("model", f"{PROVIDER}/{name}")
    if plugin is not None:  # a plug-in model: fn(messages, params) -> text
        return ScriptedTurn(str(plugin(messages, optional_params)))
    raise litellm.NotFoundError(
        message=f"unknown local model {model!r}; local models are {', '.join(local_models())}",
        model=model,
        llm_provider=PROVIDER,
    )


def _usage(messages: list[dict[str, Any]], turn: ScriptedTurn) -> Usage:
    prompt = litellm.token_counter(model="gpt-4o", messages=messages)
    reply = turn.text or (turn.tool_call()["function"]["arguments"] if turn.tool else "")
    completion = litellm.token_counter(model="gpt-4o", text=reply, count_response_tokens=True) if reply else 0
    return Usage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion)


class LocalModels(CustomLLM):
    """litellm handler for ``local/echo``, ``local/extractive`` and ``local/scripted``, and ``local/minilm``
    for embeddings (the embeddings extra's MiniLM, run in numpy).
    """

    def embedding(self, model: str, input: list, model_response: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: A002
        """Vectors from ``local/minilm``; token usage counted by its own tokenizer."""
        if model.removeprefix(f"{PROVIDER}/") != "minilm":
            raise litellm.NotFoundError(
                message=f"{model} makes no embeddings: use local/minilm (the embeddings extra), or a provider's",
                model=model,
                llm_provider=PROVIDER,
            )
        from workbench.context.embeddings import embedder

        texts = [str(t) for t in input]
        model_ = embedder()
        vectors = model_.embed(texts)
        tokens = sum(len(model_.tokenizer.encode(t).ids) for t in texts)
        model_response.data = [
            {"object": "embedding", "index": i, "embedding": v.tolist()} for i, v in enumerate(vectors)
        ]
        model_response.model = model
        model_response.usage = Usage(prompt_tokens=tokens, completion_tokens=0, total_tokens=tokens)
        return model_response

    async def aembedding(self, model: str, input: list, model_response: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: A002
        """The same, for ``litellm.aembedding``."""
        return self.embedding(model, input, model_response, *args, **kwargs)

    def completion(
        self,
        model: str,
        messages: list,
        api_base: str,
        custom_prompt_dict: dict,
        model_response: Any,
        print_verbose: Any,
        encoding: Any,
        api_key: Any,
        logging_obj: Any,
        optional_params: dict,
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        """A whole answer, with real token usage."""
        turn = respond(model, messages, optional_params)
        choice = model_response.choices[0]
        if turn.tool:
            choice.message.content = None
            choice.message.tool_calls = [
                ChatCompletionMessageToolCall(id=call["id"], type="function", function=Function(**call["function"]))
                for call in turn.tool_calls()
            ]
            choice.finish_reason = "tool_calls"
        else:
            choice.message.content = turn.text
            choice.finish_reason = "length" if turn.truncated else "stop"
        model_response.model = model
        model_response.usage = _usage(messages, turn)
        return model_response

    def streaming(
        self,
        model: str,
        messages: list,
        api_base: str,
        custom_prompt_dict: dict,
        model_response: Any,
        print_verbose: Any,
        encoding: Any,
        api_key: Any,
        logging_obj: Any,
        optional_params: dict,
        *args: Any,
        **kwargs: Any,
    ) -> Iterator[GenericStreamingChunk]:
        """The answer word by word; usage rides on the last chunk."""
        turn = respond(model, messages, optional_params)
        usage = _usage(messages, turn)
        usage_block: Any = {  # litellm's ChatCompletionUsageBlock (a TypedDict): these three keys
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "total_tokens": usage.total_tokens,
        }
        if turn.tool:
            call = turn.tool_call()
            yield GenericStreamingChunk(
                text="",
                is_finished=True,
                finish_reason="tool_calls",
                usage=usage_block,
                index=0,
                tool_use={"id": call["id"], "type": "function", "function": call["function"], "index": 0},
            )
            return
        pieces = _CHUNK.findall(turn.text) or [""]
        for i, piece in enumerate(pieces):
            last = i == len(pieces) - 1
            yield GenericStreamingChunk(
                text=piece,
                is_finished=last,
                finish_reason=("length" if turn.truncated else "stop") if last else "",
                usage=usage_block if last else None,
                index=0,
                tool_use=None,
            )

    async def acompletion(self, *args: Any, **kwargs: Any) -> Any:
        """Async twin of :meth:`completion` (the work is CPU-only and tiny)."""
        return self.completion(*args, **kwargs)

    async def astreaming(self, *args: Any, **kwargs: Any) -> AsyncIterator[GenericStreamingChunk]:
        """Async twin of :meth:`streaming`."""
        for chunk in self.streaming(*args, **kwargs):
            yield chunk


_HANDLER: LocalModels | None = None


def register() -> None:
    """Register the ``local`` provider with litellm (idempotent)."""
    global _HANDLER
    if _HANDLER is None:
        _HANDLER = LocalModels()
    if not any(item.get("provider") == PROVIDER for item in litellm.custom_provider_map):
        litellm.custom_provider_map.append({"provider": PROVIDER, "custom_handler": _HANDLER})
    litellm.utils.custom_llm_setup()
