"""The Redis store's Lua scripts, and how they are called: by SHA, loaded again on NOSCRIPT
(a restarted or new node), or many calls of one script pipelined in one round trip.

Each script checks and writes one chat's keys atomically (a cluster runs it on the chat's
slot). Every append and end publishes "this log changed" from inside its script, and every
steering or feed push names its stream the same way, so a waiter is never told of an entry
the log does not hold yet.
"""

from __future__ import annotations

import hashlib
from typing import Any

from redis.exceptions import NoScriptError

from bridge.store.base import Fenced, GenerationNotFound, OffsetConflict, StoreError

# The next offset of a log, from its last stream entry: -1 when the log does not exist, -2
# when it has ended (nothing may follow the end marker).
_NEXT_OFFSET_LUA = """
local function next_offset(log)
  local last = redis.call('XREVRANGE', log, '+', '-', 'COUNT', 1)
  if #last == 0 then return -1 end
  if last[1][2][1] == 'end' then return -2 end
  return tonumber(string.match(last[1][1], '%d+$'))
end
"""

# KEYS: chat, messages, log, lease, epoch, plan.
# ARGV: generation id, start chunk, history JSON, lease ms, log ttl ms, history ttl ms,
#       lease key prefix (the active generation's lease is found from its id, same slot),
#       expected revision ('' : any), plan.
_BEGIN_LUA = """
local active = redis.call('HGET', KEYS[1], 'active')
if active and redis.call('EXISTS', ARGV[7] .. active) == 1 then return {1, active} end
if redis.call('EXISTS', KEYS[3]) == 1 then return {2} end
local revision = tonumber(redis.call('HGET', KEYS[1], 'revision') or '0')
if ARGV[8] ~= '' and tonumber(ARGV[8]) ~= revision then return {3, revision} end
redis.call('HSET', KEYS[1], 'active', ARGV[1], 'last', ARGV[1], 'revision', revision + 1)
redis.call('HDEL', KEYS[1], 'last_ended_at')
redis.call('PEXPIRE', KEYS[1], ARGV[6])
redis.call('SET', KEYS[2], ARGV[3], 'PX', ARGV[6])
redis.call('XADD', KEYS[3], '0-1', 'c', ARGV[2])
redis.call('PEXPIRE', KEYS[3], ARGV[5])
redis.call('SET', KEYS[4], '1', 'PX', ARGV[4])
redis.call('SET', KEYS[5], '1', 'PX', ARGV[5])
redis.call('SET', KEYS[6], ARGV[9], 'PX', ARGV[5])
return {0}
"""

# KEYS: log, lease, epoch, plan, stop. ARGV: lease ms, log ttl ms.
# Returns {} when the lease is held or the log is gone or ended; else
# {epoch, plan, next offset, stop requested (0/1)}.
_CLAIM_LUA = (
    _NEXT_OFFSET_LUA
    + """
if redis.call('EXISTS', KEYS[2]) == 1 then return {} end
local next = next_offset(KEYS[1])
if next < 0 then return {} end
local epoch = redis.call('INCR', KEYS[3])
redis.call('PEXPIRE', KEYS[3], ARGV[2])
redis.call('SET', KEYS[2], epoch, 'PX', ARGV[1])
local plan = redis.call('GET', KEYS[4]) or ''
return {epoch, plan, next, redis.call('EXISTS', KEYS[5])}
"""
)

# KEYS: lease. ARGV: epoch. Deletes the lease only if it holds that epoch.
_RELEASE_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 0
"""

# Result codes of the append and end scripts: {code, next offset before the call}.
DONE, FENCED, NOT_FOUND, ENDED, CONFLICT = 0, 1, 2, 3, 4

# KEYS: log, lease. ARGV: first offset, epoch, lease ms, log ttl ms, notify channel,
# notify message, chunk... No chunk: a lease renewal, checked the same way. The epoch is
# checked in the same script as the offset: a fenced producer can never write (CONTRACT).
# A lease ms of 0: store the chunks without pushing the expiries forward (the writer renews
# once per renewal interval, not with every batch: two writes fewer per chunk at low rates).
_APPEND_LUA = (
    _NEXT_OFFSET_LUA
    + """
