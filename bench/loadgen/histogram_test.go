package loadgen

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// exactPercentile is the nearest-rank percentile of sorted.
func exactPercentile(sorted []int64, p float64) int64 {
	// The nearest rank ceil(p/100 * n) in exact rational arithmetic (the
	// percentiles tested have at most three decimals).
	rank := int((int64(math.Round(p*1000))*int64(len(sorted)) + 99999) / 100000)
	rank = max(1, min(rank, len(sorted)))
	return sorted[rank-1]
}

func TestHistogramPercentilesWithinError(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	dists := []struct {
		name string
		gen  func() int64
	}{
		{"constant", func() int64 { return 123_456 }},
		{"small exact", func() int64 { return rng.Int64N(500) }},
		{"uniform 0-10ms", func() int64 { return rng.Int64N(int64(10 * time.Millisecond)) }},
		{"exponential mean 200us", func() int64 { return int64(rng.ExpFloat64() * 200_000) }},
		{"lognormal wide", func() int64 { return int64(math.Exp(rng.NormFloat64()*3 + 12)) }},
		{"bimodal 50us and 2s", func() int64 {
			if rng.IntN(100) == 0 {
				return int64(2*time.Second) + rng.Int64N(1_000_000)
			}
			return 50_000 + rng.Int64N(1000)
		}},
	}
	percentiles := []float64{0.1, 1, 25, 50, 75, 90, 99, 99.9, 99.99, 100}
	for _, d := range dists {
		t.Run(d.name, func(t *testing.T) {
			h := NewHistogram()
			vals := make([]int64, 100_000)
			for i := range vals {
				vals[i] = d.gen()
				h.Record(time.Duration(vals[i]))
			}
			slices.Sort(vals)
			if got := h.Count(); got != uint64(len(vals)) {
				t.Fatalf("Count = %d, want %d", got, len(vals))
			}
			if h.Min() != time.Duration(vals[0]) || h.Max() != time.Duration(vals[len(vals)-1]) {
				t.Errorf("Min/Max = %d/%d, want %d/%d", h.Min(), h.Max(), vals[0], vals[len(vals)-1])
			}
			for _, p := range percentiles {
				want := exactPercentile(vals, p)
				got := int64(h.Percentile(p))
				if diff := math.Abs(float64(got - want)); diff > RelativeError*float64(want) {
					t.Errorf("p%v = %d, exact %d: error %.4f%% > %.4f%%",
						p, got, want, 100*diff/float64(want), 100*RelativeError)
				}
			}
			var sum, sumSq float64
			for _, v := range vals {
				sum += float64(v)
			}
			mean := sum / float64(len(vals))
			for _, v := range vals {
				sumSq += (float64(v) - mean) * (float64(v) - mean)
			}
			sd := math.Sqrt(sumSq / float64(len(vals)))
			if got := float64(h.Mean()); math.Abs(got-mean) > 1+1e-9*mean {
				t.Errorf("Mean = %v, want %v", got, mean)
			}
			if got := float64(h.StdDev()); math.Abs(got-sd) > 1+1e-6*mean {
				t.Errorf("StdDev = %v, want %v", got, sd)
			}
		})
	}
}

func TestHistogramKnownValues(t *testing.T) {
	h := NewHistogram()
	for v := 1; v <= 100; v++ {
		h.Record(time.Duration(v) * time.Millisecond)
	}
	tests := []struct {
		p    float64
		want time.Duration
	}{
		{1, 1 * time.Millisecond},
		{50, 50 * time.Millisecond},
		{90, 90 * time.Millisecond},
		{99, 99 * time.Millisecond},
		{99.9, 100 * time.Millisecond},
		{100, 100 * time.Millisecond},
	}
	for _, tt := range tests {
		got := h.Percentile(tt.p)
		if d := math.Abs(float64(got - tt.want)); d > RelativeError*float64(tt.want) {
			t.Errorf("p%v = %v, want %v (±%.2f%%)", tt.p, got, tt.want, 100*RelativeError)
		}
	}
	if got, want := h.Mean(), 50500*time.Microsecond; got != want {
		t.Errorf("Mean = %v, want %v", got, want)
	}
}

