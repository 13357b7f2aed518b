package sessiontest

import (
	"context"
	"testing"
	"time"

	"github.com/tokend/tokend/internal/tokens/session"
)

// Earlier writes session s the way an earlier version of a store kept it,
// and a store still reads, rotates and revokes where it is (on Redis the
// hash record tokend:s:{id}): at generation 0, active, in its subject's
// index, expiring as Create's record would. s has no OAuth fields.
type Earlier func(ctx context.Context, s session.Session, idle time.Duration) error

// RunEarlier runs the suite on sessions an earlier version of the store
// wrote: every case whose sessions Create starts (the rotation rule, owner,
// expiry, revocation, the feed, lost writes) sees them made by earlier
// instead. newStore returns a fresh, empty store for each subtest, the
// Rewind of its earlier records, and the Earlier that writes them.
func RunEarlier(t *testing.T, newStore func(t *testing.T) (Store, Rewind, Earlier)) {
	for _, tc := range suite() {
		t.Run(tc.name, func(t *testing.T) {
			if why, ok := notEarlier[tc.name]; ok {
				t.Skip(why)
			}
			st, rewind, earlier := newStore(t)
			tc.run(t, earlierStore{st, earlier}, rewind)
		})
	}
}

// earlierStore is a store whose Create writes the earlier record. A session
// with OAuth fields is created as the store does: earlier records had none,
// and a case that mixes both kinds (StepStringsAreLent) still runs.
type earlierStore struct {
	Store
	earlier Earlier
}

// Create writes s as an earlier record, or as the store does (earlierStore).
func (e earlierStore) Create(ctx context.Context, s session.Session, idle time.Duration) error {
	if s.Client != "" || s.Scope != "" || s.Key != "" {
		return e.Store.Create(ctx, s, idle)
	}
	s.Gen = 0
	return e.earlier(ctx, s, idle)
}

// notEarlier are the cases that say nothing of a session an earlier
// version wrote, each with why; every other case runs on such sessions.
var notEarlier = func() map[string]string {
	why := map[string]string{
		"CreateTwice":                "Create writes only the current record; earlier ones are made by the suite",
		"CreateAtGenerationZero":     "Create writes only the current record; earlier ones are made by the suite",
		"AdoptLegacy":                "an adoption makes the current record",
		"AdoptedSessionIsIndexed":    "an adoption makes the current record",
		"AdoptOddSubject":            "an adoption makes the current record",
		"MissingWhateverAsked":       "no record at all",
		"Ping":                       "no record at all",
		"FeedCurrentAgain":           "no record at all",
		"SubjectByteForByteExtended": "earlier records have no OAuth extension",
		"ScopeSeparators":            "earlier records have no OAuth extension",
		"StepKeyNotThumbprint":       "earlier records have no OAuth extension",
	}
	for _, tc := range oauthCases {
		why[tc.name] = "earlier records have no OAuth extension"
	}
	for _, tc := range legacyCases {
		why[tc.name] = "a legacy token's adoption makes the current record"
	}
	return why
}()