local first = tonumber(ARGV[1])
local count = #ARGV - 6
local next = next_offset(KEYS[1])
if next == -1 then return {2, next} end
if next == -2 then return {3, next} end
if redis.call('GET', KEYS[2]) ~= ARGV[2] then return {1, next} end
if count > 0 and first >= 1 and next == first + count then return {0, next} end
if next ~= first then return {4, next} end
for i = 7, #ARGV do
  redis.call('XADD', KEYS[1], '0-' .. (first + i - 6), 'c', ARGV[i])
end
if ARGV[3] ~= '0' then
  redis.call('PEXPIRE', KEYS[2], ARGV[3])
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
end
if count > 0 then redis.call('PUBLISH', ARGV[5], (first + count - 1) .. ' ' .. ARGV[6]) end
return {0, next}
"""
)

# The writer's whole batch in one script on a single server (a cluster runs `_APPEND_LUA`
# per log: the logs live in different slots). KEYS: log and lease of each log, in pairs.
# ARGV: lease ms, log ttl ms, notify channel, then per log: first offset, epoch, chunk
# count, renew (1: push the expiries forward, 0: not, as a lease ms of 0 above), notify
# message, chunks. Each log is checked and written exactly as `_APPEND_LUA`
# does; returns {code, next offset before the call} per log, and publishes one notification
# naming every log that got chunks.
_APPEND_BATCH_LUA = (
    _NEXT_OFFSET_LUA
    + """
