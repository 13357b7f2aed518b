-- Undo an advance that too few replicas acknowledged (WAIT), so that the 503
-- its client got means that nothing changed: the record goes back to what it
-- was, if it is still what that advance made of it (record_rotate.lua).
-- Without it the client's retry would count its grace window from a
-- rotation it never received, and one still retrying after the window
-- (a replica down for longer) would be taken for reuse and logged out.
-- A DPoP proof's jti stays recorded: the retry brings a proof of its own.
-- KEYS[1]  the record
-- ARGV[1]  the advance's packed argument (record_rotate.lua): gen presented
--          (int32), now ms (int48), ...
-- ARGV[2]  the record as it was, the advance's answer
-- Returns  1 put back; 0 the record moved on (another advance, a revocation,
--          gone) and stays
local v = redis.call('GET', KEYS[1])
if not v then return 0 end
local gen, now = struct.unpack('>i4i6', ARGV[1])
local old = ARGV[2]
-- the advance wrote gen + 1, the old state, created and expires, and now
if struct.unpack('>I4', v) ~= gen + 1 or string.sub(v, 5, 17) ~= string.sub(old, 5, 17)
  or struct.unpack('>i6', v, 18) ~= now then
  return 0
end
redis.call('SET', KEYS[1], old, 'KEEPTTL')
return 1
