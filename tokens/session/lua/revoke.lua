-- Mark a session revoked (ARGV[1] = 1) or its subject deleted (2). Never
-- downgrades a deletion. KEYS[1]: session hash. Returns 1 if it was active.
local x = redis.call('HGET', KEYS[1], 'x')
if not x or tonumber(x) >= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'x', ARGV[1])
if x == '0' then return 1 end
return 0