local results, notices = {}, {}
local at = 4
for pair = 1, #KEYS / 2 do
  local log, lease = KEYS[2 * pair - 1], KEYS[2 * pair]
  local first, epoch, count = tonumber(ARGV[at]), ARGV[at + 1], tonumber(ARGV[at + 2])
  local renew, notice, chunks = ARGV[at + 3], ARGV[at + 4], at + 5
  at = chunks + count
  local code, next = 0, next_offset(log)
  if next == -1 then code = 2
  elseif next == -2 then code = 3
  elseif redis.call('GET', lease) ~= epoch then code = 1
  elseif count > 0 and first >= 1 and next == first + count then code = 0
  elseif next ~= first then code = 4
  else
    for i = 0, count - 1 do
      redis.call('XADD', log, '0-' .. (first + i + 1), 'c', ARGV[chunks + i])
    end
    if renew == '1' then
      redis.call('PEXPIRE', lease, ARGV[1])
      redis.call('PEXPIRE', log, ARGV[2])
    end
    if count > 0 then notices[#notices + 1] = (first + count - 1) .. ' ' .. notice end
  end
  results[#results + 1] = code
  results[#results + 1] = next
end
if #notices > 0 then redis.call('PUBLISH', ARGV[3], table.concat(notices, '\\n')) end
return results
"""
)

# KEYS: chat, messages, log, lease.
# ARGV: generation id, offset, outcome, now, log ttl ms, history ttl ms, epoch,
#       notify channel, notify message[, history JSON].
_END_LUA = """
local last = redis.call('XREVRANGE', KEYS[3], '+', '-', 'COUNT', 1)
if #last == 0 then return {2, -1} end
local offset = tonumber(ARGV[2])
if last[1][2][1] == 'end' then
  if last[1][1] == '0-' .. (offset + 1) and last[1][2][4] == ARGV[7] then return {0, offset} end
  return {3, -2}
end
local next = tonumber(string.match(last[1][1], '%d+$'))
if redis.call('GET', KEYS[4]) ~= ARGV[7] then return {1, next} end
if next ~= offset then return {4, next} end
redis.call('XADD', KEYS[3], '0-' .. (next + 1), 'end', ARGV[3], 'epoch', ARGV[7])
redis.call('PEXPIRE', KEYS[3], ARGV[5])
redis.call('DEL', KEYS[4])
local last_id = redis.call('HGET', KEYS[1], 'last')
if ARGV[10] and (last_id == ARGV[1] or not last_id) then
  redis.call('SET', KEYS[2], ARGV[10], 'PX', ARGV[6])
end
if redis.call('HGET', KEYS[1], 'active') == ARGV[1] then
  redis.call('HDEL', KEYS[1], 'active')
end
if last_id == ARGV[1] then
  redis.call('HSET', KEYS[1], 'last_ended_at', ARGV[4])
end
redis.call('HINCRBY', KEYS[1], 'revision', 1)
redis.call('PEXPIRE', KEYS[1], ARGV[6])
redis.call('PUBLISH', ARGV[8], next .. ' ' .. ARGV[9])
return {0, next}
"""

# KEYS: stop. ARGV: log ttl ms, channel. A script, so both go in one call on any client
# (redis-py 5's cluster client has no PUBLISH method).
_STOP_LUA = """
redis.call('SET', KEYS[1], '1', 'PX', ARGV[1])
redis.call('PUBLISH', ARGV[2], KEYS[1])
"""

# KEYS: lease. ARGV: epoch, lease ms. PEXPIRE never recreates a lapsed lease.
_RENEW_LUA = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""

# KEYS: stream, closed marker (or the stream again when there is none). ARGV: item, ttl ms,
# whether to check the marker ("1"/"0"), the channel to name the stream on, the entries to
# keep (MAXLEN; "0": all). Returns the new position (one past the last entry's, so trimming
# never reuses one), 0 when closed. The PUBLISH is in the script: one round trip, and a
# waiter is never told of an item the stream does not hold yet.
_PUSH_LUA = """
if ARGV[3] == '1' and redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)[1]
local n = 1
if last then n = tonumber(string.match(last[1], '%-(%d+)$')) + 1 end
if tonumber(ARGV[5]) > 0 then
  redis.call('XADD', KEYS[1], 'MAXLEN', ARGV[5], '0-' .. n, 'm', ARGV[1])
else
  redis.call('XADD', KEYS[1], '0-' .. n, 'm', ARGV[1])
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('PUBLISH', ARGV[4], KEYS[1])
return n
"""


# Deletes a chat's keys (all in the chat's slot) at once: KEYS are the chat's hash, its
# history, its feed and every other key of the chat found by SCAN.
_DELETE_CHAT_LUA = """
for i = 1, #KEYS do redis.call('UNLINK', KEYS[i]) end
return #KEYS
"""


class Script:
    """A Lua script called by SHA."""

    __slots__ = ("sha", "source")

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()


BEGIN = Script(_BEGIN_LUA)
APPEND = Script(_APPEND_LUA)
APPEND_BATCH = Script(_APPEND_BATCH_LUA)
END = Script(_END_LUA)
RENEW = Script(_RENEW_LUA)
STOP = Script(_STOP_LUA)
CLAIM = Script(_CLAIM_LUA)
RELEASE = Script(_RELEASE_LUA)
PUSH = Script(_PUSH_LUA)
DELETE_CHAT = Script(_DELETE_CHAT_LUA)
LOADED_AT_START = (BEGIN, APPEND, END, RENEW, STOP, CLAIM, RELEASE)
"""Loaded when the store starts; the others are loaded on their first NOSCRIPT."""


async def load(redis: Any, script: Script) -> None:
    # The cluster client sends SCRIPT LOAD to every primary on its own.
    await redis.script_load(script.source)


async def run(redis: Any, script: Script, keys: list[str], args: list[Any]) -> Any:
    try:
        return await redis.evalsha(script.sha, len(keys), *keys, *args)
    except NoScriptError:
        await load(redis, script)
        return await redis.evalsha(script.sha, len(keys), *keys, *args)


async def run_pipelined(
    redis: Any, script: Script, calls: list[tuple[list[str], list[Any]]]
) -> list[Any]:
    """One round trip (per node in a cluster) for many calls of one script; a failed call's
    reply is its exception."""
    for attempt in range(2):
        async with redis.pipeline(transaction=False) as pipe:
            for keys, args in calls:
                # execute_command, not pipe.evalsha: the cluster pipeline refuses the
                # method by name, yet routes the command by its keys (one slot each).
                pipe.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)
            replies: list[Any] = await pipe.execute(raise_on_error=False)
        if attempt == 0 and any(isinstance(reply, NoScriptError) for reply in replies):
            # A node without the script ran none of these calls: load, then run them
            # all again (each is idempotent).
            await load(redis, script)
            continue
        return replies
    return replies


def script_error(
    generation_id: str, offset: int, epoch: int, result: list[int]
) -> StoreError | None:
    """The error an append or end script's {code, next offset} reply stands for, if any."""
    code, next_offset = int(result[0]), int(result[1])
    if code == DONE:
        return None
    if code == FENCED:
        return Fenced(f"generation {generation_id}: epoch {epoch} does not hold the lease")
    if code == NOT_FOUND:
        return GenerationNotFound(generation_id)
    if code == ENDED:
        return OffsetConflict(f"generation {generation_id} has ended")
    return OffsetConflict(f"offset {offset} is not the next offset {next_offset}")
