package metrics

import "github.com/prometheus/client_golang/prometheus"

// HTTP front-end metrics. The "handler" label is a plugin name, or one of
// "_static", "_health", "_unmatched" (404/405) and "_error" (answered by the
// server itself); its cardinality is bounded by the plugins directory. The
// server resolves label children once per plugin load, so observing costs
// no allocation per request.
var (
	// HTTPRequests counts answered requests by handler and status class
	// ("2xx", "4xx"...).
	HTTPRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "wasmcorn_http_requests_total",
		Help: "HTTP requests answered, by handler (plugin name or _static, _health, _unmatched, _error) and status class.",
	}, []string{"handler", "code"})

	// HTTPDuration observes the time from request start to the response
	// being ready to write, by handler.
	HTTPDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "wasmcorn_http_request_duration_seconds",
		Help:    "Time to produce an HTTP response (excluding writing it to the network), by handler.",
		Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
	}, []string{"handler"})

	// HTTPInFlight is the number of requests being handled.
	HTTPInFlight = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "wasmcorn_http_requests_in_flight",
		Help: "HTTP requests currently being handled.",
	})

	// HTTPResponseBytes counts response body bytes (after compression),
	// by handler.
	HTTPResponseBytes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "wasmcorn_http_response_bytes_total",
		Help: "HTTP response body bytes produced, after compression, by handler.",
	}, []string{"handler"})

	// HTTPPluginErrors counts plugin calls that did not produce a
	// response, by plugin and reason: exhausted (503), closed (503),
	// timeout (504), trap (500), too_large (502), bad_response (502),
	// error (500).
	HTTPPluginErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "wasmcorn_http_plugin_errors_total",
		Help: "Plugin calls that failed to produce a response, by reason.",
	}, []string{"plugin", "reason"})

	// HTTPConnErrors counts requests rejected while being read, by reason:
	// body_too_large (413), header_too_large (431), timeout (408),
	// bad_request (400).
	HTTPConnErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "wasmcorn_http_read_errors_total",
		Help: "Requests rejected while being read, by reason.",
	}, []string{"reason"})

	// PluginsLoaded is the number of plugins serving; PluginLoadFailures
	// counts failed plugin loads by plugin.
	PluginsLoaded = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "wasmcorn_plugins_loaded",
		Help: "Plugins currently serving.",
	})
	PluginLoadFailures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "wasmcorn_plugin_load_failures_total",
		Help: "Plugin loads that failed (compile, validation, warm-up, route conflict), by plugin.",
	}, []string{"plugin"})
)

func init() {
	Registry.MustRegister(HTTPRequests, HTTPDuration, HTTPInFlight, HTTPResponseBytes,
		HTTPPluginErrors, HTTPConnErrors, PluginsLoaded, PluginLoadFailures)
}
