package metrics

import "github.com/prometheus/client_golang/prometheus"

// Job queue and runner metrics. Queue and periodic job names come from
// plugin manifests, so their label cardinality is bounded by configuration.
var (
	// JobsSubmitted counts jobs submitted by guests and by the periodic
	// scheduler, by queue.
	JobsSubmitted = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "wasmcorn_jobs_submitted_total",
		Help: "Jobs submitted to a queue (guest queue.submit and periodic schedules).",
	}, []string{"queue"})

	// JobsSubmitErrors counts failed guest submits, by queue and ABI code.
	JobsSubmitErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "wasmcorn_jobs_submit_errors_total",
		Help: "Guest queue.submit calls that failed, by reply code.",
	}, []string{"queue", "code"})

	// JobsProcessed counts job deliveries this process finished, by queue
	// and outcome: ok (acknowledged), retry (scheduled again), dead
	// (dead-lettered), released (given back unrun at shutdown).
	JobsProcessed = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "wasmcorn_jobs_processed_total",
		Help: "Job deliveries finished by this process, by outcome (ok, retry, dead, released).",
	}, []string{"queue", "outcome"})

	// JobDuration observes how long a job's handler ran, by queue.
	JobDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "wasmcorn_job_duration_seconds",
		Help:    "Time a job handler ran, whatever its outcome.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
	}, []string{"queue"})

	// JobsRunning is the number of jobs running in this process, by queue.
	JobsRunning = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "wasmcorn_jobs_running",
		Help: "Jobs currently running in this process.",
	}, []string{"queue"})

	// JobsPeriodic counts periodic slots this process handled, by periodic
	// job name and result: submitted (this process won the slot), skipped
	// (another process did), error.
	JobsPeriodic = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "wasmcorn_jobs_periodic_total",
		Help: "Periodic job slots handled, by result (submitted, skipped, error).",
	}, []string{"name", "result"})

	// JobsBackendErrors counts failed queue backend calls made by the
	// runner, by operation (claim, ack, retry, dead_letter, release).
	JobsBackendErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "wasmcorn_jobs_backend_errors_total",
		Help: "Queue backend calls of the job runner that failed, by operation.",
	}, []string{"op"})
)

func init() {
	Registry.MustRegister(JobsSubmitted, JobsSubmitErrors, JobsProcessed, JobDuration,
		JobsRunning, JobsPeriodic, JobsBackendErrors)
}