func TestHistogramEmptyAndEdges(t *testing.T) {
	h := NewHistogram()
	if h.Percentile(50) != 0 || h.Min() != 0 || h.Max() != 0 || h.Mean() != 0 || h.StdDev() != 0 {
		t.Fatal("empty histogram must report zeros")
	}
	h.Record(-5)                     // counts as zero
	h.Record(5 * time.Hour)          // beyond the tracked range
	h.Record(time.Duration(1 << 62)) // far beyond
	if h.Min() != 0 {
		t.Errorf("Min = %v, want 0", h.Min())
	}
	if h.Max() != time.Duration(1<<62) {
		t.Errorf("Max = %v, want exact 1<<62", h.Max())
	}
	if got := h.Percentile(50); got < time.Duration(1)<<(maxBits-1) {
		t.Errorf("p50 = %v, want a value in the overflow bucket", got)
	}
	h.Reset()
	if h.Count() != 0 || h.Max() != 0 || h.Percentile(99) != 0 {
		t.Error("Reset did not empty the histogram")
	}
}

func TestHistogramMergeEqualsRecordAll(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	all, a, b := NewHistogram(), NewHistogram(), NewHistogram()
	for i := range 50_000 {
		v := time.Duration(rng.ExpFloat64() * 1e6)
		all.Record(v)
		if i%3 == 0 {
			a.Record(v)
		} else {
			b.Record(v)
		}
	}
	a.Merge(b)
	a.Merge(NewHistogram()) // merging an empty one changes nothing
	for _, p := range []float64{1, 50, 90, 99, 99.9, 100} {
		if a.Percentile(p) != all.Percentile(p) {
			t.Errorf("p%v: merged %v, recorded %v", p, a.Percentile(p), all.Percentile(p))
		}
	}
	if a.Count() != all.Count() || a.Min() != all.Min() || a.Max() != all.Max() {
		t.Error("merged count/min/max differ")
	}
}

func TestBucketLayout(t *testing.T) {
	prev := -1
	for v := int64(0); v < 1<<20; v += 1 + v/1000 {
		i := bucketOf(v)
		if i < prev {
			t.Fatalf("bucketOf(%d) = %d < bucketOf of a smaller value (%d)", v, i, prev)
		}
		prev = i
	}
	if got := bucketOf(1<<maxBits - 1); got != numBuckets-1 {
		t.Errorf("largest tracked value in bucket %d, want last (%d)", got, numBuckets-1)
	}
}

func checkBucket(t *testing.T, v int64) {
	i := bucketOf(v)
	if i < 0 || i >= numBuckets {
		t.Fatalf("bucketOf(%d) = %d out of range", v, i)
	}
	if v >= 1<<maxBits {
		if i != numBuckets-1 {
			t.Fatalf("bucketOf(%d) = %d, want overflow bucket", v, i)
		}
		return
	}
	lo, w := bucketRange(i)
	if v < lo || v >= lo+w {
		t.Fatalf("value %d outside its bucket %d [%d, %d)", v, i, lo, lo+w)
	}
	mid := lo + (w-1)/2
	if d := math.Abs(float64(mid - v)); d > RelativeError*float64(v) {
		t.Fatalf("bucket %d midpoint %d is %.5f from %d, more than %.5f", i, mid, d/float64(v), v, RelativeError)
	}
}

func FuzzBucket(f *testing.F) {
	for _, v := range []int64{0, 1, 511, 512, 513, 1023, 1024, 1 << 30, 1<<maxBits - 1, 1 << maxBits, math.MaxInt64} {
		f.Add(v)
	}
	f.Fuzz(func(t *testing.T, v int64) {
		if v < 0 {
			v = -(v + 1)
		}
		checkBucket(t, v)
	})
}

func BenchmarkHistogramRecord(b *testing.B) {
	b.ReportAllocs()
	h := NewHistogram()
	for i := range b.N {
		h.Record(time.Duration(i&0xffff) * time.Microsecond)
	}
}

// The nearest-rank p99.9 of 1,000 values is the 999th; the float
// rank 99.9/100*1000 = 999.0000000000001 rounds up to 1000, so p99.9 is
// reported as the maximum.
func TestPercentileRankExact(t *testing.T) {
	h := NewHistogram()
	for range 999 {
		h.Record(time.Millisecond)
	}
	h.Record(time.Second)
	if got := h.Percentile(99.9); float64(got) > (1+RelativeError)*float64(time.Millisecond) {
		t.Errorf("p99.9 of 999 x 1ms and 1 x 1s = %v, want 1ms (the 999th value)", got)
	}
}
