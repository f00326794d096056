"""The provider call: one streamed chat completion on any OpenAI-compatible server, with retries.

The official `openai` SDK does the HTTP and SSE; its own retries are off because ours also cover a
stream that fails before its first token, and wait as the site says (GUILDSITE_LLM_RETRY_BASE_SECONDS).
A stream that fails after tokens went out is not retried: the user has seen half an answer.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from guilds.agents.llm import sdks

if TYPE_CHECKING:
    import openai  # loaded by the first call (guilds.agents.llm.sdks), not at start

logger = logging.getLogger(__name__)

RETRY_AFTER_MAX_SECONDS = 60.0


class ProviderError(Exception):
    """The provider could not give an answer; the message says why, in words a user can act on."""

    def __init__(self, message: str, *, error_type: str = "LLM_PROVIDER_ERROR", status_code: int | None = None):
        super().__init__(message)
        self.error_type = error_type
        self.status_code = status_code


@dataclass
class Completion:
    text: str = ""
    input_tokens: int | None = None
    output_tokens: int | None = None
    cached_tokens: int | None = None
    model: str = ""
    attempts: int = 0
    first_token_at: float | None = None  # time.monotonic() of the first content token
    finish_reason: str | None = None
    parts: list[str] = field(default_factory=list)  # the content so far: what a cancelled run keeps
    # The functions the model asked to call: [{"id", "name", "arguments"}] (arguments as the JSON text it wrote).
    tool_calls: list[dict[str, str]] = field(default_factory=list)

    def partial(self) -> str:
        return "".join(self.parts)


@dataclass(frozen=True)
class CallSettings:
    base_url: str
    api_key: str
    model: str
    timeout: float
    max_retries: int
    retry_base: float
    temperature: float | None = None
    max_tokens: int | None = None


# Making a client costs 20-50 ms (the SDK builds its HTTP stack): kept per event loop (an HTTP pool belongs to
# one loop) and per provider, key and timeout, so a call starts on a warm connection.
_CLIENTS_PER_LOOP = 32
_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, OrderedDict[tuple, openai.AsyncOpenAI]] = (
    weakref.WeakKeyDictionary())


def _client(call: CallSettings) -> openai.AsyncOpenAI:
    import openai

    loop = asyncio.get_running_loop()
    clients = _clients.setdefault(loop, OrderedDict())
    key = (call.base_url, call.api_key, call.timeout)
    client = clients.get(key)
    if client is None:
        client = clients[key] = openai.AsyncOpenAI(api_key=call.api_key, base_url=call.base_url, timeout=call.timeout,
                                                   max_retries=0)
        while len(clients) > _CLIENTS_PER_LOOP:
            clients.popitem(last=False)  # not closed: a call may still use it; its pool goes with it
    else:
        clients.move_to_end(key)
    return client


def _retryable(exc: Exception) -> bool:
    import openai

    if isinstance(exc, openai.APIConnectionError):  # also APITimeoutError
        return True
    if isinstance(exc, openai.APIStatusError):
        return exc.status_code == 429 or exc.status_code >= 500
    return False


def _wait_for(exc: Exception, attempt: int, base: float) -> float:
    wait = base * (2 ** attempt)
    response = getattr(exc, "response", None)
    header = response.headers.get("retry-after") if response is not None else None
    if header:
        try:
            asked = float(header)
        except ValueError:
            asked = None
        if asked is not None and 0 <= asked <= RETRY_AFTER_MAX_SECONDS:
            wait = asked
    return wait


def _describe(exc: Exception, call: CallSettings) -> ProviderError:
    import openai

    if isinstance(exc, openai.APITimeoutError):
        return ProviderError(f"the model provider at {call.base_url} did not answer within {call.timeout:g} s",
                             error_type="LLM_TIMEOUT")
    if isinstance(exc, openai.APIConnectionError):
        return ProviderError(f"cannot reach the model provider at {call.base_url}: {exc}", error_type="LLM_UNREACHABLE")
    if isinstance(exc, openai.APIStatusError):
        detail = getattr(exc, "message", "") or str(exc)
        return ProviderError(f"the model provider answered {exc.status_code}: {detail}", status_code=exc.status_code)
    return ProviderError(f"{type(exc).__name__}: {exc}")


async def stream_chat(call: CallSettings, messages: list[dict[str, Any]],
                      on_token: Callable[[str], Awaitable[None]], result: Completion | None = None,
                      tools: list[dict[str, Any]] | None = None) -> Completion:
    """Stream one completion into `result` (a new one if None), handing each content delta to `on_token`;
    usage from the final chunk. Raises ProviderError once retries are spent (or at once for a 4xx other than
    429). Cancelling the call closes the provider's stream; `result.parts` holds what had come."""
    await sdks.load("openai")
    import openai

    client = _client(call)
    request: dict[str, Any] = {"model": call.model, "messages": messages, "stream": True,
                               "stream_options": {"include_usage": True}}
    if call.temperature is not None:
        request["temperature"] = call.temperature
    if call.max_tokens is not None:
        request["max_tokens"] = call.max_tokens
    if tools:
        request["tools"] = tools
    if result is None:
        result = Completion()
    result.model = call.model
    attempt = 0
    while True:
        result.attempts = attempt + 1
        try:
            await _one_stream(client, request, result, on_token)
            return result
        except (openai.APIError, openai.OpenAIError) as exc:
            if result.first_token_at is not None or attempt >= call.max_retries or not _retryable(exc):
                raise _describe(exc, call) from exc
            wait = _wait_for(exc, attempt, call.retry_base)
            logger.warning("model provider failed (%s); retry %d in %.2f s", type(exc).__name__, attempt + 1, wait,
                           extra={"base_url": call.base_url, "model": call.model})
            await asyncio.sleep(wait)
            attempt += 1


