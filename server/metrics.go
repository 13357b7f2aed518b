package server

import (
	"errors"
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"tokend/tokens"
	"tokend/tokens/session"
)

// Metrics are tokend's Prometheus series. Counters are resolved once per
// (route, status) and cached, so counting costs an atomic add, not a label
// lookup.
type Metrics struct {
	Registry *prometheus.Registry

	requests *prometheus.CounterVec
	outcomes *prometheus.CounterVec
	duration *prometheus.HistogramVec

	mu      sync.RWMutex
	byRoute map[routeStatus]prometheus.Counter
	byOut   [numOutcomes]prometheus.Counter
	latency map[string]prometheus.Observer
}

type routeStatus struct {
	route  string
	status int
}

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
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "tokend_request_duration_seconds", Help: "Time to answer, by route.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1},
		}, []string{"route"}),
		byRoute: map[routeStatus]prometheus.Counter{},
		latency: map[string]prometheus.Observer{},
	}
	m.Registry.MustRegister(m.requests, m.outcomes, m.duration,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	for o := outcome(0); o < numOutcomes; o++ {
		m.byOut[o] = m.outcomes.WithLabelValues(o.String())
	}
	return m
}

func (m *Metrics) request(route string, status int, seconds float64) {
	k := routeStatus{route, status}
	m.mu.RLock()
	c, ok := m.byRoute[k]
	h := m.latency[route]
	m.mu.RUnlock()
	if !ok || h == nil {
		m.mu.Lock()
		if c, ok = m.byRoute[k]; !ok {
			c = m.requests.WithLabelValues(route, strconv.Itoa(status))
			m.byRoute[k] = c
		}
		if h = m.latency[route]; h == nil {
			h = m.duration.WithLabelValues(route)
			m.latency[route] = h
		}
		m.mu.Unlock()
	}
	c.Inc()
	h.Observe(seconds)
}

func (m *Metrics) outcome(o outcome) { m.byOut[o].Inc() }

// outcome classifies a refresh for tokend_refresh_outcomes_total.
type outcome uint8

const (
	outAdvanced outcome = iota
	outRetry
	outReuse
	outRevoked
	outDeleted
	outUnknownSession
	outExpired
	outInvalid
	outMalformed
	outAccessToken
	outNotOwner
	outBadRequest
	outUnavailable
	outError
	numOutcomes
)

var outcomeNames = [numOutcomes]string{"advanced", "retry", "reuse", "revoked", "subject_deleted",
	"unknown_session", "expired", "invalid", "malformed", "invalid_access_token", "not_owner", "bad_request", "unavailable", "error"}

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
