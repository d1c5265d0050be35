"""
The Lua script that makes `RedisLedger` atomic: `_ledger`'s rules, run inside Redis.

One script, one key per idempotency key (a hash), every change on Redis's own clock (``TIME``,
whole milliseconds): two processes claiming one key cannot both be granted it, and no
machine's clock is compared with another's. The hash expires ``ttl`` after its last change.
"""

from __future__ import annotations

from typing import Final

__all__ = ["LEDGER"]

LEDGER: Final = """
-- KEYS[1] the entry (a hash). ARGV[1] the operation; ARGV[2] ttl (ms); ARGV[3] lease (ms);
-- then per operation: claim fingerprint, owner, resend ('1'/'0'); renew owner;
-- settle owner, state, request id, result; release owner; get nothing.
-- Replies {} for no entry, else {fp, state, owner, lease, rid, result, resending, created,
-- updated, expires, lapsed}, times in ms on Redis's clock; lapsed '1' when this very call
-- found a claim past its lease.
local k = KEYS[1]
local op = ARGV[1]
local ttl = tonumber(ARGV[2])
local lease = tonumber(ARGV[3])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)

local function load()
  local flat = redis.call('HGETALL', k)
  if #flat == 0 then return nil end
  local e = {}
  for i = 1, #flat, 2 do e[flat[i]] = flat[i + 1] end
  return e
end

-- A claim whose holder stopped renewing it may have sent: it reads UNKNOWN from now on.
local lapsed = '0'
local function lapse(e)
  if e and e.state == 'sending' and tonumber(e.lease) <= now then
    redis.call('HSET', k, 'state', 'unknown', 'updated', now, 'resending', '0')
    redis.call('HDEL', k, 'owner', 'lease')
    lapsed = '1'  -- told to this caller only: the hash does not keep it
    return load()
  end
  return e
end

local function reply(e)
  if not e then return {} end
  local left = redis.call('PTTL', k)
  return {e.fp, e.state, e.owner or '', e.lease or '', e.rid or '', e.result or '',
          e.resending or '0', e.created, e.updated, tostring(now + math.max(left, 0)), lapsed}
end

if op == 'get' then
  return reply(lapse(load()))
elseif op == 'claim' then
  local e = lapse(load())
  local free = (e == nil) or e.state == 'failed'
  local takeover = e ~= nil and e.state == 'unknown' and ARGV[6] == '1' and e.fp == ARGV[4]
  if free or takeover then
    local created = now
    if takeover then created = e.created end
    redis.call('DEL', k)
    redis.call('HSET', k, 'fp', ARGV[4], 'state', 'sending', 'owner', ARGV[5],
               'lease', now + lease, 'resending', takeover and '1' or '0',
               'created', created, 'updated', now)
    redis.call('PEXPIRE', k, ttl)
    e = load()
  end
  return reply(e)
elseif op == 'renew' then
  local e = load()
  if e and e.state == 'sending' and e.owner == ARGV[4] and tonumber(e.lease) > now then
    redis.call('HSET', k, 'lease', now + lease)
    -- Never expires under its holder, however long the call takes.
    redis.call('PEXPIRE', k, ttl)
  end
  return {}
elseif op == 'settle' then
  local e = load()
  if not e then return {} end
  local state = ARGV[5]
  local held = e.state == 'sending' and e.owner == ARGV[4]
  local lapsed = e.state == 'unknown' and state == 'created'
  if not (held or lapsed) then return {} end
  -- A resend that failed proves nothing of the earlier send, which may have created it.
  if held and e.resending == '1' and state == 'failed' then state = 'unknown' end
  redis.call('HSET', k, 'state', state, 'updated', now, 'resending', '0')
  redis.call('HDEL', k, 'owner', 'lease')
  if state == 'created' then
    redis.call('HSET', k, 'rid', ARGV[6], 'result', ARGV[7])
  else
    redis.call('HDEL', k, 'rid', 'result')
  end
  redis.call('PEXPIRE', k, ttl)
  return {}
elseif op == 'release' then
  local e = load()
  if e and e.state == 'sending' and e.owner == ARGV[4] then
    if e.resending == '1' then
      redis.call('HSET', k, 'state', 'unknown', 'updated', now, 'resending', '0')
      redis.call('HDEL', k, 'owner', 'lease')
    else
      redis.call('DEL', k)
    end
  end
  return {}
end
return redis.error_reply('unknown ledger operation')
"""
