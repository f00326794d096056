"""Storing messages: one Lua script per message, and writes queued meanwhile sent together.

The script stores a message in each of its topics' streams (MAXLEN, age trim, key expiry), records
its stream entry id per topic in the message's hash (by-id lookups, position-based since queries),
and PUBLISHes "<entry id> <JSON>" on each topic's channel, all or nothing: it checks key types before
writing. A store extension (durable delivery's fan-out, messaging.delivery) runs after each topic
is stored, in the same atomic step; its arguments come first, so the script's own follow at `o`. It may
also store a conditional copy the extension came with (`store_copy`): see durable delivery's stand-ins.
Writes queued while one is in flight go together in the next pipeline, so concurrent publishers
share round trips; a lone publisher pays one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from redis.exceptions import NoScriptError, ResponseError

from messaging.backends.redis.connection import NETWORK_ERRORS
from messaging.errors import BackendUnavailable, MessagingError

logger = logging.getLogger(__name__)

_NO_EXTENSION = """
local function after_store(topic, json) end
local function delivery_result() return {} end
"""

# KEYS[1] = message hash, KEYS[2..] = topic streams: the message's own topics, then its conditional copies'.
# ARGV = extension argument count, the extension's arguments (table D), then: ttl_ms, how many of the topics are
# the message's own, and per topic: hash field, channel, JSON, logical topic, history limit. A conditional copy
# (the same message as another topic's subscriber would store it) is stored only when the extension asks
# (`store_copy`); an empty JSON marks one that cannot be stored. Returns {stored, what the extension's
# delivery_result() lists...}.
_STORE = """
local dcount = tonumber(ARGV[1])
local D = {}
for i = 1, dcount do D[i] = ARGV[i + 1] end
local o = dcount + 1
local ttl = tonumber(ARGV[o + 1])
local n = tonumber(ARGV[o + 2])
local all = (#ARGV - o - 2) / 5
local kind = redis.call('TYPE', KEYS[1])['ok']
if kind ~= 'none' and kind ~= 'hash' then
  return redis.error_reply('WRONGTYPE ' .. KEYS[1] .. ' is a ' .. kind)
end
for i = 1, all do
  kind = redis.call('TYPE', KEYS[i + 1])['ok']
  if kind ~= 'none' and kind ~= 'stream' then
    return redis.error_reply('WRONGTYPE ' .. KEYS[i + 1] .. ' is a ' .. kind)
  end
end
local now = redis.call('TIME')
local cutoff = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) - ttl
local function topic_args(i)
  local base = o + 2 + (i - 1) * 5
  return ARGV[base + 1], ARGV[base + 2], ARGV[base + 3], ARGV[base + 4], ARGV[base + 5]
end
local function store_topic(i)
  local field, channel, json, _, maxlen = topic_args(i)
  if redis.call('HEXISTS', KEYS[1], field) == 1 then
    return false
  end
  local eid = redis.call('XADD', KEYS[i + 1], 'MAXLEN', maxlen, '*', 'm', json)
  if cutoff > 0 then
    redis.call('XTRIM', KEYS[i + 1], 'MINID', cutoff)
  end
  redis.call('PEXPIRE', KEYS[i + 1], ttl)
  redis.call('HSET', KEYS[1], field, eid)
  redis.call('PUBLISH', channel, eid .. ' ' .. json)
  return true
end
-- Conditional copy j: its logical topic and JSON ('' if it cannot be stored), and storing it.
local function copy_of(j)
  local _, _, json, topic = topic_args(n + j)
  return topic, json
end
local function store_copy(j)
  return store_topic(n + j)
end
@EXTENSION@
local stored = 0
for i = 1, n do
  if store_topic(i) then
    stored = stored + 1
    local _, _, json, topic = topic_args(i)
    after_store(topic, json)
  end
end
if stored > 0 then
  redis.call('HSETNX', KEYS[1], 'json', ARGV[o + 5])
  redis.call('PEXPIRE', KEYS[1], ttl)
end
local result = {stored}
for _, item in ipairs(delivery_result()) do
  table.insert(result, item)
end
return result
"""


def store_script(extension_lua: str | None) -> str:
    return _STORE.replace("@EXTENSION@", extension_lua or _NO_EXTENSION)


@dataclass(slots=True)
class _Write:
    source: str
    keys: list[str]
    args: list[Any]
    done: asyncio.Future[list[Any]]
    label: str


class StoreWriter:
    def __init__(self, client: Any, unavailable: Callable[[BaseException], BackendUnavailable]) -> None:
        self.client = client
        self.unavailable = unavailable
        self.shas: dict[str, str] = {}  # script source -> SHA the server has it under (as far as we know)
        self._writes: list[_Write] = []
        self._writer: asyncio.Task[None] | None = None

    async def store(self, source: str, keys: list[str], args: list[Any], label: str) -> list[Any]:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[list[Any]] = loop.create_future()
        self._writes.append(_Write(source, keys, args, done, label))
        if self._writer is None:
            self._writer = loop.create_task(self._flush())
        return await done

    async def drained(self, timeout: float) -> None:
        """Let queued writes finish (or fail)."""
        if self._writer is not None:
            await asyncio.wait({self._writer}, timeout=timeout)

    async def _flush(self) -> None:
        try:
            while self._writes:
                batch, self._writes = self._writes, []
                try:
                    await self._write_batch(batch)
                except NETWORK_ERRORS as exc:
                    error = self.unavailable(exc)
                    for write in batch:
                        if not write.done.done():
                            write.done.set_exception(error)
        finally:
            self._writer = None

    async def _sha(self, source: str) -> str:
        sha = self.shas.get(source)
        if sha is None:
            sha = self.shas[source] = await self.client.script_load(source)
        return sha

    async def _write_batch(self, batch: list[_Write]) -> None:
        shas = [await self._sha(write.source) for write in batch]
        results: list[Any]
        if len(batch) == 1:
            write = batch[0]
            try:
                results = [await self.client.evalsha(shas[0], len(write.keys), *write.keys, *write.args)]
            except ResponseError as exc:
                results = [exc]
        else:
            async with self.client.pipeline(transaction=False) as pipe:
                for write, sha in zip(batch, shas, strict=True):
                    pipe.evalsha(sha, len(write.keys), *write.keys, *write.args)
                results = await pipe.execute(raise_on_error=False)
        retry = [w for w, r in zip(batch, results, strict=True) if isinstance(r, NoScriptError)]
        if retry:  # the server lost its script cache (restart, SCRIPT FLUSH): load again and go again
            for write in retry:
                self.shas.pop(write.source, None)
            await self._write_batch(retry)
        for write, result in zip(batch, results, strict=True):
            if write.done.done() or isinstance(result, NoScriptError):
                continue
            if isinstance(result, ResponseError):  # e.g. a key of the wrong type: nothing was stored
                write.done.set_exception(MessagingError(f"Redis refused {write.label}: {result}"))
            elif isinstance(result, BaseException):
                write.done.set_exception(self.unavailable(result))
            else:
                write.done.set_result([int(result[0]), *result[1:]])
