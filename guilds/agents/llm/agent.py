"""LLMAgent: answers `text`, TextFormat and FilesWithTextFormat messages with a language model.

Per message: the requester's thread (by conversation_id) gets the message, a run is opened, the model
streams its answer (token chunks to the requester as they come), and the answer goes back as a normal
`text` reply, exactly as the EchoAgent's does, so seed 000's client works unchanged. A failure is an
ErrorMessage to the requester and a failed run, with the same reason.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from typing import Any, ClassVar

from django.conf import settings
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator

from guilds.agents.llm import attachments, guards, pricing, records
from guilds.agents.llm.provider import CallSettings, Completion, ProviderError, stream_chat
from guilds.agents.llm.streaming import STREAM_CHUNK, TokenStream
from guilds.models import MessageRole, Run, RunStatus
from guilds.runtime import cancellation, runs
from guilds.runtime.agent import Agent, handles
from guilds.runtime.context import HandlerContext
from guilds.runtime.formats import (
    CHAT_COMPLETION_REQUEST,
    CHAT_COMPLETION_RESPONSE,
    FILES_WITH_TEXT,
    TEXT,
    TEXT_FORMAT_QUALIFIED,
)
from guilds.spec import USER_PROXY_ID_PREFIX
from messaging import topics as topic_names
from messaging.ids import new_id
from messaging.message import Message

logger = logging.getLogger(__name__)

_ROLES = frozenset({"system", "user", "assistant"})
OPENAI_HOST = "api.openai.com"


def _as_model_message(raw: Any) -> dict[str, Any] | None:
    """One message of a ChatCompletionRequest as plain text for the model (text parts kept, others dropped)."""
    if not isinstance(raw, dict) or raw.get("role") not in _ROLES:
        return None
    content = raw.get("content")
    if isinstance(content, list):
        content = "\n".join(str(p.get("text", "")) for p in content if isinstance(p, dict) and p.get("type") == "text")
    if not isinstance(content, str) or not content:
        return None
    return {"role": raw["role"], "content": content}


class LLMProperties(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    model: str | None = Field(None, description="Model name; LLM_MODEL when left out.")
    base_url: str | None = Field(None, description="An OpenAI-compatible server; LLM_BASE_URL when left out.")
    api_key_env: str = Field("OPENAI_API_KEY", description="The name of the environment variable holding the key.")
    system_prompt: str = Field("", validation_alias=AliasChoices("system_prompt", "default_system_prompt"))
    temperature: float | None = Field(None, ge=0, le=2)
    max_tokens: int | None = Field(None, ge=1)
    max_steps: int = Field(4, ge=1, le=50, description="Tool rounds per message (tools come later).")
    history_limit: int = Field(20, ge=0, le=1000, description="Earlier messages of the thread the model sees.")

    @field_validator("api_key_env")
    @classmethod
    def _key_env_allowed(cls, value: str) -> str:
        return guards.check_key_env(value)

    @field_validator("base_url")
    @classmethod
    def _host_allowed(cls, value: str | None) -> str | None:
        return guards.check_base_url(value) if value else value


class LLMAgent(Agent):
    """Answers text with a language model on any OpenAI-compatible server, streaming its tokens."""

    Properties: ClassVar[type[BaseModel]] = LLMProperties
    records_runs: ClassVar[bool] = True

    # --- the call's settings -------------------------------------------------------------
    def _call_settings(self) -> CallSettings:
        """The provider call this agent makes now; ProviderError saying what to set when it cannot."""
        props: LLMProperties = self.properties
        base_url = props.base_url or settings.LLM_BASE_URL
        try:  # again at call time: settings may have changed since the spec was checked
            guards.check_key_env(props.api_key_env)
            guards.check_base_url(base_url)
        except guards.GuardError as exc:
            raise ProviderError(f"{exc.field}: {exc}", error_type="LLM_NOT_ALLOWED") from None
        key = os.environ.get(props.api_key_env, "")
        host = guards.host_port(base_url)[0]
        if not key:
            if host == OPENAI_HOST:
                raise ProviderError(
                    f"no model provider is configured: set {props.api_key_env} in the server's environment "
                    f"(an OpenAI key), or LLM_BASE_URL (or this agent's base_url) to an OpenAI-compatible server "
                    f"such as Ollama at http://localhost:11434/v1", error_type="LLM_NOT_CONFIGURED")
            key = "not-needed"  # local servers (Ollama, llama.cpp) take any key, but the SDK wants one
        return CallSettings(base_url=base_url, api_key=key, model=props.model or settings.LLM_MODEL,
                            timeout=settings.GUILDSITE_LLM_TIMEOUT_SECONDS,
                            max_retries=settings.GUILDSITE_LLM_MAX_RETRIES,
                            retry_base=settings.GUILDSITE_LLM_RETRY_BASE_SECONDS,
                            temperature=props.temperature, max_tokens=props.max_tokens)

    # --- who asked -------------------------------------------------------------------------
    @staticmethod
    def _requester(message: Message) -> tuple[str, str | None]:
        """(requester id, user id or None): a user's message reaches agents through their proxy."""
        sender = message.sender.id
        if sender.startswith(USER_PROXY_ID_PREFIX):
            user_id = sender.removeprefix(USER_PROXY_ID_PREFIX)
            return user_id, user_id
        return sender, None

    async def _prompt(self, message: Message) -> str:
        payload = message.payload
        text = str(payload.get("text") or "")
        files = payload.get("files") or []
        if isinstance(files, list) and files:
            described = await attachments.describe_files(self.guild_id, files)
            text = f"{text}\n\n{described}".strip()
        return text

    # --- the handlers ------------------------------------------------------------------------
    @handles(TEXT, TEXT_FORMAT_QUALIFIED, FILES_WITH_TEXT)
    async def answer(self, ctx: HandlerContext) -> None:
        prompt = await self._prompt(ctx.message)
        await self._converse(ctx, prompt, [{"role": "user", "content": prompt}],
                             lambda done: ({"text": done.text}, TEXT))

    @handles(CHAT_COMPLETION_REQUEST)
    async def llm_completion(self, ctx: HandlerContext) -> None:
        """The original system's request format (its LLM agent's handler name): the request's messages follow the
        thread's history, the answer goes back as a ChatCompletionResponse."""
        asked = [m for m in (_as_model_message(raw) for raw in ctx.message.payload.get("messages") or []) if m]
        if not asked:
            await ctx.send_error("INVALID_REQUEST", "a ChatCompletionRequest needs at least one message")
            return
        last_user = next((m["content"] for m in reversed(asked) if m["role"] == "user"), asked[-1]["content"])
        await self._converse(ctx, last_user, asked, lambda done: (self._completion_response(ctx.message, done),
                                                                   CHAT_COMPLETION_RESPONSE))

    async def _converse(self, ctx: HandlerContext, prompt: str, new_messages: list[dict[str, Any]],
                        reply_of: Callable[[Completion], tuple[dict[str, Any], str]]) -> None:
        """One run: the thread gets `prompt`, the model gets the history then `new_messages`, the answer streams
        to the requester and goes back as `reply_of` makes it."""
        message = ctx.message
        requester, user_id = self._requester(message)
        key = records.ThreadKey(guild_id=self.guild_id, agent_id=self.id, requester=requester,
                                conversation_id=message.conversation_id or "", user_id=user_id)
        thread = await records.thread_open(key, title=prompt)
        asked = await records.message_add(thread.id, role=MessageRole.USER, content=prompt, bus_message_id=message.id)
        props: LLMProperties = self.properties
        model = props.model or settings.LLM_MODEL
        run = await runs.run_start(guild_id=self.guild_id, agent_id=self.id, thread_id=thread.id,
                                   message_id=message.id, requester=requester, model=model, trigger=message.trigger)
        await runs.publish_update(ctx, run, RunStatus.RUNNING)
        started = time.monotonic()
        stream = TokenStream(
            lambda kind, content, seq: self._chunk(ctx, user_id, requester, kind, content, seq, run.id, thread.id),
            tokens=settings.LLM_TOKEN_STREAM, interval=settings.GUILDSITE_LLM_STREAM_FLUSH_SECONDS,
            max_bytes=settings.GUILDSITE_LLM_STREAM_FLUSH_BYTES)
        try:
            call = self._call_settings()
            earlier = [] if asked is None else await records.history(thread.id, before_id=asked.id,
                                                                      limit=props.history_limit)
            messages: list[dict[str, Any]] = []
            if props.system_prompt:
                messages.append({"role": "system", "content": props.system_prompt})
            messages += [*earlier, *new_messages]
            completion = Completion(model=model)
            # Cancelled already (while queued, or before a redelivery of its message): no call at all.
            cancelled = await cancellation.cancel_requested(run.id)
            if not cancelled:
                call_task = asyncio.ensure_future(stream_chat(call, messages, stream.token, completion))
                cancelled = await cancellation.unless_cancelled(run.id, call_task)
                if not cancelled:
                    call_task.result()
        except ProviderError as exc:
            await stream.close()
            logger.warning("LLM call failed: %s", exc, extra={"guild_id": self.guild_id, "agent_id": self.id,
                                                              "message_id": message.id, "run_id": run.id})
            await runs.run_finish(run.id, status=RunStatus.FAILED, started_at=run.started_at, error=str(exc))
            await runs.publish_update(ctx, run, RunStatus.FAILED, error=str(exc))
            await ctx.send_error(exc.error_type, str(exc))
            return
        except Exception as exc:  # not the provider's: the run must not stay "running"; the host reports the error
            await stream.close()
            await runs.run_finish(run.id, status=RunStatus.FAILED, started_at=run.started_at,
                                     error=f"{type(exc).__name__}: {exc}")
            await runs.publish_update(ctx, run, RunStatus.FAILED, error=f"{type(exc).__name__}: {exc}")
            raise
        if cancelled:
            await self._cancelled(ctx, run, thread.id, completion, started, stream, reply_of)
            return
        await stream.finish(completion.text)
        payload, reply_format = reply_of(completion)
        replies = await ctx.reply(payload, format=reply_format)
        ttft = self._ttft_ms(completion, started)
        await records.message_add(thread.id, role=MessageRole.ASSISTANT, content=completion.text,
                                  bus_message_id=replies[0].id if replies else None, run_id=run.id,
                                  input_tokens=completion.input_tokens, output_tokens=completion.output_tokens)
        cost = pricing.run_cost(completion.model or model, input_tokens=completion.input_tokens,
                                output_tokens=completion.output_tokens, cached_tokens=completion.cached_tokens)
        await runs.run_finish(run.id, status=RunStatus.SUCCEEDED, started_at=run.started_at,
                                 time_to_first_token_ms=ttft, input_tokens=completion.input_tokens,
                                 output_tokens=completion.output_tokens, cached_tokens=completion.cached_tokens,
                                 cost_usd=cost, model=completion.model or model)
        await runs.publish_update(ctx, run, RunStatus.SUCCEEDED)

    async def _cancelled(self, ctx: HandlerContext, run: Run, thread_id: str, completion: Completion, started: float,
                         stream: TokenStream, reply_of: Callable[[Completion], tuple[dict[str, Any], str]]) -> None:
        """Cancelled mid-answer: the provider's stream is closed; what had come is kept, sent as the answer (so
        far) and stored, and the run marked cancelled (tokens unknown: the usage comes with the stream's end)."""
        completion.text = completion.partial()
        await stream.finish(completion.text)
        if completion.text:
            payload, reply_format = reply_of(completion)
            replies = await ctx.reply(payload, format=reply_format)
            await records.message_add(thread_id, role=MessageRole.ASSISTANT, content=completion.text,
                                      bus_message_id=replies[0].id if replies else None, run_id=run.id)
        else:  # nothing had come: the requester still hears how its request ended
            await ctx.send_error("RUN_CANCELLED", f"run {run.id} was cancelled before the model answered")
        await runs.run_finish(run.id, status=RunStatus.CANCELLED, started_at=run.started_at,
                                 time_to_first_token_ms=self._ttft_ms(completion, started),
                                 error="cancelled on request", model=completion.model)
        await runs.publish_update(ctx, run, RunStatus.CANCELLED)

    @staticmethod
    def _ttft_ms(completion: Completion, started: float) -> int | None:
        return None if completion.first_token_at is None else int((completion.first_token_at - started) * 1000)

    @staticmethod
    def _completion_response(request: Message, done: Completion) -> dict[str, Any]:
        usage = None
        if done.input_tokens is not None and done.output_tokens is not None:
            usage = {"prompt_tokens": done.input_tokens, "completion_tokens": done.output_tokens,
                     "total_tokens": done.input_tokens + done.output_tokens}
        return {"id": f"chatcmpl-{request.id}", "object": "chat.completion", "created": int(time.time()),
                "model": done.model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": done.text},
                             "finish_reason": done.finish_reason or "stop"}],
                "usage": usage}

    # --- what goes out besides the reply -----------------------------------------------------
    async def _chunk(self, ctx: HandlerContext, user_id: str | None, requester: str, chunk_type: str, content: str,
                     seq: int, run_id: str, thread_id: str) -> None:
        """A stream chunk, ephemeral, straight to the user's notifications topic (their sockets listen there on
        either engine); the proxy is not in the way, so nothing stores it."""
        origin = ctx.message
        topic = topic_names.user_notifications(user_id) if user_id else topic_names.agent_inbox(requester)
        chunk = Message.create(
            id=new_id(origin.priority), sender=self.host.tag, topics=topic, format=STREAM_CHUNK,
            payload={"chunk_type": chunk_type, "content": content, "in_response_to": str(origin.id),
                     "run_id": run_id, "thread_id": thread_id, "seq": seq},
            in_response_to=origin.id, thread=[*origin.thread], conversation_id=origin.conversation_id,
            priority=origin.priority,
        )
        await self.host.guild.bus.publish(chunk, ephemeral=True)
