"""Telegram's flood limits kept in Redis, shared by every replica of one bot.

The same three budgets as :mod:`bot.pacing` (Telegram counts them per bot, so replicas must
share them): calls per second overall, messages per rolling minute in one group, and one chat's
pace with its burst. Each is a Redis key, and a Lua script checks all of a call's budgets and
takes them in one step, so two replicas can never both take the last slot:

* a sliding window is a sorted set of calls scored by when they were answered; a call in
  flight is scored ``HOLD`` seconds ahead (it counts as in use, and a replica that dies while
  calling frees its slot after ``HOLD`` plus the window);
* a chat's pace is a token bucket (a hash of tokens and the time they were counted).

As in :mod:`bot.pacing`, a call counts from when its answer arrived, and the time in flight
refills nothing. The time is Redis's own (``TIME``), so the replicas' clocks do not matter.
Keys carry the bot id in a hash tag (one slot) and expire on their own when the bot is idle.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from bot.pacing import Grant, Limits

HOLD = 60.0  # seconds a call in flight is counted at most (then its replica is taken as dead)
GROUP_SPAN = 60.0
WAIT_FOR_FLIGHT = 0.05  # the window is full of calls in flight: look again this soon

_PRELUDE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local member = ARGV[1]
local is_group = ARGV[2] == '1'
local burst = tonumber(ARGV[3])
"""

_ACQUIRE = (
    _PRELUDE
    + """
local g_limit, g_span = tonumber(ARGV[4]), tonumber(ARGV[5])
local rate = tonumber(ARGV[6])
local p_limit, p_span = tonumber(ARGV[7]), tonumber(ARGV[8])
local hold, eps = tonumber(ARGV[9]), 0.002

local function window_wait(key, limit, span)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - span)
  local used = redis.call('ZCARD', key)
  if used < limit then return 0 end
  local entry = redis.call('ZRANGE', key, used - limit, used - limit, 'WITHSCORES')
  local at = tonumber(entry[2])
  if at > now then return -1 end
  return at + span - now + eps
end

local wait = window_wait(KEYS[1], g_limit, g_span)
if wait ~= 0 then return {0, tostring(wait), 1} end

local tokens = tonumber(redis.call('HGET', KEYS[2], 't') or burst)
local last = tonumber(redis.call('HGET', KEYS[2], 'l') or now)
local available = math.min(burst, tokens + math.max(0, now - last) * rate)
wait = 0
if available < 1 then wait = (1 - available) / rate + eps end
if is_group then
  local group_wait = window_wait(KEYS[3], p_limit, p_span)
  if group_wait < 0 then return {0, '-1', 0} end
  wait = math.max(wait, group_wait)
end
if wait > 0 then return {0, tostring(wait), 0} end

redis.call('ZADD', KEYS[1], now + hold, member)
redis.call('PEXPIRE', KEYS[1], math.ceil((g_span + hold) * 1000))
redis.call('HSET', KEYS[2], 't', tostring(available - 1), 'l', tostring(now))
redis.call('PEXPIRE', KEYS[2], math.ceil((burst / rate + hold) * 1000))
if is_group then
  redis.call('ZADD', KEYS[3], now + hold, member)
  redis.call('PEXPIRE', KEYS[3], math.ceil((p_span + hold) * 1000))
end
return {1, '0', 0}
"""
)

_RELEASE = (
    _PRELUDE
    + """
if redis.call('ZSCORE', KEYS[1], member) then redis.call('ZADD', KEYS[1], 'XX', now, member) end
if is_group and redis.call('ZSCORE', KEYS[3], member) then
  redis.call('ZADD', KEYS[3], 'XX', now, member)
end
local last = tonumber(redis.call('HGET', KEYS[2], 'l'))
if last and last < now then redis.call('HSET', KEYS[2], 'l', tostring(now)) end
return 1
"""
)

_CANCEL = (
    _PRELUDE
    + """
redis.call('ZREM', KEYS[1], member)
if is_group then redis.call('ZREM', KEYS[3], member) end
local tokens = tonumber(redis.call('HGET', KEYS[2], 't'))
if tokens then redis.call('HSET', KEYS[2], 't', tostring(math.min(burst, tokens + 1))) end
return 1
"""
)


@dataclass
class RedisTicket:
    chat_id: int
    member: str
    open: bool = True


class RedisBudget:
    """The sender's budget (:class:`bot.pacing.Budget`) in Redis, shared by all replicas."""

    def __init__(
        self,
        redis: Redis,
        limits: Limits,
        *,
        bot_id: int,
        prefix: str = "whistle",
        group_span: float = GROUP_SPAN,
    ) -> None:
        self.redis = redis
        self.limits = limits
        self.prefix = f"{prefix}:{{{bot_id}}}:pace"
        self.group_span = group_span  # Telegram's minute (shorter only in tests)
        if limits.global_per_second >= 1:
            self.global_limit, self.global_span = max(1, round(limits.global_per_second)), 1.0
        else:
            self.global_limit, self.global_span = 1, 1.0 / limits.global_per_second
        self._acquire = redis.register_script(_ACQUIRE)
        self._release = redis.register_script(_RELEASE)
        self._cancel = redis.register_script(_CANCEL)

    def _keys(self, chat_id: int) -> list[str]:
        return [
            f"{self.prefix}:all",
            f"{self.prefix}:chat:{chat_id}",
            f"{self.prefix}:group:{chat_id}",
        ]

    def _args(self, chat_id: int, member: str) -> list[Any]:
        return [member, "1" if chat_id < 0 else "0", max(1, self.limits.burst)]

    async def acquire(self, chat_id: int) -> Grant:
        member = uuid.uuid4().hex
        limits = self.limits
        granted, wait, overall = await self._acquire(
            keys=self._keys(chat_id),
            args=[
                *self._args(chat_id, member),
                self.global_limit,
                self.global_span,
                limits.private_per_second,
                max(1, limits.group_per_minute),
                self.group_span,
                HOLD,
            ],
        )
        if int(granted):
            return Grant(ticket=RedisTicket(chat_id, member))
        seconds = float(wait)
        return Grant(wait=WAIT_FOR_FLIGHT if seconds < 0 else seconds, overall=bool(int(overall)))

    async def release(self, ticket: Any) -> None:
        await self._finish(ticket, self._release)

    async def cancel(self, ticket: Any) -> None:
        await self._finish(ticket, self._cancel)

    async def _finish(self, ticket: Any, script: Any) -> None:
        assert isinstance(ticket, RedisTicket)
        if not ticket.open:
            return
        ticket.open = False
        await script(
            keys=self._keys(ticket.chat_id), args=self._args(ticket.chat_id, ticket.member)
        )

    async def close(self) -> None:
        return None
