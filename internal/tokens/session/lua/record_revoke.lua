-- Mark a session revoked (ARGV[1] = 1) or its subject deleted (2), on its
-- packed record (record.go). Never downgrades a deletion.
-- KEYS[1]: the record.
-- KEYS[2], ARGV[2]: a legacy token's revocation only: its adoption mark
-- (record_rotate.lua), raised to the same state and kept until ARGV[2] ms
-- at least, so that the token stays refused once the record is gone, or
-- when there was none yet.
-- ARGV[2] '' leaves the mark alone (the token has expired: its exp refuses it).
-- ARGV[3]: a legacy token's holder's revocation only (RevokeLegacy): the
-- thumbprint of its DPoP proof's key, 32 bytes ('' = no proof). A session
-- its adoption bound to a key is ended only with a proof by it, as
-- record_revoke_as.lua: 9 no proof, 11 another key's, 10 the proof used
-- already (its key KEYS[3], kept ARGV[4] ms, or the record's newest proof);
-- each refusal changes nothing.
-- Returns 0 for a missing session, else {ended, the record as it is now}:
-- ended is 1 when the session was active until now.
local to = tonumber(ARGV[1])
local v = redis.call('GET', KEYS[1])
if v and ARGV[3] then
  -- bit 1 of the kind byte: the extension, its bound key first
  if string.byte(v, 24) % 4 >= 2 then
    local bound = struct.unpack('>Bc0', v, 25)
    if bound ~= '' and ARGV[3] ~= string.sub(bound, 1, 32) then
      if ARGV[3] == '' then return 9 end
      return 11
    end
    -- the session's newest proof, kept in the record (record_rotate.lua)
    if KEYS[3] and #bound == 52 and string.sub(bound, 37) == string.sub(KEYS[3], -16) then return 10 end
  end
  if KEYS[3] and not redis.call('SET', KEYS[3], '', 'NX', 'PX', ARGV[4]) then return 10 end
end
if KEYS[2] and ARGV[2] ~= '' then
  local m = tonumber(redis.call('GET', KEYS[2]) or '0')
  local at = math.max(redis.call('PEXPIRETIME', KEYS[2]), tonumber(ARGV[2]))
  redis.call('SET', KEYS[2], tostring(math.max(m, to)), 'PXAT', at)
end
if not v then return 0 end
local x = string.byte(v, 5)
if x >= to then return {0, v} end
v = string.sub(v, 1, 4) .. string.char(to) .. string.sub(v, 6)
redis.call('SET', KEYS[1], v, 'KEEPTTL')
if x == 0 then return {1, v} end
return {0, v}
