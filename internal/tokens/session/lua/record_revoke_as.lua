-- Revoke a session for whoever presents one of its tokens (RFC 7009), on
-- its packed record (record.go), checked in the same step as a rotation's
-- OAuth checks are: another client's session, or a session bound to a DPoP
-- key and no proof by that key, is refused and left as it was.
-- KEYS[1]  the record
-- KEYS[2]  with a DPoP proof only: its own key, recorded once (SET NX:
--          logouts are few); the proof the record keeps as its session's
--          newest (record_rotate.lua) is refused as well
-- ARGV[1]  the client asking ('' = the dialects' endpoints, which name none)
-- ARGV[2]  the proof's key thumbprint, 32 bytes ('' = no proof)
-- ARGV[3]  with KEYS[2]: the jti's lifetime ms
-- Returns  0 missing; 8 another client's, 9 bound and no proof, 10 proof
--          used already, 11 bound to another key (as the rotation script);
--          else {ended, the record as it is now}: ended is 1 when the
--          session was active until now.
local v = redis.call('GET', KEYS[1])
if not v then return 0 end
-- bit 1 of the kind byte: the extension; bit 2 (unacknowledged) is not it
if string.byte(v, 24) % 4 >= 2 then
  -- the extension: the bound key, then the client
  local bound, cl = struct.unpack('>Bc0Bc0', v, 25)
  if ARGV[1] ~= '' and cl ~= '' and ARGV[1] ~= cl then return 8 end
  if bound ~= '' and ARGV[2] ~= string.sub(bound, 1, 32) then
    if ARGV[2] == '' then return 9 end
    return 11
  end
  if KEYS[2] and #bound == 52 and string.sub(bound, 37) == string.sub(KEYS[2], -16) then return 10 end
end
if KEYS[2] and not redis.call('SET', KEYS[2], '', 'NX', 'PX', ARGV[3]) then return 10 end
if string.byte(v, 5) ~= 0 then return {0, v} end
v = string.sub(v, 1, 4) .. string.char(1) .. string.sub(v, 6)
redis.call('SET', KEYS[1], v, 'KEEPTTL')
return {1, v}
