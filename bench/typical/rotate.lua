-- The typical stack's rotation, atomic: the session hash's generation is
-- compared with the one the refresh token carries and bumped; an older one
-- is reuse and revokes the session.
-- KEYS[1]  the session hash (sub, gen, client, jkt, revoked)
-- ARGV[1]  gen presented
-- ARGV[2]  the new refresh token's lifetime, ms
-- ARGV[3]  client_id of an /oauth2/token request ('' on the dialect endpoint)
-- ARGV[4]  the DPoP proof key's thumbprint ('' without a proof)
-- Returns  0 rotated, 1 unknown, 2 revoked, 3 reuse (now revoked),
--          4 another client's, 5 bound to another key (or no proof)
local s = redis.call('HMGET', KEYS[1], 'gen', 'revoked', 'client', 'jkt')
if not s[1] then return 1 end
if s[2] then return 2 end
if ARGV[3] ~= '' and s[3] and s[3] ~= '' and s[3] ~= ARGV[3] then return 4 end
local gen, presented = tonumber(s[1]), tonumber(ARGV[1])
if presented < gen then
  redis.call('HSET', KEYS[1], 'revoked', '1')
  return 3
end
if presented > gen then return 1 end
if s[4] and s[4] ~= ARGV[4] then return 5 end
if ARGV[4] ~= '' and not s[4] then
  redis.call('HSET', KEYS[1], 'gen', gen + 1, 'jkt', ARGV[4])
else
  redis.call('HSET', KEYS[1], 'gen', gen + 1)
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 0
