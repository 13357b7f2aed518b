// Command loadgen is a load generator for the refresh endpoint, lean enough
// to saturate tokend from the same 2-core machine (k6 cannot). Each worker
// starts its own session through the admin API, then refreshes, always with
// its newest tokens (a chain: a token is used once), one request in flight
// per worker and connection. Every latency in the measured window is kept;
// any answer but 200 is a failure, after which the worker starts a new
// session.
//
// Closed loop (default): each worker sends its next request when the last
// is answered. Open loop (-rate R): requests are scheduled at R per second
// whatever the answers, and each latency counts from the request's
// scheduled time, so a stall shows in the latencies of every request it
// delayed (no coordinated omission).
//
// With -redis and -pid it also reports the CPU Redis (INFO cpu) and the
// server process (/proc) spent per refresh answered 200 in the window.
// -endpoint oauth2 refreshes on /oauth2/token instead, -endpoint dpop with
// a DPoP proof per refresh (signed before the run; -alg ES256 or EdDSA).
//
//	loadgen -url http://127.0.0.1:8080 -admin http://127.0.0.1:8081 -c 64 -d 10s
//	loadgen -rate 8000 -redis 127.0.0.1:6379 -pid $(pgrep -d, tokend) ...
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/tokend/tokend/internal/tokens/dpop/prover"
)

type options struct {
	public, admin, adminToken, dialect, label string
	conns                                     int
	duration, warmup                          time.Duration
	asJSON                                    bool
	rate                                      float64  // requests/s, open loop; 0: closed loop
	redis                                     []string // Redis addresses for INFO cpu (summed)
	pids                                      []int    // server processes for /proc CPU (summed)
	// endpoint: "dialect" (/api/auth/refresh), "oauth2" (/oauth2/token) or
	// "dpop" (/oauth2/token with a proof per refresh, signed with alg)
	endpoint  string
	alg       string // dpop: the proofs' algorithm, ES256 or EdDSA
	publicURL string // tokend's TOKEND_PUBLIC_URL, for the proofs' htu
	proofs    int    // proofs each worker signs before the run
}

// Result is one run's summary.
type Result struct {
	Label    string  `json:"label"`
	Dialect  string  `json:"dialect"`
	Conns    int     `json:"conns"`
	Seconds  float64 `json:"seconds"`
	Requests int     `json:"requests"`
	RPS      float64 `json:"rps"`
	P50ms    float64 `json:"p50_ms"`
	P90ms    float64 `json:"p90_ms"`
	P99ms    float64 `json:"p99_ms"`
	P999ms   float64 `json:"p999_ms"`
	MaxMs    float64 `json:"max_ms"`
	// Rate is the scheduled rate of an open-loop run (0: closed loop).
	Rate float64 `json:"rate,omitempty"`
	// OK counts answers 200 in the window; the CPU figures are per OK.
	OK          int     `json:"ok"`
	RedisCPUus  float64 `json:"redis_cpu_us,omitempty"`
	ServerCPUus float64 `json:"server_cpu_us,omitempty"`
	// RedisInB and RedisOutB are the bytes Redis read and wrote per OK.
	RedisInB  float64 `json:"redis_in_bytes,omitempty"`
	RedisOutB float64 `json:"redis_out_bytes,omitempty"`
	Failures  int64   `json:"failures"`
	// Unavailable counts 503 answers (retried after 20 ms with the same
	// token); they are not in Requests nor in the latencies.
	Unavailable int64  `json:"unavailable,omitempty"`
	FirstFail   string `json:"first_failure,omitempty"`
}

