"""The Lua scripts of the Redis presence (`hub.presence_redis`): every change to a room's
keys is one script, so racing processes see each change whole.

Room scripts take KEYS = conns, counts, info, departing, departed, participants, staff
(see `hub.presence_redis` for what each holds; one hash tag, so one Redis Cluster slot)
and ARGV[1] = the room. Times are the Redis
server's clock in ms; `life` is how long an entry or a departure lives unrefreshed, and
`lease` when this process's entries expire (what its last refresh gave them).
"""

from __future__ import annotations

_CLOCK = """
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
-- A new entry expires with the process's others (its lease), so that a dead process's
-- entries all go at once; unless less than a refresh interval (life / 4) is left of it.
local function expiry(lease, life)
  if tonumber(lease) - now >= tonumber(life) / 4 then return tonumber(lease) end
  return now + life
end
"""

# Shared by the room scripts: the clock, and the two states a member can end in.
_ROOM = (
    _CLOCK
    + """
local room = ARGV[1]
-- The member became present: listed by kind, scored in microseconds so that joins within
-- one millisecond keep their order.
local function list_member(member, participant)
  redis.call('ZADD', participant and KEYS[6] or KEYS[7], t[1] * 1000000 + t[2], member)
end
-- The member's last connection is gone: it departs, and whoever gets this answer writes
-- its participant_left and then settles it (unless it is departing already). `departed`
-- keeps its info for as long as the log's last word on it is that participant_left.
local function depart(member, life)
  redis.call('HDEL', KEYS[2], member)
  local info = redis.call('HGET', KEYS[3], member) or '{}'
  redis.call('HDEL', KEYS[3], member)
  redis.call('ZREM', KEYS[6], member)
  redis.call('ZREM', KEYS[7], member)
  if redis.call('ZSCORE', KEYS[4], member) then return false end
  redis.call('ZADD', KEYS[4], now + life, member)
  redis.call('HSET', KEYS[5], member, info)
  return info
end
-- (The room index is kept by the process, outside the scripts: see hub.presence_redis.)
local function keep_keys(ttl)
  for i = 1, 7 do redis.call('PEXPIRE', KEYS[i], ttl) end
end
"""
)

# ARGV: room, field, member_key, info json, life, key ttl, lease, participant (1/0),
# participant limit (-1: none). Returns {admitted, first, expiry, participant count}:
# admitted 0 when the member is a new participant and the room holds `limit` of them
# (then nothing is registered); first 1 when the member was absent; the entry's expiry
# (a new lease if it started one).
JOIN = (
    _ROOM
    + """
local participant = ARGV[8] == '1'
local limit = tonumber(ARGV[9])
if participant and limit >= 0 and tonumber(redis.call('HGET', KEYS[2], ARGV[3]) or '0') <= 0 then
  local count = redis.call('ZCARD', KEYS[6])
  if count >= limit then return {0, 0, 0, count} end
end
local first = 0
local expires = expiry(ARGV[7], ARGV[5])
if redis.call('ZADD', KEYS[1], expires, ARGV[2]) == 1
    and redis.call('HINCRBY', KEYS[2], ARGV[3], 1) == 1 then
  redis.call('HSET', KEYS[3], ARGV[3], ARGV[4])
  list_member(ARGV[3], participant)
  -- Back while its departure is written: `settle` tells, after the participant_left.
  if not redis.call('ZSCORE', KEYS[4], ARGV[3]) then
    first = 1
    redis.call('HDEL', KEYS[5], ARGV[3])
  end
end
keep_keys(ARGV[6])
return {1, first, expires, redis.call('ZCARD', KEYS[6])}
"""
)

# ARGV: room, field, member_key, life. 1: the member departed with this connection.
REMOVE = (
    _ROOM
    + """
if redis.call('ZREM', KEYS[1], ARGV[2]) == 0 then return 0 end
local gone = 0
if redis.call('HINCRBY', KEYS[2], ARGV[3], -1) <= 0 and depart(ARGV[3], ARGV[4]) then gone = 1 end
return gone
"""
)

# ARGV: room, member_key. The member's info if it is back, else nil.
SETTLE = (
    _ROOM
    + """
if redis.call('ZREM', KEYS[4], ARGV[2]) == 0 then return false end  -- a reaper took it over
local back = false
if tonumber(redis.call('HGET', KEYS[2], ARGV[2]) or '0') > 0 then
  back = redis.call('HGET', KEYS[3], ARGV[2])
  redis.call('HDEL', KEYS[5], ARGV[2])
end
return back
"""
)

# ARGV: room, life, key ttl, n, then n departing member keys this process writes, then
# the fields of this process's connections (whose joins answered). Extends them all;
# returns the new expiry, then the fields Redis does not hold (reaped after a stall, or
# lost in a restart): the process registers those again with RESTORE. A field is only
# extended, never added: a join still in flight registers itself (and answers `first`).
EXTEND = (
    _ROOM
    + """
local expires = now + ARGV[2]
local out = {expires}
local n = tonumber(ARGV[4])
for i = 5, 4 + n do redis.call('ZADD', KEYS[4], 'XX', expires, ARGV[i]) end
for i = 5 + n, #ARGV do
  if redis.call('ZADD', KEYS[1], 'XX', 'CH', expires, ARGV[i]) == 0 then table.insert(out, ARGV[i]) end
end
keep_keys(ARGV[3])
return out
"""
)

