package drill

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// ErrNoRecord is what a Recorded returns when the store holds no record of
// the session (evicted, or never written).
var ErrNoRecord = errors.New("no record")

// Recorded reads the generation the store holds for session sid: what a
// drill compares each 200 with. A session without a record is ErrNoRecord;
// any other error means the store could not be asked (the check retries).
type Recorded func(ctx context.Context, sid string) (int64, error)

// checkFor is how long the check of one 200 retries a store it cannot
// reach: longer than any drill's outage, so that a 200 answered just
// before the fault is checked once the store is back rather than left
// unchecked.
const checkFor = 30 * time.Second

// Load is a set of refresh chains against tokend instances speaking the
// spring dialect.
type Load struct {
	Publics  []string // public base URLs; a chain moves to the next on a connection error
	Admin    string   // admin base URL of a live instance, for logins
	Chains   int
	Recorded Recorded // nil: no check of each 200
	Client   *http.Client

	chains     []*chain
	requests   atomic.Int64
	ok         atomic.Int64
	busy       atomic.Int64 // 503
	other      atomic.Int64 // any other status, connection errors included
	unchecked  atomic.Int64
	unrecord   atomic.Int64
	missing    atomic.Int64
	checkFails atomic.Int64 // checks the store did not answer (asked again)
	lastFail   atomic.Int64 // unix ns of the latest answer other than 200
	firstFail  atomic.Int64
}

type chain struct {
	sub     string
	publicI int
	oks     atomic.Int64 // 200s this chain was answered
	out     atomic.Bool  // logged out (broken set)

	mu     sync.Mutex // token, sid, gen and victim: read by Steal while the chain runs
	sid    string
	token  string
	gen    int64
	victim bool // a thief holds one of its tokens: its logout is expected

	broken string // the answer that logged it out
	// unrecorded: 200s of this chain the store did not hold right after;
	// unhealed: the latest 200 was one of them and no later 200 was held
	unrecorded int
	unhealed   bool
}

// Result is what a drill reports.
type Result struct {
	Requests, OK, Unavailable, Other int64
	// FirstFailure and LastFailure bound the answers other than 200 (zero
	// when there were none).
	FirstFailure, LastFailure time.Time
	Broken                    int   // honest chains logged out (during the run or at the final presentation)
	Unrecorded                int64 // 200s whose generation the store did not hold right after
	// MaxUnrecorded is the most unrecorded 200s of one chain: a fault that
	// loses the last rotations costs a chain at most one such 200 (the one
	// whose check saw the loss), which its next refresh heals.
	MaxUnrecorded int
	// Unhealed chains ended on a 200 the store did not hold.
	Unhealed int
	// Missing: 200s whose session had no record at all right after.
	Missing int64
	// Unchecked: 200s the check could not compare with the store (it did
	// not answer within checkFor).
	Unchecked int64
	// Victims are the chains a thief stole from (Steal); VictimsLoggedOut
	// of them were logged out, as reuse detection must do.
	Victims, VictimsLoggedOut int
	Examples                  []string
}

// Counts are the answers so far, for a drill to see what its fault did
// while it lasted. CheckFailures are the checks of 200s that the store did
// not answer: a chain whose check waits for the store sends nothing, so an
// outage may show there rather than in 503s.
type Counts struct{ Requests, OK, Unavailable, Other, CheckFailures int64 }

// Counts returns the answers so far.
func (l *Load) Counts() Counts {
	return Counts{l.requests.Load(), l.ok.Load(), l.busy.Load(), l.other.Load(), l.checkFails.Load()}
}

// Start logs every chain in and runs them until ctx ends.
func (l *Load) Start(ctx context.Context) (wait func(), err error) {
	if l.Client == nil {
		l.Client = &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 4 * l.Chains}}
	}
	for i := range l.Chains {
		c := &chain{sub: fmt.Sprintf("drill-%d", i), publicI: i % len(l.Publics)}
		status, body, err := l.post(l.Admin+"/admin/sessions", `{"sub":"`+c.sub+`"}`)
		if err != nil || status != 200 {
			return nil, fmt.Errorf("login %s: %d %s %v", c.sub, status, body, err)
		}
		if err := c.take(body); err != nil {
			return nil, err
		}
		l.chains = append(l.chains, c)
	}
	var wg sync.WaitGroup
	for _, c := range l.chains {
		wg.Add(1)
		go func() { defer wg.Done(); l.run(ctx, c) }()
	}
	return wg.Wait, nil
}

func (l *Load) run(ctx context.Context, c *chain) {
	for ctx.Err() == nil && c.broken == "" {
		l.step(ctx, c)
	}
}

