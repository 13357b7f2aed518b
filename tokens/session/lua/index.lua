-- Add a session to its subject's index and keep the index as long as its
-- longest-lived session. KEYS[1]: subject set. ARGV: session id, expires ms.
redis.call('SADD', KEYS[1], ARGV[1])
local t = redis.call('PEXPIRETIME', KEYS[1])
if t < 0 or t < tonumber(ARGV[2]) then
  redis.call('PEXPIREAT', KEYS[1], ARGV[2])
end
return 1
