package histogram

import (
	"slices"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/prometheus/client_golang/prometheus"
)

// MaxBuckets is the most bounds a histogram takes.
const MaxBuckets = 15

// stripes is how many copies of its counts a histogram keeps: with a
// handful of cores serving at once, two land on one stripe rarely.
const stripes = 16

// Histogram counts durations into buckets by upper bound. Safe for
// concurrent use; the zero value is not: use New.
type Histogram struct {
	bounds  []time.Duration // ascending upper bounds (le), at most MaxBuckets
	stripes [stripes]stripe
}

// stripe is one copy of the counts, padded to whole cache lines so that
// two stripes never share one.
type stripe struct {
	counts [MaxBuckets + 1]atomic.Uint64 // per bucket, not cumulative; the last: above every bound
	sum    atomic.Int64                  // nanoseconds
	_      [56]byte
}

// New returns a histogram with the given upper bounds, ascending.
func New(bounds []time.Duration) *Histogram {
	if len(bounds) > MaxBuckets || !slices.IsSorted(bounds) {
		panic("histogram: at most 15 bounds, ascending")
	}
	return &Histogram{bounds: slices.Clone(bounds)}
}

// Observe counts one duration.
func (h *Histogram) Observe(d time.Duration) {
	i := 0
	for i < len(h.bounds) && d > h.bounds[i] { // a bound is inclusive (le)
		i++
	}
	s := &h.stripes[stripeIndex()]
	s.counts[i].Add(1)
	s.sum.Add(int64(d))
}

// stripeIndex picks the stripe of the calling goroutine by the address of
// its stack: goroutines running at the same moment have stacks apart, and
// one keeps its stripe while it serves a connection (until its stack moves,
// which only changes the stripe). A multiplicative hash spreads the
// addresses' high bits over the stripes.
func stripeIndex() uint {
	var here byte
	return uint((uint64(uintptr(unsafe.Pointer(&here))>>10) * 0x9e3779b97f4a7c15) >> 60) // 60 = 64 - log2(stripes)
}

// Snapshot adds the stripes up: the count of every observation, their sum,
// and the cumulative count at each bound. An observation made during the
// snapshot may be in the counts and not yet in the sum.
func (h *Histogram) Snapshot() (count uint64, sum time.Duration, cumulative []uint64) {
	var counts [MaxBuckets + 1]uint64
	for i := range h.stripes {
		s := &h.stripes[i]
		for b := 0; b <= len(h.bounds); b++ {
			counts[b] += s.counts[b].Load()
		}
		sum += time.Duration(s.sum.Load())
	}
	cumulative = make([]uint64, len(h.bounds))
	for b := range h.bounds {
		count += counts[b]
		cumulative[b] = count
	}
	return count + counts[len(h.bounds)], sum, cumulative
}

// Vec is a family of histograms told apart by one label, exported as one
// Prometheus histogram metric. Register it with a prometheus.Registerer.
type Vec struct {
	desc   *prometheus.Desc
	bounds []time.Duration
	mu     sync.Mutex
	byVal  map[string]*Histogram
	order  []string // label values in the order first asked for
}

// NewVec describes the family name with help, labelled label.
func NewVec(name, help, label string, bounds []time.Duration) *Vec {
	return &Vec{
		desc:   prometheus.NewDesc(name, help, []string{label}, nil),
		bounds: slices.Clone(bounds),
		byVal:  map[string]*Histogram{},
	}
}

// With returns the histogram of the label's value, made the first time:
// callers resolve it once and keep it.
func (v *Vec) With(value string) *Histogram {
	v.mu.Lock()
	defer v.mu.Unlock()
	h, ok := v.byVal[value]
	if !ok {
		h = New(v.bounds)
		v.byVal[value] = h
		v.order = append(v.order, value)
	}
	return h
}

// Describe implements prometheus.Collector.
func (v *Vec) Describe(ch chan<- *prometheus.Desc) { ch <- v.desc }

// Collect implements prometheus.Collector.
func (v *Vec) Collect(ch chan<- prometheus.Metric) {
	v.mu.Lock()
	values, hs := slices.Clone(v.order), make([]*Histogram, len(v.order))
	for i, value := range values {
		hs[i] = v.byVal[value]
	}
	v.mu.Unlock()
	for i, h := range hs {
		count, sum, cumulative := h.Snapshot()
		buckets := make(map[float64]uint64, len(v.bounds))
		for b, bound := range v.bounds {
			buckets[bound.Seconds()] = cumulative[b]
		}
		ch <- prometheus.MustNewConstHistogram(v.desc, count, sum.Seconds(), buckets, values[i])
	}
}
