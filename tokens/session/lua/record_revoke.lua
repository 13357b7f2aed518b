-- Mark a session revoked (ARGV[1] = 1) or its subject deleted (2), on its
-- packed record (record.go). Never downgrades a deletion.
-- KEYS[1]: the record.
-- Returns 0 for a missing session, else {ended, the record as it is now}:
-- ended is 1 when the session was active until now.
local v = redis.call('GET', KEYS[1])
if not v then return 0 end
local x, to = string.byte(v, 5), tonumber(ARGV[1])
if x >= to then return {0, v} end
v = string.sub(v, 1, 4) .. string.char(to) .. string.sub(v, 6)
redis.call('SET', KEYS[1], v, 'KEEPTTL')
if x == 0 then return {1, v} end
return {0, v}
