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
from dataclasses import dataclass, field
from typing import Any, ClassVar

from django.conf import settings
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator

from guilds import budgets
from guilds.agents.llm import attachments, guards, pricing, records, tools
from guilds.agents.llm.provider import CallSettings, Completion, ProviderError, stream_chat
from guilds.agents.llm.streaming import STREAM_CHUNK, TokenStream
from guilds.models import MessageRole, Run, RunStatus
from guilds.runtime import cancellation, live, runs
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

BUDGET_WARNING = "budgetWarning"

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
    max_steps: int = Field(4, ge=1, le=50, description="Rounds of tool calls per message, at most.")
    history_limit: int = Field(20, ge=0, le=1000, description="Earlier messages of the thread the model sees.")
    mcp_servers: list[tools.McpServer] = Field(default_factory=list, max_length=10,
                                               description="MCP servers whose tools the model may call.")

    @field_validator("api_key_env")
    @classmethod
    def _key_env_allowed(cls, value: str) -> str:
        return guards.check_key_env(value)

    @field_validator("base_url")
    @classmethod
    def _host_allowed(cls, value: str | None) -> str | None:
        return guards.check_base_url(value) if value else value


@dataclass
class Rounds:
    """A run's calls of the model (one per round) and of tools, as they go."""

    toolbox: tools.Toolbox
    model: str
    guard: budgets.RunGuard
    completions: list[Completion] = field(default_factory=list)
    calls: list[tools.ToolCall] = field(default_factory=list)
    cancelled: bool = False
    crossed: budgets.Limit | None = None  # the budget the run stopped at

    @property
    def last(self) -> Completion:
        return self.completions[-1]

    def total(self, figure: str) -> int | None:
        """A token count over the rounds that reached the provider; unknown (None) if any of them lacks it."""
        values = [getattr(c, figure) for c in self.completions if c.attempts]
        return None if not values or any(v is None for v in values) else sum(values)

    def ttft_ms(self, started: float) -> int | None:
        firsts = [c.first_token_at for c in self.completions if c.first_token_at is not None]
        return int((min(firsts) - started) * 1000) if firsts else None


