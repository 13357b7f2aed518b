-- Mark a rotation of a session in the hash record (rotate.lua) acknowledged,
-- as record_ack.lua does for the packed record: only while the hash is that
-- rotation (generation and rotated time as answered), active and marked.
-- HSET, not HDEL: the minimal ACL needs no other command.
-- KEYS[1]  session hash
-- ARGV     generation answered, its rotated time ms
-- Returns  1 marked; 0 not (moved on, revoked, gone, or acknowledged already)
local s = redis.call('HMGET', KEYS[1], 'g', 'r', 'x', 'k')
if s[1] ~= ARGV[1] or s[2] ~= ARGV[2] or s[3] ~= '0' or s[4] ~= '1' then return 0 end
redis.call('HSET', KEYS[1], 'k', '0')
return 1
