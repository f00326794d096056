"""Every Redis script of durable delivery, and how they are run (EVALSHA, loaded again after a restart).

FANOUT is not run on its own: the messaging backend's store script includes it (see
`messaging.backends.redis.writer`), so a stored message reaches its durable subscribers' inboxes in the
same atomic step that stores it, and an agent never misses one.
"""

from __future__ import annotations

import hashlib
from typing import Any

from redis.exceptions import NoScriptError

# Run by the store script after it stored a message in a topic: `after_store(topic, json)`. Its
# arguments are the table D: durable prefix, sender id, inbox score, message id, wake flag ttl ms,
# drain list key, drain template, id prefix of agents the caller wakes itself, then the stand-ins: their
# count and, per stand-in, topic, agent id and conditional copy number. A new message goes into the inbox
# of every durable subscriber of the topic (but the sender's own, except on its self inbox); an agent with
# nothing due yet gets its wake flag and, with a template, its drain pushed on the list (the engine's drain
# lane) in the same step (so no crash comes between storing and asking for a drain), as long as its id can
# go into the template as it is; `delivery_result()` lists the agents the caller must wake. A subscriber
# with a stand-in for the topic and nothing waiting or under way (no wake flag, an empty inbox) gets its
# copy stored for it instead (the copy's own subscribers served in turn): its order holds, as it would have
# handled the message next.
FANOUT = """
local dprefix, sender, score, mid = D[1], D[2], D[3], D[4]
local wake_ttl, queue, template, caller_wakes = D[5], D[6], D[7], D[8]
local stand_ins = {}
for i = 0, tonumber(D[9]) - 1 do
  local topic = D[10 + 3 * i]
  stand_ins[topic] = stand_ins[topic] or {}
  stand_ins[topic][D[11 + 3 * i]] = tonumber(D[12 + 3 * i])
end
local woken = {}
local function enqueued(agent)
  if queue == '' or not string.find(agent, '^[%w_.@+-]+$') then
    return false
  end
  if caller_wakes ~= '' and string.sub(agent, 1, #caller_wakes) == caller_wakes then
    return false
  end
  redis.call('LPUSH', queue, (string.gsub(template, '@AGENT@', agent)))
  return true
end
local function idle(agent)
  return redis.call('EXISTS', dprefix .. 'wake:' .. agent) == 0 and redis.call('ZCARD', dprefix .. 'inbox:' .. agent) == 0
end
local function after_store(topic, json)
  local self_inbox = string.sub(topic, 1, 17) == 'agent_self_inbox:'
  for _, agent in ipairs(redis.call('SMEMBERS', dprefix .. 'subs:' .. topic)) do
    if (self_inbox and agent == sender) or ((not self_inbox) and agent ~= sender) then
      local copy = stand_ins[topic] and stand_ins[topic][agent]
      local copy_topic, copy_json
      if copy then
        copy_topic, copy_json = copy_of(copy)
      end
      if copy and copy_json ~= '' and idle(agent) then
        if store_copy(copy) then
          after_store(copy_topic, copy_json)
        end
      elseif redis.call('ZADD', dprefix .. 'inbox:' .. agent, 'NX', score, mid) == 1 then
        redis.call('HSET', dprefix .. 'box:' .. agent, mid, json)
        if redis.call('SET', dprefix .. 'wake:' .. agent, '1', 'NX', 'PX', wake_ttl) and not enqueued(agent) then
          table.insert(woken, agent)
        end
      end
    end
  end
end
local function delivery_result()
  return woken
end
"""

# A drain's first step: take the lease and, if taken, the agent's state version and first batch, the
# first message of which counts one more attempt (so a process that dies handling it has used one).
# KEYS: lease, version, inbox, box, attempts. ARGV: token, lease ms, batch size.
BEGIN = """
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return {0, redis.call('PTTL', KEYS[1])}
end
local ids = redis.call('ZRANGE', KEYS[3], 0, tonumber(ARGV[3]) - 1)
local bodies = {}
local attempts = 0
if #ids > 0 then
  bodies = redis.call('HMGET', KEYS[4], unpack(ids))
  attempts = redis.call('HINCRBY', KEYS[5], ids[1], 1)
end
return {1, redis.call('GET', KEYS[2]) or '0', ids, bodies, attempts}
"""

# Every later step: remove what was handled (with its attempts and failures), then either count an
# attempt of `next` (batch size 0) or take the next batch (its first message counting an attempt). With
# none waiting, the drain ends in the same atomic step (wake flag cleared, lease released), so that a
# message can never arrive between "nothing waits" and "no drain due" unseen.
# KEYS: inbox, box, wake, lease, attempts, failures. ARGV: token, batch size, next id or '', handled ids...
# Returns {-1}: the lease is not ours (nothing removed); {0}: the drain is over; {1, ids, bodies, attempts}.
STEP = """
if redis.call('GET', KEYS[4]) ~= ARGV[1] then return {-1} end
if #ARGV > 3 then
  local handled = {unpack(ARGV, 4)}
  redis.call('ZREM', KEYS[1], unpack(handled))
  redis.call('HDEL', KEYS[2], unpack(handled))
  redis.call('HDEL', KEYS[5], unpack(handled))
  redis.call('HDEL', KEYS[6], unpack(handled))
end
local count = tonumber(ARGV[2])
if count == 0 then
  if ARGV[3] == '' then return {1, {}, {}, 0} end
  return {1, {}, {}, redis.call('HINCRBY', KEYS[5], ARGV[3], 1)}
end
local ids = redis.call('ZRANGE', KEYS[1], 0, count - 1)
if #ids > 0 then
  return {1, ids, redis.call('HMGET', KEYS[2], unpack(ids)), redis.call('HINCRBY', KEYS[5], ids[1], 1)}
end
redis.call('DEL', KEYS[3])
if redis.call('GET', KEYS[4]) == ARGV[1] then redis.call('DEL', KEYS[4]) end
return {0}
"""

RELEASE_LEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

RENEW_LEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""

_SHAS: dict[str, str] = {}


async def run(client: Any, source: str, key_count: int, *keys_and_args: object) -> Any:
    """EVALSHA, loading the script once per server (again after a restart emptied its cache)."""
    sha = _SHAS.get(source)
    if sha is None:
        sha = _SHAS[source] = hashlib.sha1(source.encode()).hexdigest()
    try:
        return await client.evalsha(sha, key_count, *keys_and_args)
    except NoScriptError:
        await client.script_load(source)
        return await client.evalsha(sha, key_count, *keys_and_args)