class LLMAgent(Agent):
    """Answers text with a language model on any OpenAI-compatible server, streaming its tokens."""

    Properties: ClassVar[type[BaseModel]] = LLMProperties
    records_runs: ClassVar[bool] = True
    keeps_threads: ClassVar[bool] = True

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
        # A schedule's or a trigger's answers go to a thread of its creator's (the chunks, with nobody live to read
        # them, to its inbox).
        owner = user_id or await records.automation_owner(self.guild_id, requester)
        key = records.ThreadKey(guild_id=self.guild_id, agent_id=self.id, requester=requester,
                                conversation_id=message.conversation_id or "", user_id=owner)
        thread = await records.thread_open(key, title=prompt)
        asked = await records.message_add(thread.id, role=MessageRole.USER, content=prompt, bus_message_id=message.id)
        props: LLMProperties = self.properties
        model = props.model or settings.LLM_MODEL
        run = await runs.run_start(guild_id=self.guild_id, agent_id=self.id, thread_id=thread.id,
                                   message_id=message.id, requester=requester, model=model, trigger=message.trigger)
        limits = await budgets.limits(self.guild_id)
        spent = next((limit for limit in limits if limit.exhausted()), None)
        if spent is not None:  # not sent to the provider at all
            await runs.run_finish(run.id, status=RunStatus.BUDGET_EXHAUSTED, started_at=run.started_at,
                                  error=spent.describe())
            await runs.publish_update(ctx, run, RunStatus.BUDGET_EXHAUSTED, error=spent.describe())
            await ctx.send_error("BUDGET_EXHAUSTED", spent.describe())
            return
        await runs.publish_update(ctx, run, RunStatus.RUNNING)
        started = time.monotonic()
        stream = TokenStream(
            lambda kind, content, seq, about: self._chunk(ctx, user_id, requester, kind, content, seq, about, run.id,
                                                          thread.id),
            tokens=settings.LLM_TOKEN_STREAM, interval=settings.GUILDSITE_LLM_STREAM_FLUSH_SECONDS,
            max_bytes=settings.GUILDSITE_LLM_STREAM_FLUSH_BYTES)
        rounds: Rounds | None = None
        try:
            call = self._call_settings()
            earlier = [] if asked is None else await records.history(thread.id, before_id=asked.id,
                                                                      limit=props.history_limit)
            messages: list[dict[str, Any]] = []
            if props.system_prompt:
                messages.append({"role": "system", "content": props.system_prompt})
            messages += [*earlier, *new_messages]
            box = await tools.toolbox(props.mcp_servers)
            rounds = Rounds(toolbox=box, model=model, guard=budgets.RunGuard(limits, model))
            await self._rounds(call, messages, stream, run, thread.id, rounds)
        except ProviderError as exc:
            await stream.close()
            logger.warning("LLM call failed: %s", exc, extra={"guild_id": self.guild_id, "agent_id": self.id,
                                                              "message_id": message.id, "run_id": run.id})
            await runs.run_finish(run.id, status=RunStatus.FAILED, started_at=run.started_at, error=str(exc),
                                  **self._tool_records(rounds))
            await runs.publish_update(ctx, run, RunStatus.FAILED, error=str(exc))
            await ctx.send_error(exc.error_type, str(exc))
            return
        except asyncio.CancelledError:  # the agent is stopping: the run must not stay "running" (shielded: it is)
            await asyncio.shield(runs.run_finish(run.id, status=RunStatus.FAILED, started_at=run.started_at,
                                                 error=runs.INTERRUPTED, **self._tool_records(rounds)))
            raise
        except Exception as exc:  # not the provider's: the run must not stay "running"; the host reports the error
            await stream.close()
            await runs.run_finish(run.id, status=RunStatus.FAILED, started_at=run.started_at,
                                  error=f"{type(exc).__name__}: {exc}", **self._tool_records(rounds))
            await runs.publish_update(ctx, run, RunStatus.FAILED, error=f"{type(exc).__name__}: {exc}")
            raise
        if rounds.cancelled or rounds.crossed is not None:
            await self._stopped(ctx, run, thread.id, rounds, started, stream, reply_of)
            await self._warn_near_budgets(ctx, limits)
            return
        answer = rounds.last
        tool_records = self._tool_records(rounds)
        if rounds.total("input_tokens") is None or rounds.total("output_tokens") is None:
            tool_records["notes"].append("tokens and cost estimated: the provider reported no usage")
        await stream.finish(answer.text)
        payload, reply_format = reply_of(answer)
        replies = await ctx.reply(payload, format=reply_format)
        # Reported, or where a provider reports no usage, estimated (rounds.guard counts either): budgets count it.
        input_tokens, output_tokens = rounds.guard.estimate()
        cached_tokens = rounds.total("cached_tokens")
        await records.message_add(thread.id, role=MessageRole.ASSISTANT, content=answer.text,
                                  bus_message_id=replies[0].id if replies else None, run_id=run.id,
                                  input_tokens=input_tokens, output_tokens=output_tokens)
        cost = pricing.run_cost(answer.model or model, input_tokens=input_tokens, output_tokens=output_tokens,
                                cached_tokens=cached_tokens)
        await runs.run_finish(run.id, status=RunStatus.SUCCEEDED, started_at=run.started_at,
                              time_to_first_token_ms=rounds.ttft_ms(started), input_tokens=input_tokens,
                              output_tokens=output_tokens, cached_tokens=cached_tokens, cost_usd=cost,
                              model=answer.model or model, **tool_records)
        await runs.publish_update(ctx, run, RunStatus.SUCCEEDED)
        await self._warn_near_budgets(ctx, limits)

    async def _warn_near_budgets(self, ctx: HandlerContext, limits: list[budgets.Limit]) -> None:
        """A budget at 80 % tells the guild's system sockets, once a month (a budgetWarning on its status topic),
        and the guild's and its organisation's followers on the live socket."""
        if not limits:
            return
        for warning in await budgets.warnings_due(self.guild_id):
            await ctx.send(warning, format=BUDGET_WARNING, topics=topic_names.GUILD_STATUS_TOPIC, routed=False)
            await live.budget_warning(guild_id=self.guild_id, warning=warning)

    async def _rounds(self, call: CallSettings, messages: list[dict[str, Any]], stream: TokenStream, run: Run,
                      thread_id: str, rounds: Rounds) -> None:
        """The model, then the tools it asks for, then the model again: at most max_steps rounds of tool calls,
        the last call offered none so that it answers. Stops at a cancel (rounds.cancelled)."""
        props: LLMProperties = self.properties
        async def on_token(text: str) -> None:
            await stream.token(text)  # shown, then counted: the token that crosses a budget is the last one
            rounds.guard.token(text)

        for step in range(props.max_steps + 1):
            completion = Completion(model=rounds.model)
            rounds.completions.append(completion)
            # Cancelled already (while queued, before a redelivery of its message, during the tools): no call.
            if await cancellation.cancel_requested(run.id):
                rounds.cancelled = True
                return
            offered = rounds.toolbox.offered() if step < props.max_steps else None
            try:
                rounds.guard.round_starts(messages)
                call_task = asyncio.ensure_future(stream_chat(call, messages, on_token, completion, tools=offered))
                if await cancellation.unless_cancelled(run.id, call_task):
                    rounds.cancelled = True
                    return
                call_task.result()
            except budgets.BudgetCrossed as crossed:
                rounds.crossed = crossed.limit
                return
            rounds.guard.round_ends(completion.input_tokens, completion.output_tokens)
            # A call without a name cannot be answered, nor sent back: it is as if not asked.
            completion.tool_calls = [c for c in completion.tool_calls if c["name"]]
            if not completion.tool_calls or not offered:
                return
            await self._use_tools(completion, messages, stream, run, thread_id, rounds)
            if rounds.cancelled:
                return

    async def _use_tools(self, completion: Completion, messages: list[dict[str, Any]], stream: TokenStream, run: Run,
                         thread_id: str, rounds: Rounds) -> None:
        """One round of tool calls, made at once: each call and its result go to the model, the thread and the
        requester's sockets (`tool_output`)."""
        asked = [tools.ToolCall(call_id=c["id"] or f"call_{index}", name=c["name"], arguments=c["arguments"])
                 for index, c in enumerate(completion.tool_calls)]
        as_sent = [{"id": c.call_id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                   for c in asked]
        messages.append({"role": "assistant", "content": completion.text or None, "tool_calls": as_sent})
        await records.message_add(thread_id, role=MessageRole.ASSISTANT, content=completion.text, bus_message_id=None,
                                  run_id=run.id, tool_calls=as_sent)
        most = settings.GUILDSITE_MCP_MAX_CALLS_PER_ROUND
        for extra in asked[most:]:  # answered, so the model knows, but not made
            extra.output = f"error: at most {most} tool calls a round; ask for this one again in the next"
        calls_task = asyncio.ensure_future(asyncio.gather(*(rounds.toolbox.call(c) for c in asked[:most])))
        if await cancellation.unless_cancelled(run.id, calls_task):
            rounds.cancelled = True
            return
        for done in [*calls_task.result(), *asked[most:]]:
            rounds.calls.append(done)
            messages.append({"role": "tool", "tool_call_id": done.call_id, "content": done.output})
            await records.message_add(thread_id, role=MessageRole.TOOL, content=done.output, bus_message_id=None,
                                      run_id=run.id, tool_call_id=done.call_id, tool_result=done.record())
            await stream.tool_output(done.output, {"tool_name": done.name, "tool_call_id": done.call_id,
                                                   "ok": done.ok})

    @staticmethod
    def _tool_records(rounds: Rounds | None) -> dict[str, Any]:
        if rounds is None:
            return {}
        return {"tool_calls": [c.record() for c in rounds.calls], "notes": list(rounds.toolbox.unavailable)}

    async def _stopped(self, ctx: HandlerContext, run: Run, thread_id: str, rounds: Rounds, started: float,
                       stream: TokenStream, reply_of: Callable[[Completion], tuple[dict[str, Any], str]]) -> None:
        """Cancelled, or stopped at a budget, mid-answer: the provider's stream is closed; what had come is kept, sent
        as the answer (so far) and stored, and the run marked so (the stopped round's tokens unknown: the usage comes
        with the stream's end)."""
        completion = rounds.last
        completion.text = completion.partial()
        await stream.finish(completion.text)
        if completion.text:
            payload, reply_format = reply_of(completion)
            replies = await ctx.reply(payload, format=reply_format)
            await records.message_add(thread_id, role=MessageRole.ASSISTANT, content=completion.text,
                                      bus_message_id=replies[0].id if replies else None, run_id=run.id)
        if rounds.crossed is not None:  # not the user's doing: they hear why the answer stops there
            status, error = RunStatus.BUDGET_EXHAUSTED, rounds.crossed.describe()
            await ctx.send_error("BUDGET_EXHAUSTED", error)
        else:
            status, error = RunStatus.CANCELLED, "cancelled on request"
            if not completion.text:  # nothing had come: the requester still hears how its request ended
                await ctx.send_error("RUN_CANCELLED", f"run {run.id} was cancelled before the model answered")
        # Stopped before the provider reported its usage: what it cost is estimated (characters / 4), so that
        # budgets count it; the notes say so.
        input_tokens, output_tokens = rounds.guard.estimate()
        records_of_tools = self._tool_records(rounds)
        records_of_tools["notes"].append("tokens and cost estimated: the run stopped before the provider reported them")
        await runs.run_finish(run.id, status=status, started_at=run.started_at,
                              time_to_first_token_ms=rounds.ttft_ms(started), error=error, model=completion.model,
                              input_tokens=input_tokens, output_tokens=output_tokens,
                              cost_usd=pricing.run_cost(completion.model or rounds.model, input_tokens=input_tokens,
                                                        output_tokens=output_tokens, cached_tokens=0),
                              **records_of_tools)
        await runs.publish_update(ctx, run, status, error=error if rounds.crossed is not None else "")

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
                     seq: int, about: dict[str, Any] | None, run_id: str, thread_id: str) -> None:
        """A stream chunk, ephemeral, straight to the user's notifications topic (their sockets listen there on
        either engine); the proxy is not in the way, so nothing stores it."""
        origin = ctx.message
        topic = topic_names.user_notifications(user_id) if user_id else topic_names.agent_inbox(requester)
        chunk = Message.create(
            id=new_id(origin.priority), sender=self.host.tag, topics=topic, format=STREAM_CHUNK,
            payload={"chunk_type": chunk_type, "content": content, "in_response_to": str(origin.id),
                     "run_id": run_id, "thread_id": thread_id, "seq": seq, **(about or {})},
            in_response_to=origin.id, thread=[*origin.thread], conversation_id=origin.conversation_id,
            priority=origin.priority,
        )
        await self.host.guild.bus.publish(chunk, ephemeral=True)
        await live.stream_chunk(guild_id=self.guild_id, agent_id=self.id, thread_id=thread_id, run_id=run_id,
                                chunk_type=chunk_type, content=content, seq=seq, message_id=str(chunk.id), about=about)