async def _one_stream(client: openai.AsyncOpenAI, request: dict[str, Any], result: Completion,
                      on_token: Callable[[str], Awaitable[None]]) -> None:
    parts = result.parts
    calls: dict[int, dict[str, str]] = {}  # in the order they came
    call_at: dict[int, int] = {}  # a delta's index -> the call it is adding to now
    stream = await client.chat.completions.create(**request)
    async with stream:
        async for chunk in stream:
            if chunk.model:
                result.model = chunk.model
            if chunk.usage is not None:
                result.input_tokens = chunk.usage.prompt_tokens
                result.output_tokens = chunk.usage.completion_tokens
                details = chunk.usage.prompt_tokens_details
                result.cached_tokens = (details.cached_tokens if details is not None else None) or 0
            for choice in chunk.choices:
                if choice.finish_reason:
                    result.finish_reason = choice.finish_reason
                content = choice.delta.content if choice.delta is not None else None
                for delta in (choice.delta.tool_calls or []) if choice.delta is not None else []:
                    # A call comes in pieces: its id and name first, its arguments' JSON text in fragments, by
                    # index. Some servers give every call index 0 (or none): a new id there is a new call.
                    index = delta.index if isinstance(delta.index, int) else -1
                    slot_of = call_at.get(index)
                    if slot_of is None or (delta.id and calls[slot_of]["id"] and delta.id != calls[slot_of]["id"]):
                        slot_of = call_at[index] = len(calls)
                        calls[slot_of] = {"id": "", "name": "", "arguments": ""}
                    slot = calls[slot_of]
                    slot["id"] = delta.id or slot["id"]
                    if delta.function is not None:
                        slot["name"] += delta.function.name or ""
                        slot["arguments"] += delta.function.arguments or ""
                if content:
                    if result.first_token_at is None:
                        result.first_token_at = time.monotonic()
                    parts.append(content)
                    await on_token(content)
    result.text = "".join(parts)
    result.tool_calls = [calls[index] for index in sorted(calls)]
