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

// Recorded reads the generation the store holds for session sid: what a
// drill compares each 200 with.
type Recorded func(ctx context.Context, sid string) (int64, error)

// Load is a set of refresh chains against tokend instances speaking the
// spring dialect.
type Load struct {
	Publics  []string // public base URLs; a chain moves to the next on a connection error
	Admin    string   // admin base URL of a live instance, for logins
	Chains   int
	Recorded Recorded // nil: no check of each 200
	Client   *http.Client

	chains    []*chain
	requests  atomic.Int64
	ok        atomic.Int64
	busy      atomic.Int64 // 503
	other     atomic.Int64 // any other status, connection errors included
	unchecked atomic.Int64
	unrecord  atomic.Int64
	lastFail  atomic.Int64 // unix ns of the latest answer other than 200
	firstFail atomic.Int64
}

type chain struct {
	sub     string
	sid     string
	token   string
	gen     int64
	broken  string // the answer that logged it out
	publicI int
}

// Result is what a drill reports.
type Result struct {
	Requests, OK, Unavailable, Other int64
	// FirstFailure and LastFailure bound the answers other than 200 (zero
	// when there were none).
	FirstFailure, LastFailure time.Time
	Broken                    int   // honest chains logged out (during the run or at the final presentation)
	Unrecorded                int64 // 200s whose generation the store did not hold right after
	Unchecked                 int64 // 200s whose check could not reach the store
	Examples                  []string
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
	status, body, err := l.post(l.Publics[c.publicI]+"/api/auth/refresh", `{"refreshToken":"`+c.token+`"}`)
	l.requests.Add(1)
	switch {
	case err == nil && status == 200:
		l.ok.Add(1)
		if err := c.take(body); err != nil {
			c.broken = err.Error()
			return status
		}
		l.check(ctx, c)
		return status
	case err != nil:
		c.publicI = (c.publicI + 1) % len(l.Publics)
	case status == 503:
		l.busy.Add(1)
	case status == 401 || status == 404:
		c.broken = fmt.Sprintf("%d %s", status, body)
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

// check compares the generation just answered with the store's.
func (l *Load) check(ctx context.Context, c *chain) {
	if l.Recorded == nil {
		return
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 300*time.Millisecond)
	defer cancel()
	g, err := l.Recorded(cctx, c.sid)
	switch {
	case err != nil:
		l.unchecked.Add(1)
	case g < c.gen:
		l.unrecord.Add(1)
	}
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
		if c.broken != "" {
			r.Broken++
			if len(r.Examples) < 3 {
				r.Examples = append(r.Examples, c.sub+": "+c.broken)
			}
		}
	}
	r.Requests, r.OK, r.Unavailable = l.requests.Load(), l.ok.Load(), l.busy.Load()
	r.Other, r.Unrecorded, r.Unchecked = l.other.Load(), l.unrecord.Load(), l.unchecked.Load()
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
	c.token, c.sid, c.gen = ok.Result.RefreshToken, claims.Sid, claims.Gen
	return nil
}
