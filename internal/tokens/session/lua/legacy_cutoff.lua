-- Refuse the adoption of a subject's legacy tokens issued at or before
-- ARGV[1] ms, as revoked (ARGV[2] = 1) or deleted (2): index.lua reads it.
-- The latest cutoff stands (a revocation arriving late from another
-- instance lowers nothing). No expiry: the old backend's tokens carry their
-- own, which tokend learns only when one is presented.
-- KEYS[1]: the subject's cutoff, "ms:state".
local c = redis.call('GET', KEYS[1])
if c then
  local at, x = string.match(c, '^(%d+):(%d)$')
  at, x = tonumber(at), tonumber(x)
  local t = tonumber(ARGV[1])
  if at > t or (at == t and x >= tonumber(ARGV[2])) then return 0 end
end
redis.call('SET', KEYS[1], ARGV[1] .. ':' .. ARGV[2])
return 1
