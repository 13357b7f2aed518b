package histogram

import (
	"fmt"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

var bounds = []time.Duration{100 * time.Microsecond, 250 * time.Microsecond, 500 * time.Microsecond, time.Millisecond,
	2500 * time.Microsecond, 5 * time.Millisecond, 10 * time.Millisecond, 25 * time.Millisecond, 50 * time.Millisecond,
	100 * time.Millisecond, 250 * time.Millisecond, time.Second}

func TestSnapshot(t *testing.T) {
	for _, tc := range []struct {
		name string
		obs  []time.Duration
		want []uint64 // cumulative, per bound
	}{
		{"none", nil, []uint64{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}},
		{"a bound is inclusive", []time.Duration{100 * time.Microsecond}, []uint64{1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}},
		{"just above a bound", []time.Duration{100*time.Microsecond + 1}, []uint64{0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}},
		{"zero and negative", []time.Duration{0, -time.Second}, []uint64{2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2}},
		{"above every bound", []time.Duration{2 * time.Second}, []uint64{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}},
		{"spread", []time.Duration{50 * time.Microsecond, 300 * time.Microsecond, 3 * time.Millisecond, time.Second, time.Minute},
			[]uint64{1, 1, 2, 2, 2, 3, 3, 3, 3, 3, 3, 4}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := New(bounds)
			var sum time.Duration
			for _, d := range tc.obs {
				h.Observe(d)
				sum += d
			}
			count, gotSum, cumulative := h.Snapshot()
			if count != uint64(len(tc.obs)) || gotSum != sum || fmt.Sprint(cumulative) != fmt.Sprint(tc.want) {
				t.Fatalf("Snapshot = %d, %v, %v; want %d, %v, %v", count, gotSum, cumulative, len(tc.obs), sum, tc.want)
			}
		})
	}
}

// Every observation from many goroutines at once is counted, once.
func TestConcurrentObservations(t *testing.T) {
	h := New(bounds)
	const goroutines, each = 64, 2000
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				h.Observe(time.Duration(g*each+i) * time.Microsecond)
			}
		}()
	}
	wg.Wait()
	count, sum, cumulative := h.Snapshot()
	n := goroutines * each
	if count != uint64(n) || sum != time.Duration(n*(n-1)/2)*time.Microsecond {
		t.Fatalf("count %d sum %v; want %d and %v", count, sum, n, time.Duration(n*(n-1)/2)*time.Microsecond)
	}
	// values are 0 µs to n-1 µs: 101 of them at most 100 µs, all at most 1 s
	if cumulative[0] != 101 || cumulative[len(cumulative)-1] != uint64(n) {
		t.Fatalf("cumulative %v; want 101 at 100 µs and %d at 1 s", cumulative, n)
	}
}

// Goroutines running at once add to different stripes.
func TestStripesSpread(t *testing.T) {
	seen := map[uint]bool{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			i := stripeIndex()
			if i >= stripes {
				t.Errorf("stripe %d of %d", i, stripes)
			}
			mu.Lock()
			seen[i] = true
			mu.Unlock()
		}()
	}
	wg.Wait()
	if len(seen) < stripes/2 {
		t.Fatalf("64 goroutines used %d stripes of %d", len(seen), stripes)
	}
}

// A Vec exports exactly what client_golang's HistogramVec exports for the
// same observations: name, help, label, buckets, count and sum.
func TestVecMatchesClientGolang(t *testing.T) {
	seconds := make([]float64, len(bounds))
	for i, b := range bounds {
		seconds[i] = b.Seconds()
	}
	theirs := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "tokend_x_seconds", Help: "Time.", Buckets: seconds}, []string{"route"})
	ours := NewVec("tokend_x_seconds", "Time.", "route", bounds)
	for i := range 5000 {
		route := []string{"refresh", "jwks", "revoke"}[i%3]
		d := time.Duration(i*i) * time.Microsecond / 7
		theirs.WithLabelValues(route).Observe(d.Seconds())
		ours.With(route).Observe(d)
	}
	want, got := gather(t, theirs), gather(t, ours)
	if len(got) != 3 || len(got) != len(want) {
		t.Fatalf("%d series; want %d", len(got), len(want))
	}
	for route, w := range want {
		g := got[route]
		if g == nil || g.GetSampleCount() != w.GetSampleCount() || math.Abs(g.GetSampleSum()-w.GetSampleSum()) > 1e-9*w.GetSampleSum() ||
			len(g.GetBucket()) != len(w.GetBucket()) {
			t.Fatalf("%s: got %v; want %v", route, g, w)
		}
		for i, b := range w.GetBucket() {
			if gb := g.GetBucket()[i]; gb.GetUpperBound() != b.GetUpperBound() || gb.GetCumulativeCount() != b.GetCumulativeCount() {
				t.Fatalf("%s bucket %d: got le=%v %d; want le=%v %d", route, i, gb.GetUpperBound(), gb.GetCumulativeCount(), b.GetUpperBound(), b.GetCumulativeCount())
			}
		}
	}
}

func gather(t *testing.T, c prometheus.Collector) map[string]*dto.Histogram {
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	mfs, err := reg.Gather()
	if err != nil || len(mfs) != 1 || mfs[0].GetName() != "tokend_x_seconds" || mfs[0].GetHelp() != "Time." || mfs[0].GetType() != dto.MetricType_HISTOGRAM {
		t.Fatalf("gather: %v, %v", mfs, err)
	}
	out := map[string]*dto.Histogram{}
	for _, m := range mfs[0].GetMetric() {
		out[m.GetLabel()[0].GetValue()] = m.GetHistogram()
	}
	return out
}

// BenchmarkObserve: one observation from every core at once, striped and as
// client_golang's histogram does it (ns/op is wall time over all cores).
func BenchmarkObserve(b *testing.B) {
	b.Run("striped", func(b *testing.B) {
		h := New(bounds)
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				h.Observe(300 * time.Microsecond)
			}
		})
	})
	b.Run("client_golang", func(b *testing.B) {
		seconds := make([]float64, len(bounds))
		for i, d := range bounds {
			seconds[i] = d.Seconds()
		}
		h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "x", Buckets: seconds})
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				h.Observe((300 * time.Microsecond).Seconds())
			}
		})
	})
}
