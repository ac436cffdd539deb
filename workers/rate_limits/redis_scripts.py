"""The Lua scripts of the Redis backend: the rules of schedule.py and adaptive.py, each call atomic.

KEYS[1] is the account's hash (`tat`, `last`, the newest due time granted, `margin` and `span`, the last
booking's, `seq`, the number of the next grant, `checked`, the newest grant number a slot was checked
against, and the adaptive `f0`, `t0`, `halved`); KEYS[2] the log of the last grants' due times plus their
margins, each at least the one before it, oldest first. A new state's grant numbers start at the server's
time in microseconds: past every number of an earlier state of the key (at most 100,000 grants a second).
Times are seconds of the Redis server's clock (TIME), so workers on hosts with skewed clocks agree;
ARGV[1] overrides it when not empty (tests only). Numbers travel and are stored as strings of 17 significant
digits (exact doubles): a Lua number returned to Redis would be truncated to an integer.

The policy is written into the script's text (`scripts(policy, idle_grace)`): a limiter's policy never
changes, and fewer arguments make a cheaper call. ARGV[2..] are the call's own arguments.
"""

from __future__ import annotations

from dataclasses import asdict
from string import Template

from workers.rate_limits.base import Policy

PRELUDE = """
if redis.replicate_commands then redis.replicate_commands() end  -- TIME before writes (Redis < 5)
local now
if ARGV[1] ~= '' then
  now = tonumber(ARGV[1])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local SAFETY, BURST = $safety, $burst
local STEP, PERIOD = $recovery_step, $recovery_period
local COOLDOWN, MIN_FACTOR, GRACE = $throttle_cooldown, $min_factor, $idle_grace
local function fmt(x) return string.format('%.17g', x) end  -- round-trips a double
local state = redis.call('HMGET', KEYS[1], 'tat', 'f0', 't0', 'halved')
local tat, f0, t0, halved = tonumber(state[1]), tonumber(state[2]), tonumber(state[3]), tonumber(state[4])
local function recovered()
  if not f0 or not t0 then return 1 end
  return math.min(1, f0 + STEP * math.floor(math.max(0, now - t0) / PERIOD))
end
local function quiet_at()
  local at = now
  if f0 and t0 then at = math.max(at, t0 + math.ceil((1 - f0) / STEP - 1e-9) * PERIOD) end
  if halved then at = math.max(at, halved + COOLDOWN) end
  return at
end
local function ttl_ms(until_at) return math.max(1, math.ceil((until_at - now + GRACE) * 1000)) end
"""