# ARGV: room, life, then (field, member_key, info json, participant 1/0)* of this
# process's connections that EXTEND found missing: registered again, since each
# connection is in fact alive. Returns (member_key, info)* of the members that brings
# back whose participant_left was written (the process stalled and was reaped); not those
# still departing (their writer tells of the return) nor those never written as left
# (Redis lost its keys).
RESTORE = (
    _ROOM
    + """
local back = {}
for i = 3, #ARGV, 4 do
  if redis.call('ZADD', KEYS[1], now + ARGV[2], ARGV[i]) == 1
      and redis.call('HINCRBY', KEYS[2], ARGV[i + 1], 1) == 1 then
    redis.call('HSET', KEYS[3], ARGV[i + 1], ARGV[i + 2])
    list_member(ARGV[i + 1], ARGV[i + 3] == '1')
    if not redis.call('ZSCORE', KEYS[4], ARGV[i + 1])
        and redis.call('HDEL', KEYS[5], ARGV[i + 1]) == 1 then
      table.insert(back, ARGV[i + 1])
      table.insert(back, ARGV[i + 2])
    end
  end
end
return back
"""
)

# ARGV: room, limit, life. Returns (present 0/1, member_key, info json)*: members whose
# last connection expired (0: their departure is now this caller's to write), and
# departures whose writer died before settling them (1: the member is back, write its
# return; 0: absent, write the departure again, now as this caller's).
REAP = (
    _ROOM
    + """
local out = {}
for _, field in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, ARGV[2])) do
  redis.call('ZREM', KEYS[1], field)
  local member = string.sub(field, 1, string.find(field, '\\31', 1, true) - 1)
  if redis.call('HINCRBY', KEYS[2], member, -1) <= 0 then
    local info = depart(member, ARGV[3])
    if info then
      table.insert(out, 0); table.insert(out, member); table.insert(out, info)
    end
  end
end
for _, member in ipairs(redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', now, 'LIMIT', 0, ARGV[2])) do
  if tonumber(redis.call('HGET', KEYS[2], member) or '0') > 0 then
    redis.call('ZREM', KEYS[4], member)
    redis.call('HDEL', KEYS[5], member)
    table.insert(out, 1); table.insert(out, member)
    table.insert(out, redis.call('HGET', KEYS[3], member) or '{}')
  else
    redis.call('ZADD', KEYS[4], now + ARGV[3], member)
    table.insert(out, 0); table.insert(out, member)
    table.insert(out, redis.call('HGET', KEYS[5], member) or '{}')
  end
end
return out
"""
)

# KEYS: participants, staff, info. ARGV: limit.
# Returns {participant count, first `limit` participants' info, first `limit` staff's info}.
ROSTER = """
local limit = tonumber(ARGV[1])
local out = {redis.call('ZCARD', KEYS[1])}
for k = 1, 2 do
  local infos = {}
  if limit > 0 then
    local keys = redis.call('ZRANGE', KEYS[k], 0, limit - 1)
    if #keys > 0 then infos = redis.call('HMGET', KEYS[3], unpack(keys)) end
  end
  table.insert(out, infos)
end
return out
"""

# KEYS: index. ARGV: key ttl, then rooms. Enters the rooms, stamped with this node's clock (s).
ENTER_ROOMS = """
local now = tonumber(redis.call('TIME')[1])
for i = 2, #ARGV do redis.call('ZADD', KEYS[1], now, ARGV[i]) end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 0
"""

# KEYS: index. ARGV: key ttl. Drops rooms nobody entered for that long (their keys have
# expired by then), answers the rest.
INDEXED_ROOMS = """
local now = tonumber(redis.call('TIME')[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - math.ceil(ARGV[1] / 1000) - 1)
return redis.call('ZRANGE', KEYS[1], 0, -1)
"""

# User slots: each user's and its account's pool are one key each, under the account's
# hash tag (one Redis Cluster slot), so one script claims in all of them together.
# KEYS: slots. ARGV: field, life, key ttl, lease, then one limit per key. Returns {the
# slots' expiry, 0} when admitted in every pool, {0, i} when pool i is full (then nothing
# is registered). A field already present is admitted again (a retried claim must not
# count twice).
CLAIM = (
    _CLOCK
    + """
for i = 1, #KEYS do
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now)
  if not redis.call('ZSCORE', KEYS[i], ARGV[1]) then
    if redis.call('ZCARD', KEYS[i]) >= tonumber(ARGV[4 + i]) then return {0, i} end
  end
end
local expires = expiry(ARGV[4], ARGV[2])
for i = 1, #KEYS do
  redis.call('ZADD', KEYS[i], expires, ARGV[1])
  redis.call('PEXPIRE', KEYS[i], ARGV[3])
end
return {expires, 0}
"""
)

# KEYS: slots. ARGV: field. Frees the field's slot in each pool.
RELEASE = """
for i = 1, #KEYS do redis.call('ZREM', KEYS[i], ARGV[1]) end
return 0
"""

# KEYS: slots (pools of one account: one hash tag). ARGV: life, key ttl, then for each key
# the number of fields and the fields. Like RESTORE, it registers again a slot that
# expired meanwhile: its connection is alive (a stall, a Redis restart). Returns the new
# expiry.
REFRESH_SLOTS = """
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local expires = now + ARGV[1]
local i = 3
for k = 1, #KEYS do
  local n = tonumber(ARGV[i])
  for j = i + 1, i + n do redis.call('ZADD', KEYS[k], expires, ARGV[j]) end
  redis.call('PEXPIRE', KEYS[k], ARGV[2])
  i = i + n + 1
end
return expires
"""
