-- Create a session at generation 0 unless the id is taken.
-- KEYS[1]: session hash. ARGV: sub, created ms, expires ms, until ms.
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'u', ARGV[1], 'g', 0, 'c', ARGV[2], 'e', ARGV[3], 'r', ARGV[2], 'x', 0)
redis.call('PEXPIREAT', KEYS[1], ARGV[4])
return 1