# ARGV[2..6]: rate, count, spaced (1/0), horizon (s), margin (s; at most SAFETY).
# Returns {taken 1/0, factor, now, number of the first slot, due offset of each slot from now...}.
BOOK = PRELUDE + """
local factor = recovered()
local rate = tonumber(ARGV[2]) * factor
local margin = math.min(tonumber(ARGV[6]), SAFETY)
local slots, span
if rate >= 1 then
  slots, span = math.floor(rate + 1e-9), 1
else
  slots, span = 1, 1 / rate
end
local window = span + margin
local interval = window / slots
local count = tonumber(ARGV[3])
local horizon = tonumber(ARGV[5])
local numbers = redis.call('HMGET', KEYS[1], 'last', 'seq', 'checked')
local seq = tonumber(numbers[2]) or math.floor(now * 1000000)
local checked = tonumber(numbers[3]) or -1
local reply = {'0', fmt(factor), fmt(now), fmt(seq)}
if count > slots then
  for j = 1, count do reply[4 + j] = 'inf' end
  return reply
end
local logged = redis.call('LLEN', KEYS[2])
local base = logged - slots
local older = {}
if base + count - 1 >= 0 then
  local first = math.max(base, 0)
  local entries = redis.call('LRANGE', KEYS[2], first, base + count - 1)
  for i = 1, #entries do older[first + i - base] = tonumber(entries[i]) end
end
local previous = tonumber(numbers[1]) or now
tat = tat or now
local dues = {}
if ARGV[4] == '1' then
  for j = 1, count do
    local due = math.max(now, previous, tat - (BURST - 1) * interval)
    if older[j] then due = math.max(due, older[j] + span) end
    tat = math.max(tat, due) + interval
    previous = due
    dues[j] = due
  end
else
  local due = math.max(now, previous, tat - (math.max(BURST, count) - count) * interval)
  if older[count] then due = math.max(due, older[count] + span) end
  tat = math.max(tat, due) + count * interval
  for j = 1, count do dues[j] = due end
end
for j = 1, count do reply[4 + j] = fmt(dues[j] - now) end
if dues[1] - now > horizon then return reply end
reply[1] = '1'
if base + count - 1 >= 0 then checked = math.max(checked, seq - logged + base + count - 1) end
local top = tonumber(redis.call('LINDEX', KEYS[2], -1) or '') or -math.huge
for first = 1, count, 1000 do  -- unpack() of a long list would overflow Lua's stack
  local stamps = {}
  for j = first, math.min(count, first + 999) do
    top = math.max(top, dues[j] + margin)
    stamps[#stamps + 1] = fmt(top)
  end
  redis.call('RPUSH', KEYS[2], unpack(stamps))
end
redis.call('LTRIM', KEYS[2], -slots, -1)
redis.call('HSET', KEYS[1], 'tat', fmt(tat), 'last', fmt(dues[count]), 'margin', fmt(margin), 'span', fmt(span),
           'seq', fmt(seq + count), 'checked', fmt(checked))
local ttl = ttl_ms(math.max(tat, top + span, quiet_at()))
redis.call('PEXPIRE', KEYS[1], ttl)
redis.call('PEXPIRE', KEYS[2], ttl)
return reply
"""

# ARGV[2..3]: the slot's number, within (s). Returns 1 when its entry, and every newer one below it, now
# reaches `within` from now; 0, changing nothing, when a slot was checked against it or a newer one already.
EXTEND = PRELUDE + """
local seq, within = tonumber(ARGV[2]), tonumber(ARGV[3])
local numbers = redis.call('HMGET', KEYS[1], 'seq', 'checked', 'span')
local next_seq, checked, span = tonumber(numbers[1]), tonumber(numbers[2]) or -1, tonumber(numbers[3]) or 1
if not next_seq then return 0 end
local logged = redis.call('LLEN', KEYS[2])
local index = seq - (next_seq - logged)
if seq <= checked or index < 0 or index >= logged then return 0 end
local reach = now + within
local entries = redis.call('LRANGE', KEYS[2], index, -1)
for i = 1, #entries do  -- entries never fall below an older one
  if tonumber(entries[i]) >= reach then break end
  redis.call('LSET', KEYS[2], index + i - 1, fmt(reach))
end
local ttl = ttl_ms(reach + span)
for _, key in ipairs(KEYS) do redis.call('PEXPIRE', key, math.max(redis.call('PTTL', key), ttl)) end
return 1
"""

# Returns the new effective fraction of the configured rate.
THROTTLE = PRELUDE + """
local fraction = recovered()
if halved and now - halved >= 0 and now - halved < COOLDOWN then
  f0 = fraction  -- an answer to a message sent before the last halving: only the clean time restarts
else
  f0, halved = math.max(MIN_FACTOR, fraction / 2), now
end
t0 = now
redis.call('HSET', KEYS[1], 'f0', fmt(f0), 't0', fmt(t0), 'halved', fmt(halved))
redis.call('PEXPIRE', KEYS[1], math.max(redis.call('PTTL', KEYS[1]), ttl_ms(quiet_at())))
return fmt(f0)
"""

# Returns the effective fraction of the configured rate now.
FACTOR = PRELUDE + """
return fmt(recovered())
"""


def scripts(policy: Policy, idle_grace: float) -> dict[str, str]:
    """The Lua text of each script ("book", "extend", "throttle", "factor") for this policy."""
    values = {name: repr(float(value)) for name, value in asdict(policy).items()}
    values["idle_grace"] = repr(float(idle_grace))
    return {name: Template(text).substitute(values)
            for name, text in (("book", BOOK), ("extend", EXTEND), ("throttle", THROTTLE),
                                       ("factor", FACTOR))}
