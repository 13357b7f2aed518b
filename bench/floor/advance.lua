-- The floor's rotation: compare the generation presented and bump it, the
-- least a rotation can do (bench/rediscost_test.go measures tokend's
-- record_rotate.lua against it).
local g = redis.call('HGET', KEYS[1], 'g')
if g ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'g', tonumber(g) + 1)
redis.call('PEXPIRE', KEYS[1], 2592000000)
return 1
