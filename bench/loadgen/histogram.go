package loadgen

import (
	"math"
	"math/bits"
	"time"
)

// Histogram layout: log-linear, in the style of HdrHistogram. Values below
// subCount are counted exactly. Above, each power-of-two range [2^m, 2^(m+1))
// is split into subCount/2 equal buckets, so a bucket is at most 2^-(subBits-1)
// of the values in it wide, and the bucket's midpoint, which is what
// percentiles report, is within RelativeError of every value counted in it.
const (
	subBits  = 9
	subCount = 1 << subBits // 512
	subHalf  = subCount / 2
	// maxBits bounds the tracked range: values of 2^maxBits ns (about 2.4
	// hours) and more share the last bucket; Max still reports them exactly.
	maxBits    = 43
	numBuckets = subCount + (maxBits-subBits)*subHalf
)

// RelativeError bounds how far a percentile reported by a Histogram can be
// from the exact value of the same rank: |reported-exact| <= RelativeError *
// exact (and values below 512 ns are exact).
const RelativeError = 1.0 / subCount

// Histogram counts durations with bounded relative error (see RelativeError)
// in a fixed 72 KiB table, so recording never allocates. The zero value is
// not usable; use NewHistogram. A Histogram is not safe for concurrent use.
type Histogram struct {
	counts []uint64
	total  uint64
	sum    float64 // ns, for the mean
	sumSq  float64 // ns^2, for the standard deviation
	min    int64
	max    int64
}

// NewHistogram returns an empty histogram.
func NewHistogram() *Histogram {
	return &Histogram{counts: make([]uint64, numBuckets), min: math.MaxInt64}
}

// bucketOf maps a value in ns to its bucket index.
func bucketOf(v int64) int {
	if v < subCount {
		if v < 0 {
			return 0
		}
		return int(v)
	}
	e := bits.Len64(uint64(v)) - subBits // >= 1: v>>e has subBits bits
	if e > maxBits-subBits {
		return numBuckets - 1
	}
	return subCount + (e-1)*subHalf + int(uint64(v)>>uint(e)) - subHalf
}

// bucketRange returns the smallest value of bucket i and its width.
func bucketRange(i int) (lo, width int64) {
	if i < subCount {
		return int64(i), 1
	}
	j := i - subCount
	e := j/subHalf + 1
	m := int64(j%subHalf + subHalf)
	return m << uint(e), 1 << uint(e)
}

// Record adds one duration. Negative durations count as zero.
func (h *Histogram) Record(d time.Duration) {
	v := int64(d)
	if v < 0 {
		v = 0
	}
	h.counts[bucketOf(v)]++
	h.total++
	f := float64(v)
	h.sum += f
	h.sumSq += f * f
	if v < h.min {
		h.min = v
	}
	if v > h.max {
		h.max = v
	}
}

// Merge adds every value counted in o to h.
func (h *Histogram) Merge(o *Histogram) {
	if o.total == 0 {
		return
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.total += o.total
	h.sum += o.sum
	h.sumSq += o.sumSq
	h.min = min(h.min, o.min)
	h.max = max(h.max, o.max)
}

// Reset empties h.
func (h *Histogram) Reset() {
	clear(h.counts)
	*h = Histogram{counts: h.counts, min: math.MaxInt64}
}

// Count is the number of recorded values.
func (h *Histogram) Count() uint64 { return h.total }

// Min is the smallest recorded value, exactly; 0 when empty.
func (h *Histogram) Min() time.Duration {
	if h.total == 0 {
		return 0
	}
	return time.Duration(h.min)
}

// Max is the largest recorded value, exactly; 0 when empty.
func (h *Histogram) Max() time.Duration { return time.Duration(h.max) }

// Mean is the exact arithmetic mean; 0 when empty.
func (h *Histogram) Mean() time.Duration {
	if h.total == 0 {
		return 0
	}
	return time.Duration(h.sum / float64(h.total))
}

// StdDev is the population standard deviation; 0 when empty.
func (h *Histogram) StdDev() time.Duration {
	if h.total == 0 {
		return 0
	}
	n := float64(h.total)
	mean := h.sum / n
	v := h.sumSq/n - mean*mean
	if v <= 0 {
		return 0
	}
	return time.Duration(math.Sqrt(v))
}

// Percentile returns the value at percentile p (0 < p <= 100) by the
// nearest-rank method: the smallest recorded value such that at least p% of
// all values are <= it, to within RelativeError. Percentile(100) is Max.
// It returns 0 for an empty histogram.
func (h *Histogram) Percentile(p float64) time.Duration {
	if h.total == 0 {
		return 0
	}
	// The nearest rank, ceil(p/100 * total), in integers: in floating point
	// 99.9/100*1000 is 999.0000000000001 and would round up to the maximum.
	// p counts in thousandths of a percent.
	pm := uint64(math.Round(max(p, 0) * 1000))
	rank := (pm*h.total + 99999) / 100000
	rank = max(1, min(rank, h.total))
	if rank == h.total {
		return time.Duration(h.max)
	}
	if rank == 1 {
		return time.Duration(h.min)
	}
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			lo, w := bucketRange(i)
			v := lo + (w-1)/2
			// The extremes are known exactly; never report beyond them.
			return time.Duration(max(h.min, min(v, h.max)))
		}
	}
	return time.Duration(h.max)
}
