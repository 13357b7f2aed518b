package session_test

import (
	"testing"
	"time"

	"github.com/tokend/tokend/internal/tokens/session"
	"github.com/tokend/tokend/internal/tokens/session/sessiontest"
)

func TestMemoryContract(t *testing.T) {
	sessiontest.Run(t, func(t *testing.T) (sessiontest.Store, sessiontest.Rewind) {
		m := session.NewMemory(time.Minute)
		t.Cleanup(m.Close)
		return m, func(_ *testing.T, id string) func() { return m.Snapshot(id) }
	})
}