func main() {
	var o options
	flag.StringVar(&o.public, "url", "http://127.0.0.1:8080", "public base URL (comma-separated: the workers are spread over them)")
	flag.StringVar(&o.admin, "admin", "", "admin base URL (default: -url)")
	flag.StringVar(&o.adminToken, "admin-token", "", "Bearer token of the admin listener")
	flag.StringVar(&o.dialect, "dialect", "spring", "spring or aspnet")
	flag.StringVar(&o.label, "label", "", "label of this run in the output")
	flag.IntVar(&o.conns, "c", 64, "connections = workers, one request in flight each")
	flag.DurationVar(&o.duration, "d", 10*time.Second, "measured duration")
	flag.DurationVar(&o.warmup, "warmup", 2*time.Second, "load before measuring")
	flag.BoolVar(&o.asJSON, "json", false, "print the result as one JSON line")
	flag.StringVar(&o.endpoint, "endpoint", "dialect", "dialect (/api/auth/refresh), oauth2 (/oauth2/token) or dpop (/oauth2/token with a DPoP proof per refresh)")
	flag.StringVar(&o.alg, "alg", "ES256", "dpop: the proofs' algorithm, ES256 or EdDSA")
	flag.StringVar(&o.publicURL, "public-url", "", "tokend's TOKEND_PUBLIC_URL, which proofs name (default: the first -url)")
	flag.IntVar(&o.proofs, "proofs", 2000, "dpop: proofs each worker signs before the run (the generator's signing stays out of the measured window; more are signed as needed)")
	flag.Float64Var(&o.rate, "rate", 0, "open loop: requests per second, latency from each request's scheduled time (0: closed loop)")
	flag.Func("redis", "Redis address (comma-separated: summed, as a Cluster's masters): report its CPU and bytes per refresh (INFO over the window)", func(v string) error {
		o.redis = append(o.redis, strings.Split(v, ",")...)
		return nil
	})
	flag.Func("pid", "server process id (comma-separated: summed): report its CPU per refresh (/proc over the window)", func(v string) error {
		for _, p := range strings.Split(v, ",") {
			n, err := strconv.Atoi(p)
			if err != nil {
				return err
			}
			o.pids = append(o.pids, n)
		}
		return nil
	})
	summarize := flag.String("summarize", "", "read JSON results from this file and print medians and ratios to the floor")
	medianOf := flag.String("median", "", "with -summarize: print only the median req/s of the runs with this label")
	var ratios []string
	flag.Func("ratio", "with -summarize: A=B (labels), also print A's req/s and CPU per refresh over B's, paired run by run (repeatable)", func(v string) error {
		if a, b, ok := strings.Cut(v, "="); !ok || a == "" || b == "" {
			return fmt.Errorf("-ratio %q: want LABEL=LABEL", v)
		}
		ratios = append(ratios, v)
		return nil
	})
	flag.Parse()
	if *summarize != "" && *medianOf != "" {
		runs, _, err := readResults(*summarize)
		if err != nil || len(runs[*medianOf]) == 0 {
			fmt.Fprintln(os.Stderr, "loadgen: no runs labelled", *medianOf, err)
			os.Exit(1)
		}
		fmt.Printf("%.0f\n", median(runs[*medianOf], func(r Result) float64 { return r.RPS }))
		return
	}
	if *summarize != "" {
		if err := printSummary(*summarize, ratios); err != nil {
			fmt.Fprintln(os.Stderr, "loadgen:", err)
			os.Exit(1)
		}
		return
	}
	if o.admin == "" {
		o.admin, _, _ = strings.Cut(o.public, ",")
	}
	if o.publicURL == "" {
		o.publicURL, _, _ = strings.Cut(o.public, ",")
	}
	r, err := run(o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
	if o.asJSON {
		b, _ := json.Marshal(r)
		fmt.Println(string(b))
	} else {
		fmt.Printf("%-24s %s c=%d rate=%.0f %.0fs: %d requests, %.0f req/s, p50 %.2f ms, p90 %.2f ms, p99 %.2f ms, p99.9 %.2f ms, max %.2f ms, %d failures, %d answered 503, per refresh: Redis CPU %.1f µs, server CPU %.1f µs, Redis bytes in %.0f out %.0f %s\n",
			r.Label, r.Dialect, r.Conns, r.Rate, r.Seconds, r.Requests, r.RPS, r.P50ms, r.P90ms, r.P99ms, r.P999ms, r.MaxMs, r.Failures, r.Unavailable, r.RedisCPUus, r.ServerCPUus, r.RedisInB, r.RedisOutB, r.FirstFail)
	}
	if r.Failures > 0 {
		os.Exit(1)
	}
}

// worker is one closed loop: its session's newest tokens and its latencies.
type worker struct {
	id              int
	access, refresh []byte
	body            []byte
	lat             []time.Duration
	key             *prover.Key // dpop: the worker's key
	proofs          []string    // signed before the run, used once each
}

// signProofs gives every worker a key for alg and n proofs, signed on all
// cores before the run so that the generator's signing is not measured.
func signProofs(workers []*worker, alg, htu string, n int) error {
	var wg sync.WaitGroup
	errs := make([]error, len(workers))
	sem := make(chan struct{}, runtime.NumCPU())
	for i, w := range workers {
		k, err := prover.New(alg)
		if err != nil {
			return err
		}
		w.key = k
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			for range n {
				p, err := k.Proof("POST", htu, prover.Options{})
				if err != nil {
					errs[i] = err
					return
				}
				w.proofs = append(w.proofs, p)
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// proof is the worker's next proof: a presigned one, or a new one.
func (w *worker) proof(htu string) (string, error) {
	if n := len(w.proofs); n > 0 {
		p := w.proofs[n-1]
		w.proofs = w.proofs[:n-1]
		return p, nil
	}
	return w.key.Proof("POST", htu, prover.Options{})
}

func run(o options) (Result, error) {
	// one client per public URL; worker i uses the (i mod n)-th
	var clients []*fasthttp.HostClient
	var refreshURLs []string
	for _, p := range strings.Split(o.public, ",") {
		pub, err := url.Parse(p)
		if err != nil {
			return Result{}, err
		}
		clients = append(clients, &fasthttp.HostClient{Addr: pub.Host, MaxConns: o.conns, ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second})
		path := "/api/auth/refresh"
		if o.endpoint != "dialect" {
			path = "/oauth2/token"
		}
		refreshURLs = append(refreshURLs, p+path)
	}
	adm, err := url.Parse(o.admin)
	if err != nil {
		return Result{}, err
	}
	adminClient := &fasthttp.HostClient{Addr: adm.Host, MaxConns: o.conns, ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second}
	loginURL := o.admin + "/admin/sessions"

	var failures, unavailable, ok atomic.Int64
	var firstFail atomic.Value
	fail := func(msg string) {
		failures.Add(1)
		firstFail.CompareAndSwap(nil, msg)
	}

	workers := make([]*worker, o.conns)
	for i := range workers {
		w := &worker{id: i, lat: make([]time.Duration, 0, 1<<16)}
		if err := w.login(adminClient, loginURL, o); err != nil {
			return Result{}, fmt.Errorf("login: %w", err)
		}
		workers[i] = w
	}
	htu := o.publicURL + "/oauth2/token" // what every proof names
	if o.endpoint == "dpop" {
		if err := signProofs(workers, o.alg, htu, o.proofs); err != nil {
			return Result{}, err
		}
	}

	start := time.Now()
	measureFrom, end := start.Add(o.warmup), start.Add(o.warmup+o.duration)
	cpu := measureCPU(o, measureFrom, end)

	// next hands a worker the time its next request is due: now, in a
	// closed loop; the next slot of the schedule, in an open one.
	next := func() (time.Time, bool) { t := time.Now(); return t, t.Before(end) }
	if o.rate > 0 {
		slots := make(chan time.Time, 4096)
		go func() {
			defer close(slots)
			interval := time.Duration(float64(time.Second) / o.rate)
			for t := start; t.Before(end); t = t.Add(interval) {
				slots <- t
			}
		}()
		next = func() (time.Time, bool) {
			t, open := <-slots
			if open {
				time.Sleep(time.Until(t))
			}
			return t, open
		}
	}
	// the shape of the refresh requests and answers; the admin API answers
	// logins in the dialect's
	shape := o.dialect
	if o.endpoint != "dialect" {
		shape = "oauth2"
	}
	var wg sync.WaitGroup
	for _, w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			client := clients[w.id%len(clients)]
			req.SetRequestURI(refreshURLs[w.id%len(clients)])
			req.Header.SetMethod(fasthttp.MethodPost)
			req.Header.SetContentType("application/json")
			if o.endpoint != "dialect" {
				req.Header.SetContentType("application/x-www-form-urlencoded")
			}
			for {
				t0, more := next() // the request's due time: its latency counts from here
				if !more {
					return
				}
				w.body = w.appendRequest(w.body[:0], shape)
				req.SetBodyRaw(w.body)
				if w.key != nil {
					p, err := w.proof(htu)
					if err != nil {
						fail(err.Error())
						return
					}
					req.Header.Set("DPoP", p)
				}
				err := client.Do(req, resp)
				t1 := time.Now()
				measured := !t0.Before(measureFrom)
				if err == nil && resp.StatusCode() == 503 {
					// shed or store down: the client keeps its token and retries
					// after a pause; not a failure, and not in the latencies
					if measured {
						unavailable.Add(1)
					}
					if o.rate == 0 {
						time.Sleep(20 * time.Millisecond)
					}
					continue
				}
				if measured {
					w.lat = append(w.lat, t1.Sub(t0))
				}
				if err == nil && resp.StatusCode() == 200 && w.next(resp.Body(), shape) {
					if measured {
						ok.Add(1)
					}
					continue
				}
				if err != nil {
					fail(err.Error())
				} else {
					fail(fmt.Sprintf("status %d: %.200s", resp.StatusCode(), resp.Body()))
				}
				if err := w.login(adminClient, loginURL, o); err != nil {
					fail("login: " + err.Error())
					time.Sleep(10 * time.Millisecond)
				}
			}
		}()
	}
	wg.Wait()
	used := cpu()

	var all []time.Duration
	for _, w := range workers {
		all = append(all, w.lat...)
	}
	slices.Sort(all)
	pct := func(p float64) float64 {
		if len(all) == 0 {
			return 0
		}
		return float64(all[min(len(all)-1, int(p*float64(len(all))))]) / 1e6
	}
	r := Result{
		Label: o.label, Dialect: o.dialect, Conns: o.conns, Seconds: o.duration.Seconds(),
		Requests: len(all), RPS: float64(len(all)) / o.duration.Seconds(),
		P50ms: pct(0.50), P90ms: pct(0.90), P99ms: pct(0.99), P999ms: pct(0.999), MaxMs: pct(1),
		Failures: failures.Load(), Unavailable: unavailable.Load(), Rate: o.rate, OK: int(ok.Load()),
	}
	if r.OK > 0 {
		r.RedisCPUus = used.redis.Seconds() * 1e6 / float64(r.OK)
		r.ServerCPUus = used.server.Seconds() * 1e6 / float64(r.OK)
		r.RedisInB = float64(used.in) / float64(r.OK)
		r.RedisOutB = float64(used.out) / float64(r.OK)
	}
	if f, ok := firstFail.Load().(string); ok {
		r.FirstFail = f
	}
	return r, nil
}

func (w *worker) login(c *fasthttp.HostClient, loginURL string, o options) error {
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI(loginURL)
	req.Header.SetMethod(fasthttp.MethodPost)
	req.Header.SetContentType("application/json")
	if o.adminToken != "" {
		req.Header.Set("Authorization", "Bearer "+o.adminToken)
	}
	// a dialect client's session is a plain one, as its login makes it; only
	// the OAuth 2.0 endpoints need the session's client (and its record's
	// extension, which costs Redis more per rotation)
	client := ""
	if o.endpoint != "dialect" {
		client = `,"client_id":"loadgen"`
	}
	req.SetBodyString(fmt.Sprintf(`{"sub":"load-%d"%s}`, w.id, client))
	if err := c.Do(req, resp); err != nil {
		return err
	}
	if resp.StatusCode() != 200 || !w.next(resp.Body(), o.dialect) {
		return fmt.Errorf("status %d: %.200s", resp.StatusCode(), resp.Body())
	}
	return nil
}

// appendRequest appends the refresh body for the worker's newest tokens in
// shape: spring, aspnet or oauth2 (the form of /oauth2/token).
func (w *worker) appendRequest(dst []byte, shape string) []byte {
	switch shape {
	case "oauth2":
		dst = append(dst, "grant_type=refresh_token&client_id=loadgen&refresh_token="...)
		return append(dst, url.QueryEscape(string(w.refresh))...) // aspnet's tokens hold + / =
	case "aspnet":
		dst = append(append(append(dst, `{"Token":"`...), w.access...), `","RefreshToken":"`...)
		return append(append(dst, w.refresh...), `"}`...)
	}
	return append(append(append(dst, `{"refreshToken":"`...), w.refresh...), `"}`...)
}

// next takes the new tokens out of a success body in shape (as
// appendRequest): sliced, not decoded, so the generator spends its CPU on
// sending.
func (w *worker) next(body []byte, shape string) bool {
	accessKey, refreshKey := `"accessToken":"`, `"refreshToken":"`
	switch shape {
	case "oauth2":
		accessKey, refreshKey = `"access_token":"`, `"refresh_token":"`
	case "aspnet":
		accessKey, refreshKey = `"Token":"`, `"RefreshToken":"`
	}
	a, r := stringField(body, accessKey), stringField(body, refreshKey)
	if a == nil || r == nil {
		return false
	}
	w.access, w.refresh = append(w.access[:0], a...), append(w.refresh[:0], r...)
	return true
}

func stringField(body []byte, key string) []byte {
	i := bytes.Index(body, []byte(key))
	if i < 0 {
		return nil
	}
	v := body[i+len(key):]
	j := bytes.IndexByte(v, '"')
	if j < 0 {
		return nil
	}
	return v[:j]
}

// printSummary reads one Result a line and prints, per label, the medians of
// the runs and tokend's throughput as a share of a floor's on the same store
// ("<dialect>/memory" to "floor/none", "<dialect>/redis" to "floor/redis";
// and to "floor-<dialect>/…" where that ran). Shares are paired: the i-th
// run of a label against the i-th run of its floor, which ran beside it,
// then the median of those. This VM's speed drifts by a fifth between
// minutes, so a ratio of two medians taken minutes apart can be off by
// that much; adjacent runs drift together. Open-loop runs (labelled
// "<kind>/<store> @<rate>") go to a second table, with tokend's Redis CPU
// per refresh against the floor's at the same rate, paired the same way.
// Each of ratios ("A=B") adds a row to a third table (printRatios).
func printSummary(file string, ratios []string) error {
	runs, labels, err := readResults(file)
	if err != nil {
		return err
	}
	rps := func(r Result) float64 { return r.RPS }
	redis := func(r Result) float64 { return r.RedisCPUus }
	fmt.Println("Closed loop:")
	fmt.Println()
	fmt.Println("| run | runs | req/s (median) | p50 ms | p99 ms | failures | Redis CPU µs/refresh | server CPU µs/refresh | share of the floor (median of paired runs; range) |")
	fmt.Println("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
	for _, l := range labels {
		rs := runs[l]
		if rs[0].Rate > 0 {
			continue
		}
		var shares []string
		if kind, store, _ := strings.Cut(l, "/"); !strings.HasPrefix(kind, "floor") {
			if store == "memory" {
				store = "none"
			}
			for _, floor := range []string{"floor/" + store, "floor-" + kind + "/" + store} {
				if fr, ok := runs[floor]; ok {
					med, lo, hi := paired(rs, fr, rps)
					shares = append(shares, fmt.Sprintf("**%.0f%%** of %s (%.0f–%.0f%%)", 100*med, floor, 100*lo, 100*hi))
				}
			}
		}
		fmt.Printf("| %s | %d | %.0f | %.2f | %.2f | %d | %s | %s | %s |\n", l, len(rs), median(rs, rps),
			median(rs, func(r Result) float64 { return r.P50ms }), median(rs, func(r Result) float64 { return r.P99ms }), failures(rs),
			cpu(rs, redis), cpu(rs, func(r Result) float64 { return r.ServerCPUus }), strings.Join(shares, "; "))
	}
	fixed := false
	for _, l := range labels {
		rs := runs[l]
		if rs[0].Rate == 0 {
			continue
		}
		if !fixed {
			fmt.Println()
			fmt.Println("Open loop at fixed rates (latency from each request's scheduled time):")
			fmt.Println()
			fmt.Println("| run | rate/s | runs | answered/s | p50 ms | p99 ms | p99.9 ms | failures | Redis CPU µs/refresh | server CPU µs/refresh | Redis bytes in/out per refresh | Redis CPU ÷ floor's (paired) |")
			fmt.Println("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
			fixed = true
		}
		ratio := ""
		if kind, rest, _ := strings.Cut(l, "/"); !strings.HasPrefix(kind, "floor") {
			if fr, ok := runs["floor/"+rest]; ok {
				med, lo, hi := paired(rs, fr, redis)
				ratio = fmt.Sprintf("**%.2f×** (%.2f–%.2f)", med, lo, hi)
			}
		}
		fmt.Printf("| %s | %.0f | %d | %.0f | %.2f | %.2f | %.2f | %d | %s | %s | %.0f / %.0f | %s |\n", l, rs[0].Rate, len(rs), median(rs, rps),
			median(rs, func(r Result) float64 { return r.P50ms }), median(rs, func(r Result) float64 { return r.P99ms }),
			median(rs, func(r Result) float64 { return r.P999ms }), failures(rs),
			cpu(rs, redis), cpu(rs, func(r Result) float64 { return r.ServerCPUus }),
			median(rs, func(r Result) float64 { return r.RedisInB }), median(rs, func(r Result) float64 { return r.RedisOutB }), ratio)
	}
	if len(ratios) > 0 {
		fmt.Println()
		printRatios(os.Stdout, runs, ratios)
	}
	return nil
}

// printRatios prints, for each "A=B" of pairs whose labels both ran, A's
// req/s, server CPU and Redis CPU per refresh over B's: the median of the
// per-round ratios (A's i-th run against B's i-th, which ran beside it) and
// their range. A figure either lacks (no Redis, no -pid) is left blank.
func printRatios(w io.Writer, runs map[string][]Result, pairs []string) {
	figures := []func(Result) float64{
		func(r Result) float64 { return r.RPS },
		func(r Result) float64 { return r.ServerCPUus },
		func(r Result) float64 { return r.RedisCPUus },
	}
	header := false
	for _, p := range pairs {
		a, b, _ := strings.Cut(p, "=")
		ra, rb := runs[a], runs[b]
		if len(ra) == 0 || len(rb) == 0 {
			continue
		}
		if !header {
			fmt.Fprintln(w, "Paired ratios (median of the per-round ratios; range):")
			fmt.Fprintln(w)
			fmt.Fprintln(w, "| run | against | rounds | req/s ratio | server CPU µs/refresh ratio | Redis CPU µs/refresh ratio |")
			fmt.Fprintln(w, "| --- | --- | --- | --- | --- | --- |")
			header = true
		}
		// Redis CPU only where Redis read a byte or more per refresh on both
		// sides: beside a memory store it is Redis' idle CPU
		inB := func(r Result) float64 { return r.RedisInB }
		withRedis := median(ra, inB) >= 1 && median(rb, inB) >= 1
		cells := make([]string, len(figures))
		for i, f := range figures {
			if i == 2 && !withRedis {
				continue
			}
			if median(ra, f) > 0 && median(rb, f) > 0 {
				med, lo, hi := paired(ra, rb, f)
				cells[i] = fmt.Sprintf("**%.2f×** (%.2f–%.2f)", med, lo, hi)
			}
		}
		fmt.Fprintf(w, "| %s | %s | %d | %s |\n", a, b, min(len(ra), len(rb)), strings.Join(cells, " | "))
	}
}

// readResults reads one Result a line, by label, labels in first-seen order.
func readResults(file string) (map[string][]Result, []string, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	runs := map[string][]Result{}
	var labels []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var r Result
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			return nil, nil, fmt.Errorf("%s: %w", file, err)
		}
		if _, seen := runs[r.Label]; !seen {
			labels = append(labels, r.Label)
		}
		runs[r.Label] = append(runs[r.Label], r)
	}
	return runs, labels, sc.Err()
}

func failures(rs []Result) (n int64) {
	for _, r := range rs {
		n += r.Failures
	}
	return n
}

// cpu is the median of a CPU figure, blank where it was not measured.
func cpu(rs []Result, f func(Result) float64) string {
	if m := median(rs, f); m > 0 {
		return fmt.Sprintf("%.1f", m)
	}
	return ""
}

// paired is the median, least and greatest of f(rs[i])/f(floor[i]): each
// run against the floor's run beside it.
func paired(rs, floor []Result, f func(Result) float64) (med, lo, hi float64) {
	shares := make([]float64, min(len(rs), len(floor)))
	for i := range shares {
		shares[i] = f(rs[i]) / f(floor[i])
	}
	slices.Sort(shares)
	return middle(shares), shares[0], shares[len(shares)-1]
}

// median of f over rs.
func median(rs []Result, f func(Result) float64) float64 {
	v := make([]float64, len(rs))
	for i, r := range rs {
		v[i] = f(r)
	}
	slices.Sort(v)
	return middle(v)
}

// middle is the median of sorted values.
func middle(v []float64) float64 {
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}
