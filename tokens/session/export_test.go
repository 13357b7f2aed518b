package session

// Snapshot remembers session id's record as it is now; the returned
// function puts it back (or removes it, if there was none): the memory
// store's rewind for the contract suite's lost-write cases.
func (m *Memory) Snapshot(id string) (restore func()) {
	sh := m.shard(id)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	r, ok := sh.sessions[id]
	var saved record
	if ok {
		saved = *r
	}
	return func() {
		sh.mu.Lock()
		defer sh.mu.Unlock()
		if !ok {
			delete(sh.sessions, id)
			return
		}
		kept := saved
		sh.sessions[id] = &kept
	}
}

// Put48 writes v as 6 bytes big-endian, as the packed record keeps times.
var Put48 = put48

// Unacked reports whether a packed record is marked unacknowledged.
var Unacked = unacked
