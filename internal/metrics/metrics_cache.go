package metrics

import "github.com/prometheus/client_golang/prometheus"

// Cache and lock host operations. The "op" label is an ABI op name such as
// "cache.get" or "lock.acquire"; both label sets are fixed, and the host
// resolves every child once at start, so counting costs no allocation.
var (
	// CacheOps counts cache and lock host operations by op and outcome:
	// "hit" and "miss" for cache.get, "ok" for other successes, "degraded"
	// when the backend was down and the op answered without it, or the
	// name of the ABI error code replied ("conflict", "unavailable",
	// "invalid", "too_large", "timeout", "denied", "internal").
	CacheOps = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "wasmcorn_cache_operations_total",
		Help: "Cache and lock host operations by op and outcome.",
	}, []string{"op", "outcome"})

	// CacheDegraded counts operations answered while the cache backend was
	// down: reads as misses and writes as no-ops (the request goes on), and
	// incr, add and lock ops as "unavailable" (the guest sees the error).
	CacheDegraded = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "wasmcorn_cache_degraded_total",
		Help: "Cache and lock operations answered without the backend because it was down, by op.",
	}, []string{"op"})

	// LockWait observes how long lock.acquire took, whether it got the
	// lock or not, by outcome ("ok", "conflict", "timeout", ...).
	LockWait = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "wasmcorn_lock_acquire_duration_seconds",
		Help:    "Time lock.acquire took, including waiting for the holder, by outcome.",
		Buckets: []float64{.0001, .0005, .001, .005, .01, .05, .1, .5, 1, 5, 10, 30},
	}, []string{"outcome"})
)

func init() {
	Registry.MustRegister(CacheOps, CacheDegraded, LockWait)
}
