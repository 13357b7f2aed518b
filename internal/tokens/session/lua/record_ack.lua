-- Mark a rotation acknowledged: an answer handing out its pair was confirmed
-- by WAIT and is being sent. record_rotate.lua marks every record it writes
-- unacknowledged while tokend waits for replicas, so that a rotation whose
-- answer never went out (a failed WAIT, a deadline, a crash) keeps its parent
-- token retryable; this restores reuse detection once one did. Only for the
-- same rotation (generation and rotated time as answered, still active): a
-- later advance, a revocation or a record gone stay as they are. The record
-- keeps its expiry. Not waited for: a replica that misses it holds the
-- record still unacknowledged, which logs nobody out.
-- KEYS[1]  the record
-- ARGV[1]  packed, big-endian: generation answered (uint32), its rotated
--          time ms (int48)
-- Returns  1 marked; 0 not (moved on, revoked, gone, or acknowledged already)
local v = redis.call('GET', KEYS[1])
if not v then return 0 end
local gen, rot = struct.unpack('>I4i6', ARGV[1])
local cur, x, r, kind = struct.unpack('>I4Bxxxxxxxxxxxxi6B', v)
if cur ~= gen or r ~= rot or x ~= 0 or kind < 4 then return 0 end
redis.call('SET', KEYS[1], string.sub(v, 1, 23) .. string.char(kind - 4) .. string.sub(v, 25), 'KEEPTTL')
return 1
