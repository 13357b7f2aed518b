package session

import (
	"context"
	"testing"
	"time"
)

// Calls with an uncancellable parent share a window's context, whose
// deadline gives each at least the timeout and at most one window more;
// a cancellable parent gets a context of its own that ends with it.
func TestDeadlines(t *testing.T) {
	d := newDeadlines(200 * time.Millisecond)
	before := time.Now()
	a, _ := d.bound(context.Background())
	b, _ := d.bound(context.Background())
	after := time.Now()
	dl, ok := a.Deadline()
	switch {
	case !ok:
		t.Fatal("no deadline")
	case a != b && after.Sub(before) < d.window:
		t.Fatal("two calls in one window got two contexts")
	case dl.Before(after.Add(d.timeout)) || dl.After(after.Add(d.timeout+d.window)):
		t.Fatalf("deadline %v is not within [%v, %v]", dl, after.Add(d.timeout), after.Add(d.timeout+d.window))
	}
	time.Sleep(d.window)
	if c, _ := d.bound(context.Background()); c == a {
		t.Fatal("a call after the window shares the old context")
	}

	parent, cancelParent := context.WithCancel(context.Background())
	own, cancel := d.bound(parent)
	defer cancel()
	if own == a {
		t.Fatal("a cancellable parent shares a window")
	}
	cancelParent()
	select {
	case <-own.Done():
	case <-time.After(time.Second):
		t.Fatal("cancelling the parent did not end the call's context")
	}
}
