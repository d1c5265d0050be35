"""
The two Lua scripts that make a Redis-shared limiter atomic, and the arguments they take.

Everything that decides an admission runs inside Redis, in one script, on Redis's clock
(``TIME``): no read-then-write race between processes, and no clock of any client machine is
ever compared with another's. Times are whole microseconds, exact in Lua's doubles.
"""

from __future__ import annotations

import math
from typing import Final

from .._ratelimit import RateLimit

__all__ = ["PAUSE", "RESERVE", "pause_args", "reserve_args"]

RETENTION_FLOOR: Final = 120.0
"""
Seconds of admissions kept at least, whatever this limiter's own windows: processes sharing a
namespace with different limits (a rolling change of `RateLimit`) still find the history their
own per-minute window needs.
"""

RESERVE: Final = """
-- Book the earliest admission that fits every window, the spacing and any pause.
-- KEYS[1] the admission log (sorted set, score = admission in us); KEYS[2] the pause (us).
-- ARGV[1] this request's member; ARGV[2] the admission it already holds (us), 0 if none;
-- ARGV[3] spacing (us); ARGV[4] how long admissions are kept (us);
-- ARGV[5], ARGV[6], ...: count and length (us) of each window.
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local pause = tonumber(redis.call('GET', KEYS[2]) or '0')
local held = tonumber(ARGV[2])
if held > 0 then
  -- Woken at its admission: it stands unless a 429 paused everyone past it meanwhile, or
  -- the booking is gone (a Redis restarted without its data): then it books again.
  if pause <= held and redis.call('ZSCORE', KEYS[1], ARGV[1]) then
    return {math.max(0, held - now), held}
  end
  redis.call('ZREM', KEYS[1], ARGV[1])
end
local admit = math.max(now, pause)
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
if last[2] then
  admit = math.max(admit, tonumber(last[2]) + tonumber(ARGV[3]))
end
for i = 5, #ARGV, 2 do
  local count = tonumber(ARGV[i])
  local nth = redis.call('ZRANGE', KEYS[1], -count, -count, 'WITHSCORES')
  if nth[2] then
    admit = math.max(admit, tonumber(nth[2]) + tonumber(ARGV[i + 1]))
  end
end
local keep = tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('(%.0f', now - keep))
redis.call('ZADD', KEYS[1], string.format('%.0f', admit), ARGV[1])
redis.call('PEXPIRE', KEYS[1], string.format('%.0f', math.ceil((admit - now + keep) / 1000)))
return {admit - now, admit}
"""

PAUSE: Final = """
-- Hold every admission for ARGV[1] us from now, never shortening a longer pause.
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local wait = tonumber(ARGV[1])
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if now + wait > current then
  redis.call('SET', KEYS[1], string.format('%.0f', now + wait),
             'PX', string.format('%.0f', math.ceil(wait / 1000) + 1000))
  return now + wait
end
return current
"""


def _us(seconds: float) -> int:
    # Rounded up: a window or a spacing a microsecond long errs on the slow side.
    return math.ceil(seconds * 1_000_000)


def reserve_args(limit: RateLimit, member: str, held: int) -> list[str | int]:
    """
    `RESERVE`'s ARGV for `limit`: the same windows and spacing as `SlidingWindowLimiter`.

    >>> reserve_args(RateLimit(per_second=50, per_minute=None), "m", 0)
    ['m', 0, 21000, 120000000, 50, 1050000]
    """
    windows = limit.windows()
    spacing = 0.0 if limit.burst else min((s / n for n, s in windows), default=0.0)
    keep = max([RETENTION_FLOOR, *(seconds for _count, seconds in windows)])
    args: list[str | int] = [member, held, _us(spacing), _us(keep)]
    for count, seconds in windows:
        args += [count, _us(seconds)]
    return args


MAX_PAUSE: Final = 86_400.0
"""The longest pause recorded, in seconds: an absurd ``Retry-After`` is not an eternity."""


def pause_args(seconds: float) -> list[int]:
    """
    `PAUSE`'s ARGV: the wait in microseconds (none for a negative or NaN one).

    >>> pause_args(1.5), pause_args(-1.0), pause_args(float("inf"))
    ([1500000], [0], [86400000000])
    """
    return [_us(min(MAX_PAUSE, seconds) if seconds > 0 else 0.0)]
