// Package metrics holds the process-wide Prometheus registry. Every package
// that exports metrics declares them in its own file here (metrics_<area>.go)
// with names prefixed "wasmcorn_", registered on Registry, so /metrics shows
// one consistent set and tests can read values with testutil.
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Registry is the registry /metrics serves. It holds the Go runtime and
// process collectors plus every wasmcorn_* metric.
var Registry = prometheus.NewRegistry()

func init() {
	Registry.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
}
