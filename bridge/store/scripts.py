"""Lua scripts: each OCPI write, its index entries and its change event in one atomic step.

Doing the stale check, the write, the index update and the XADD in one script
means a concurrent writer can never interleave, a crash can never leave an
object without its event, and a write costs one round trip.
"""

from __future__ import annotations

# KEYS: 1 object hash, 2 party index, 3 module index, 4 events stream
# ARGV: 1 guard field, 2 new guard ms,
#       3 precondition ("" | "exists" | "absent" | "cas:<ms>" | "has:<field>" | "newer":
#         an equal last_updated counts as stale too: a sync re-reading what we have),
#       4 mode ("put" replaces the hash, "merge" sets fields), 5 party-index member,
#       6 module-index member, 7 object lu ms, 8 object lu string, 9 stream maxlen,
#       10 n field pairs, then the pairs, then event field/value pairs.
# Returns 2 written and new (the guard field was absent: a new object, EVSE or
# connector; the receiver answers 201), 1 written over a stored one, 0 stale (ignored),
# -1 precondition failed (cas mismatch or missing/existing object).
WRITE = """
local key = KEYS[1]
local guard = ARGV[1]
local new_guard = tonumber(ARGV[2])
local pre = ARGV[3]
local stored = redis.call('HGET', key, guard)
if pre == 'exists' then
  if redis.call('HEXISTS', key, 'd') == 0 then return -1 end
elseif pre == 'absent' then
  if redis.call('EXISTS', key) == 1 then return -1 end
elseif string.sub(pre, 1, 4) == 'has:' then
  if redis.call('HEXISTS', key, string.sub(pre, 5)) == 0 then return -1 end
elseif string.sub(pre, 1, 4) == 'cas:' then
  if (stored or '0') ~= string.sub(pre, 5) then return -1 end
end
if stored and tonumber(stored) > new_guard then return 0 end
if pre == 'newer' and stored and tonumber(stored) >= new_guard then return 0 end
if ARGV[4] == 'put' then redis.call('DEL', key) end
local n = tonumber(ARGV[10])
local i = 11
local fields = {}
for _ = 1, n do
  table.insert(fields, ARGV[i]); table.insert(fields, ARGV[i + 1])
  i = i + 2
end
if n > 0 then redis.call('HSET', key, unpack(fields)) end
local lu = tonumber(ARGV[7])
local stored_lu = tonumber(redis.call('HGET', key, 'lu') or '0')
if ARGV[4] == 'put' or lu > stored_lu then
  redis.call('HSET', key, 'lu', ARGV[7], 'lus', ARGV[8])
  stored_lu = lu
end
redis.call('ZADD', KEYS[2], stored_lu, ARGV[5])
redis.call('ZADD', KEYS[3], stored_lu, ARGV[6])
local event = {}
for j = i, #ARGV do table.insert(event, ARGV[j]) end
redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[9], '*', unpack(event))
if stored then return 1 end
return 2
"""

# KEYS: 1 object hash, 2 party index, 3 module index, 4 events stream
# ARGV: 1 party-index member, 2 module-index member, 3 stream maxlen, then event pairs.
# Returns 1 deleted, 0 unknown.
DELETE = """
if redis.call('DEL', KEYS[1]) == 0 then return 0 end
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[2])
local event = {}
for j = 4, #ARGV do table.insert(event, ARGV[j]) end
redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[3], '*', unpack(event))
return 1
"""
