"""The offline models, registered with litellm as the custom provider ``local``.

So ``litellm.completion(model="local/echo")`` works in any code, streaming included. The answers,
and their real token usage, come from :mod:`workbench.serving.offline`, which the router calls
directly (no litellm import) unless ``WORKBENCH_VIA_LITELLM`` is set. ``local/scripted``
takes its rules per call in the ``local_scripted`` keyword (a :class:`workbench.config.Scripted`).
"""

from __future__ import annotations

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

from workbench.serving import offline
from workbench.serving.offline import PROVIDER
from workbench.serving.scripted import ScriptedTurn
from workbench.serving.types import local_models


def respond(model: str, messages: list[dict[str, Any]], optional_params: dict[str, Any]) -> ScriptedTurn:
    """What the local model ``model`` answers (see :func:`workbench.serving.offline.respond`); litellm's
    ``NotFoundError`` for a name that is no local model.
    """
    turn = offline.respond(model, messages, optional_params)
    if turn is None:
        raise litellm.NotFoundError(
            message=f"unknown local model {model!r}; local models are {', '.join(local_models())}",
            model=model,
            llm_provider=PROVIDER,
        )
    return turn


def _usage(messages: list[dict[str, Any]], turn: ScriptedTurn) -> Usage:
    return Usage(**offline.usage(messages, turn))


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
            calls = turn.tool_calls()
            for i, call in enumerate(calls):  # every call of the turn, one chunk each (as a real provider streams)
                last = i == len(calls) - 1
                yield GenericStreamingChunk(
                    text="",
                    is_finished=last,
                    finish_reason="tool_calls" if last else "",
                    usage=usage_block if last else None,
                    index=0,
                    tool_use={"id": call["id"], "type": "function", "function": call["function"], "index": i},
                )
            return
        pieces = offline.pieces(turn.text)
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
