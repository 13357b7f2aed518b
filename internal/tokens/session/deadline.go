package session

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// deadlines bounds store calls by a timeout without a timer per call. Calls
// that start within the same window share one context whose deadline is
// the window's end plus the timeout, so each waits at least the timeout and
// at most the timeout plus one window. At 25,000 refreshes a second that is
// one timer per window instead of one per refresh (with its allocations and
// timer-heap updates, a visible share of a refresh on Redis).
type deadlines struct {
	timeout, window time.Duration
	epoch           time.Time  // windows are told apart on the monotonic clock since epoch: one clock read per call
	mu              sync.Mutex // serialises opening windows
	cur             atomic.Pointer[deadlineWindow]
}

type deadlineWindow struct {
	ctx    context.Context
	cancel context.CancelFunc // not called: the context ends by its deadline, when every call has had its timeout
	end    time.Duration      // calls starting before end (since epoch) share ctx
}

func newDeadlines(timeout time.Duration) *deadlines {
	return &deadlines{timeout: timeout, window: max(timeout/20, time.Millisecond), epoch: time.Now()}
}

func noCancel() {}

// bound returns a context that ends at least timeout from now. A parent that
// can be cancelled gets its own context: only uncancellable parents (the
// server's context.Background) share windows, so nothing is lost to sharing
// but the parent's values, which the store does not read.
func (d *deadlines) bound(parent context.Context) (context.Context, context.CancelFunc) {
	if parent.Done() != nil {
		return context.WithTimeout(parent, d.timeout)
	}
	now := time.Since(d.epoch)
	if w := d.cur.Load(); w != nil && now < w.end {
		return w.ctx, noCancel
	}
	return d.open(now).ctx, noCancel
}

// open starts the window now (since epoch) falls in, unless another call
// just did.
func (d *deadlines) open(now time.Duration) *deadlineWindow {
	d.mu.Lock()
	defer d.mu.Unlock()
	if w := d.cur.Load(); w != nil && now < w.end {
		return w
	}
	end := now + d.window
	ctx, cancel := context.WithDeadline(context.Background(), d.epoch.Add(end+d.timeout))
	w := &deadlineWindow{ctx: ctx, cancel: cancel, end: end}
	d.cur.Store(w)
	return w
}