// step presents the chain's token once: 200 moves the chain on, 503 and
// connection errors are retried with the same token (a short pause), 401
// or 404 logs the chain out.
func (l *Load) step(ctx context.Context, c *chain) (status int) {
	c.mu.Lock()
	token := c.token
	c.mu.Unlock()
	status, body, err := l.post(l.Publics[c.publicI]+"/api/auth/refresh", `{"refreshToken":"`+token+`"}`)
	l.requests.Add(1)
	switch {
	case err == nil && status == 200:
		l.ok.Add(1)
		if err := c.take(body); err != nil {
			c.broken = err.Error()
			return status
		}
		c.oks.Add(1)
		l.check(ctx, c)
		return status
	case err != nil:
		c.publicI = (c.publicI + 1) % len(l.Publics)
	case status == 503:
		l.busy.Add(1)
	case status == 401 || status == 404:
		c.broken = fmt.Sprintf("%d %s", status, body)
		c.out.Store(true)
	}
	if status != 503 {
		l.other.Add(1)
	}
	now := time.Now().UnixNano()
	l.firstFail.CompareAndSwap(0, now)
	l.lastFail.Store(now)
	select {
	case <-ctx.Done():
	case <-time.After(20 * time.Millisecond):
	}
	return status
}

// check compares the generation just answered with the store's, asking
// again while the store cannot answer (a 200 sent just before the fault is
// checked once the store is back): a drill is void if a check never got
// through.
func (l *Load) check(ctx context.Context, c *chain) {
	if l.Recorded == nil {
		return
	}
	ctx = context.WithoutCancel(ctx)
	for deadline := time.Now().Add(checkFor); ; time.Sleep(50 * time.Millisecond) {
		cctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		g, err := l.Recorded(cctx, c.sid)
		cancel()
		switch {
		case errors.Is(err, ErrNoRecord):
			l.missing.Add(1)
		case err != nil && time.Now().Before(deadline):
			l.checkFails.Add(1)
			continue
		case err != nil:
			l.unchecked.Add(1)
		case g < c.gen:
			l.unrecord.Add(1)
			c.unrecorded++
			c.unhealed = true
		default:
			c.unhealed = false
		}
		return
	}
}

// Steal hands a thief a copy of chain i's current refresh token (and its
// generation); the chain goes on refreshing, and its logout is from then on
// expected rather than counted as an honest chain broken.
func (l *Load) Steal(i int) (token string, gen int64) {
	c := l.chains[i]
	c.mu.Lock()
	defer c.mu.Unlock()
	c.victim = true
	return c.token, c.gen
}

// Gen is chain i's newest generation and the 200s it has been answered.
func (l *Load) Gen(i int) (gen, oks int64) {
	c := l.chains[i]
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gen, c.oks.Load()
}

// Out reports whether chain i was logged out.
func (l *Load) Out(i int) bool { return l.chains[i].out.Load() }

// Sid is chain i's session id.
func (l *Load) Sid(i int) string {
	c := l.chains[i]
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sid
}

// Present sends one refresh with token, as a thief would, and returns the
// status and body.
func (l *Load) Present(token string) (int, []byte, error) {
	return l.post(l.Publics[0]+"/api/auth/refresh", `{"refreshToken":"`+token+`"}`)
}

// Finish presents every chain's newest token once more (retrying 503 and
// connection errors for up to d) and returns the figures.
func (l *Load) Finish(d time.Duration) Result {
	deadline := time.Now().Add(d)
	ctx := context.Background()
	r := Result{}
	for _, c := range l.chains {
		for c.broken == "" {
			if status := l.step(ctx, c); status == 200 || time.Now().After(deadline) {
				if status != 200 {
					c.broken = fmt.Sprintf("final presentation: %d", status)
				}
				break
			}
		}
		r.MaxUnrecorded = max(r.MaxUnrecorded, c.unrecorded)
		if c.unhealed {
			r.Unhealed++
		}
		switch {
		case c.victim:
			r.Victims++
			if c.broken != "" {
				r.VictimsLoggedOut++
			}
		case c.broken != "":
			r.Broken++
			if len(r.Examples) < 3 {
				r.Examples = append(r.Examples, c.sub+": "+c.broken)
			}
		}
	}
	r.Requests, r.OK, r.Unavailable = l.requests.Load(), l.ok.Load(), l.busy.Load()
	r.Other, r.Unrecorded, r.Unchecked, r.Missing = l.other.Load(), l.unrecord.Load(), l.unchecked.Load(), l.missing.Load()
	if f := l.firstFail.Load(); f != 0 {
		r.FirstFailure, r.LastFailure = time.Unix(0, f), time.Unix(0, l.lastFail.Load())
	}
	return r
}

func (l *Load) post(url, body string) (int, []byte, error) {
	resp, err := l.Client.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// take reads the refresh token of a spring success body, and its sid and
// gen (the drill trusts tokend's signature: it only reads the claims).
func (c *chain) take(body []byte) error {
	var ok struct {
		Result struct {
			RefreshToken string `json:"refreshToken"`
		} `json:"result"`
	}
	if err := json.Unmarshal(body, &ok); err != nil || ok.Result.RefreshToken == "" {
		return fmt.Errorf("no refresh token in %s", body)
	}
	parts := strings.Split(ok.Result.RefreshToken, ".")
	if len(parts) != 3 {
		return errors.New("refresh token is not a JWS")
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return err
	}
	var claims struct {
		Sid string `json:"sid"`
		Gen int64  `json:"gen"`
	}
	if err := json.NewDecoder(bytes.NewReader(raw)).Decode(&claims); err != nil {
		return err
	}
	c.mu.Lock()
	c.token, c.sid, c.gen = ok.Result.RefreshToken, claims.Sid, claims.Gen
	c.mu.Unlock()
	return nil
}
