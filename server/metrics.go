package server

import (
	"errors"
	"maps"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/tokend/tokend/internal/tokens"
	"github.com/tokend/tokend/internal/tokens/dpop"
	"github.com/tokend/tokend/internal/tokens/session"
	"github.com/tokend/tokend/server/histogram"
)

// Metrics are tokend's Prometheus series. The series of a (route, status)
// are resolved once and kept in a copy-on-write map, so counting a request
// costs an atomic load, a map read and the series' own atomic adds: no
// label lookup, and no lock shared by every request.
type Metrics struct {
	Registry *prometheus.Registry

	requests *prometheus.CounterVec
	outcomes *prometheus.CounterVec
	duration *histogram.Vec // striped: observed by every refresh from every core
	lost     prometheus.Counter
	feedLag  prometheus.Histogram
	store    *storeSeries

	byOut  [numOutcomes]prometheus.Counter
	mu     sync.Mutex // serialises adding series
	series atomic.Pointer[map[routeStatus]requestSeries]
}

type routeStatus struct {
	route  string
	status int
}

// requestSeries are the series one request of a route and status touches.
type requestSeries struct {
	count   prometheus.Counter
	latency *histogram.Histogram
}

// latencyBuckets are the request's and the store call's histograms':
// 100 µs to 1 s.
var latencyBuckets = []time.Duration{100 * time.Microsecond, 250 * time.Microsecond, 500 * time.Microsecond, time.Millisecond,
	2500 * time.Microsecond, 5 * time.Millisecond, 10 * time.Millisecond, 25 * time.Millisecond, 50 * time.Millisecond,
	100 * time.Millisecond, 250 * time.Millisecond, time.Second}

// NewMetrics registers tokend's series, and the Go and process collectors,
// on a fresh registry.
func NewMetrics() *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tokend_requests_total", Help: "HTTP requests by route and status.",
		}, []string{"route", "status"}),
		outcomes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tokend_refresh_outcomes_total", Help: "Refresh requests by outcome.",
		}, []string{"outcome"}),
		duration: histogram.NewVec("tokend_request_duration_seconds", "Time to answer, by route.", "route", latencyBuckets),
		lost: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tokend_rotations_lost_total",
			Help: "Rotations the store acknowledged and then lost (failover, restart), advanced past when the client presented its newer token.",
		}),
	}
	m.feedLag = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "tokend_denylist_feed_lag_seconds",
		Help:    "Time from a revocation's publication to this instance hearing it (clock skew between instances included).",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
	})
	m.series.Store(&map[routeStatus]requestSeries{})
	m.store = newStoreSeries(m.Registry)
	m.Registry.MustRegister(m.requests, m.outcomes, m.duration, m.lost, m.feedLag,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	for o := outcome(0); o < numOutcomes; o++ {
		m.byOut[o] = m.outcomes.WithLabelValues(o.String())
	}
	return m
}

func (m *Metrics) request(route string, status int, took time.Duration) {
	k := routeStatus{route, status}
	rs, ok := (*m.series.Load())[k]
	if !ok {
		rs = m.add(k)
	}
	rs.count.Inc()
	rs.latency.Observe(took)
}

// add resolves the series of k, the first time k is seen, into a new copy
// of the map: writers are rare (a few routes times a few statuses).
func (m *Metrics) add(k routeStatus) requestSeries {
	m.mu.Lock()
	defer m.mu.Unlock()
	old := *m.series.Load()
	if rs, ok := old[k]; ok {
		return rs
	}
	rs := requestSeries{
		count:   m.requests.WithLabelValues(k.route, strconv.Itoa(k.status)),
		latency: m.duration.With(k.route),
	}
	next := make(map[routeStatus]requestSeries, len(old)+1)
	maps.Copy(next, old)
	next[k] = rs
	m.series.Store(&next)
	return rs
}

func (m *Metrics) outcome(o outcome) { m.byOut[o].Inc() }

// shed counts a refresh or revoke refused because MaxInflight were in flight.
func (m *Metrics) shed() { m.outcome(outShed) }

// refreshed counts a refresh answered 200.
func (m *Metrics) refreshed(p *tokens.Pair) {
	switch {
	case p.Retry:
		m.outcome(outRetry)
	case p.Lost > 0:
		m.outcome(outRecovered)
		m.lost.Add(float64(p.Lost))
	default:
		m.outcome(outAdvanced)
	}
}

// outcome classifies a refresh for tokend_refresh_outcomes_total.
type outcome uint8

const (
	outAdvanced outcome = iota
	outRetry
	outRecovered
	outReuse
	outRevoked
	outDeleted
	outUnknownSession
	outExpired
	outInvalid
	outMalformed
	outAccessToken
	outNotOwner
	outWrongClient
	outScope
	outKeyRequired
	outWrongKey
	outProofReplay
	outInvalidProof
	outUseNonce
	outBadRequest
	outUnavailable
	outShed
	outError
	numOutcomes
)

var outcomeNames = [numOutcomes]string{"advanced", "retry", "recovered", "reuse", "revoked", "subject_deleted",
	"unknown_session", "expired", "invalid", "malformed", "invalid_access_token", "not_owner",
	"wrong_client", "invalid_scope", "dpop_key_required", "dpop_wrong_key", "dpop_replay", "invalid_dpop_proof", "use_dpop_nonce",
	"bad_request", "unavailable", "shed", "error"}

func (o outcome) String() string { return outcomeNames[o] }

// outcomes maps errors to outcomes, most specific first.
var outcomes = []struct {
	err error
	out outcome
}{
	{session.ErrReuse, outReuse},
	{session.ErrRevoked, outRevoked},
	{session.ErrDeleted, outDeleted},
	{session.ErrNotFound, outUnknownSession},
	{session.ErrExpired, outExpired},
	{session.ErrNotOwner, outNotOwner},
	{session.ErrWrongClient, outWrongClient},
	{session.ErrScope, outScope},
	{session.ErrKeyRequired, outKeyRequired},
	{session.ErrWrongKey, outWrongKey},
	{session.ErrReplay, outProofReplay},
	{dpop.ErrUseNonce, outUseNonce},
	{dpop.ErrInvalidProof, outInvalidProof},
	{session.ErrUnavailable, outUnavailable},
	{tokens.ErrAccessToken, outAccessToken},
	{tokens.ErrExpired, outExpired},
	{tokens.ErrMalformed, outMalformed},
	{tokens.ErrInvalid, outInvalid},
	{ErrBadRequest, outBadRequest},
}

func classify(err error) outcome {
	for _, o := range outcomes {
		if errors.Is(err, o.err) {
			return o.out
		}
	}
	return outError
}
