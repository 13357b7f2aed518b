-- Add a session to its subject's index and keep the index as long as its
-- longest-lived session. KEYS[1]: subject set. ARGV: session id, expires ms.
-- KEYS[2], ARGV[3]: an adopted legacy token's only: the subject's cutoff
-- (legacy_cutoff.lua) and the token's iat ms (0: it has none). A token
-- issued at or before the cutoff is not indexed: 4 (revoked) or 5
-- (deleted). Read in the same step as the index is written: a revocation
-- of the subject racing the adoption finds the session, or the adoption
-- finds the cutoff.
if KEYS[2] then
  local c = redis.call('GET', KEYS[2])
  if c then
    local at, x = string.match(c, '^(%d+):(%d)$')
    local iat = tonumber(ARGV[3])
    if iat == 0 or iat <= tonumber(at) then return 3 + tonumber(x) end
  end
end
redis.call('SADD', KEYS[1], ARGV[1])
local t = redis.call('PEXPIRETIME', KEYS[1])
if t < 0 or t < tonumber(ARGV[2]) then
  redis.call('PEXPIREAT', KEYS[1], ARGV[2])
end
return 1
