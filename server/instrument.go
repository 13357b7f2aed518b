package server

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tokend/tokend/internal/tokens/denylist"
	"github.com/tokend/tokend/internal/tokens/session"
	"github.com/tokend/tokend/server/histogram"
)

// Store operations, as the op label of tokend_store_duration_seconds.
const (
	opCreate = iota
	opRotate
	opRevoke
	opRevokeSubject
	opPing
	opLookup
	numOps
)

var opNames = [numOps]string{"create", "rotate", "revoke", "revoke_subject", "ping", "lookup"}

// storeSeries are resolved once per op: timing a call costs two clock reads
// and the striped histogram's two atomic adds.
type storeSeries struct {
	latency  [numOps]*histogram.Histogram
	failures [numOps]prometheus.Counter
}

func newStoreSeries(reg prometheus.Registerer) *storeSeries {
	latency := histogram.NewVec("tokend_store_duration_seconds",
		"Time the session store took to answer, by operation (lookup: a denylist confirmation).", "op", latencyBuckets)
	failures := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tokend_store_failures_total",
		Help: "Store calls that failed: unavailable, timed out or an unexpected error (not a rule's answer such as reuse).",
	}, []string{"op"})
	reg.MustRegister(latency, failures)
	s := &storeSeries{}
	for op := range numOps {
		s.latency[op] = latency.With(opNames[op])
		s.failures[op] = failures.WithLabelValues(opNames[op])
	}
	return s
}

// epoch anchors the store calls' timings: time.Since(epoch) reads the
// monotonic clock alone, where time.Now reads the wall clock too.
var epoch = time.Now()

func monotonic() time.Duration { return time.Since(epoch) }

// observe records one call of op that started at start (monotonic()).
func (s *storeSeries) observe(op int, start time.Duration, err error) {
	s.latency[op].Observe(monotonic() - start)
	if err == nil {
		return
	}
	switch classify(err) {
	case outUnavailable, outError: // not a rule's answer such as reuse
		s.failures[op].Inc()
	}
}

// Store returns st with every call timed into tokend_store_duration_seconds.
func (m *Metrics) Store(st session.Store) session.Store { return timedStore{st, m.store} }

// Feed returns f with Lookup (the denylist's confirmations) timed.
func (m *Metrics) Feed(f session.Feed) session.Feed { return timedFeed{f, m.store} }

type timedStore struct {
	session.Store
	m *storeSeries
}

func (t timedStore) Create(ctx context.Context, s session.Session, idle time.Duration) error {
	start := monotonic()
	err := t.Store.Create(ctx, s, idle)
	t.m.observe(opCreate, start, err)
	return err
}

func (t timedStore) Rotate(ctx context.Context, st session.Step) (session.Rotation, error) {
	start := monotonic()
	r, err := t.Store.Rotate(ctx, st)
	t.m.observe(opRotate, start, err)
	return r, err
}

func (t timedStore) Revoke(ctx context.Context, id string) error {
	start := monotonic()
	err := t.Store.Revoke(ctx, id)
	t.m.observe(opRevoke, start, err)
	return err
}

func (t timedStore) RevokeAs(ctx context.Context, st session.Step) error {
	start := monotonic()
	err := t.Store.RevokeAs(ctx, st)
	t.m.observe(opRevoke, start, err)
	return err
}

func (t timedStore) RevokeSubject(ctx context.Context, sub string, deleted bool) (int, error) {
	start := monotonic()
	n, err := t.Store.RevokeSubject(ctx, sub, deleted)
	t.m.observe(opRevokeSubject, start, err)
	return n, err
}

func (t timedStore) RevokeLegacy(ctx context.Context, st session.Step) error {
	start := monotonic()
	err := t.Store.RevokeLegacy(ctx, st)
	t.m.observe(opRevoke, start, err)
	return err
}

func (t timedStore) RevokeLegacySubject(ctx context.Context, sub string, at time.Time, deleted bool) error {
	start := monotonic()
	err := t.Store.RevokeLegacySubject(ctx, sub, at, deleted)
	t.m.observe(opRevokeSubject, start, err)
	return err
}

func (t timedStore) Ping(ctx context.Context) error {
	start := monotonic()
	err := t.Store.Ping(ctx)
	t.m.observe(opPing, start, err)
	return err
}

type timedFeed struct {
	session.Feed
	m *storeSeries
}

func (t timedFeed) Lookup(ctx context.Context, id string) (session.Revocation, bool, error) {
	start := monotonic()
	r, ok, err := t.Feed.Lookup(ctx, id)
	t.m.observe(opLookup, start, err)
	return r, ok, err
}

// FeedLag observes how long a revocation took to reach this instance; it is
// the denylist's Config.OnHeard.
func (m *Metrics) FeedLag(lag time.Duration) { m.feedLag.Observe(lag.Seconds()) }

// Denylist exports the denylist's state, read once per scrape (counting the
// filters' bits is not free); now is the clock ages are measured with.
func (m *Metrics) Denylist(stats func() denylist.Stats, now func() time.Time) {
	c := &denylistCollector{stats: stats, now: now}
	for _, d := range denylistMetrics {
		c.descs = append(c.descs, prometheus.NewDesc(d.name, d.help, nil, nil))
	}
	m.Registry.MustRegister(c)
}

// denylistMetrics are the series of the denylist: name, help, type and value.
var denylistMetrics = []struct {
	name, help string
	typ        prometheus.ValueType
	value      func(s denylist.Stats, now time.Time) float64
}{
	{"tokend_denylist_ready", "1 once the denylist has caught up with the revocations published before this instance started.",
		prometheus.GaugeValue, func(s denylist.Stats, _ time.Time) float64 { return b2f(s.Ready) }},
	{"tokend_denylist_feed_silence_seconds", "Seconds since the revocation feed last delivered a revocation or confirmed it was current (every second or two when healthy; -1: never).",
		prometheus.GaugeValue, func(s denylist.Stats, now time.Time) float64 { return since(now, s.LastCurrent) }},
	{"tokend_denylist_last_revocation_timestamp_seconds", "Publication time of the newest revocation heard (0: none yet).",
		prometheus.GaugeValue, func(s denylist.Stats, _ time.Time) float64 { return unix(s.LastHeard) }},
	{"tokend_denylist_revocations_heard_total", "Revocations heard from the feed, repeats included.",
		prometheus.CounterValue, func(s denylist.Stats, _ time.Time) float64 { return float64(s.Heard) }},
	{"tokend_denylist_filter_hits_total", "Checks the bloom filter could not answer alone (a revoked session or a false positive).",
		prometheus.CounterValue, func(s denylist.Stats, _ time.Time) float64 { return float64(s.FilterHits) }},
	{"tokend_denylist_cache_hits_total", "Filter hits answered from the cache of confirmed answers.",
		prometheus.CounterValue, func(s denylist.Stats, _ time.Time) float64 { return float64(s.CacheHits) }},
	{"tokend_denylist_confirmations_total", "Filter hits confirmed with the store.",
		prometheus.CounterValue, func(s denylist.Stats, _ time.Time) float64 { return float64(s.Lookups) }},
	{"tokend_denylist_false_positives_total", "Confirmations that found the session not revoked.",
		prometheus.CounterValue, func(s denylist.Stats, _ time.Time) float64 { return float64(s.FalsePositives) }},
	{"tokend_denylist_confirmation_failures_total", "Confirmations the store did not answer (the check fails closed: 503).",
		prometheus.CounterValue, func(s denylist.Stats, _ time.Time) float64 { return float64(s.LookupErrors) }},
	{"tokend_denylist_generations_total", "Bloom filter generations started (one per access-token lifetime), the first included.",
		prometheus.CounterValue, func(s denylist.Stats, _ time.Time) float64 { return float64(s.Generations) }},
	{"tokend_denylist_bloom_bytes", "Memory of the two bloom filter generations.",
		prometheus.GaugeValue, func(s denylist.Stats, _ time.Time) float64 { return float64(s.BloomBytes) }},
}

var fillDesc = prometheus.NewDesc("tokend_denylist_bloom_fill_ratio",
	"Share of the bloom filter's bits set, by generation (current, previous); the false-positive rate is about fill^probes.",
	[]string{"generation"}, nil)

type denylistCollector struct {
	stats func() denylist.Stats
	now   func() time.Time
	descs []*prometheus.Desc // denylistMetrics', in order
}

func (c *denylistCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
	ch <- fillDesc
}

func (c *denylistCollector) Collect(ch chan<- prometheus.Metric) {
	s, now := c.stats(), c.now()
	for i, d := range c.descs {
		ch <- prometheus.MustNewConstMetric(d, denylistMetrics[i].typ, denylistMetrics[i].value(s, now))
	}
	ch <- prometheus.MustNewConstMetric(fillDesc, prometheus.GaugeValue, s.Fill[0], "current")
	ch <- prometheus.MustNewConstMetric(fillDesc, prometheus.GaugeValue, s.Fill[1], "previous")
}

func since(now, t time.Time) float64 {
	if t.IsZero() {
		return -1
	}
	return now.Sub(t).Seconds()
}

// BuildInfo exports tokend_build_info, 1, labelled with what the binary says
// of itself.
func (m *Metrics) BuildInfo(version, revision, goVersion string) {
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "tokend_build_info",
		Help:        "1, labelled with the module version, VCS revision and Go version of the binary.",
		ConstLabels: prometheus.Labels{"version": version, "revision": revision, "goversion": goVersion},
	})
	g.Set(1)
	m.Registry.MustRegister(g)
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func unix(t time.Time) float64 {
	if t.IsZero() {
		return 0
	}
	return float64(t.UnixMilli()) / 1000
}
