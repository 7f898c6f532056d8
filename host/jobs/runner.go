package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"runtime"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wasmcorn/wasmcorn/abi"
	"github.com/wasmcorn/wasmcorn/host/engine"
	"github.com/wasmcorn/wasmcorn/internal/metrics"
)

// ErrStopped is returned by Runner methods called after Stop.
var ErrStopped = errors.New("job runner stopped")

// Options configure a Runner. The zero value of each field selects its
// default.
type Options struct {
	// MaxAttempts is how many deliveries a job gets before it is
	// dead-lettered. Default 5.
	MaxAttempts int
	// BackoffMin and BackoffMax bound the retry delay: attempt n waits
	// about BackoffMin·2^(n-1), at most BackoffMax, with jitter (between half
	// and all of it). Defaults 1s and 5m.
	BackoffMin, BackoffMax time.Duration
	// Lease is how long a claimed job belongs to its worker; when it runs
	// out (the worker died) any worker may claim the job again. It must
	// exceed every queue's Timeout. Default 5m.
	Lease time.Duration
	// ClaimWait is how long one Claim waits for a job before the worker
	// loop checks for shutdown and reconfiguration. Default 1s.
	ClaimWait time.Duration
	// BackendTimeout bounds each Ack, Retry, DeadLetter, Release and
	// periodic submit. Default 10s.
	BackendTimeout time.Duration
	// Logger receives retries, dead letters and backend errors. Default
	// slog.Default().
	Logger *slog.Logger
}

func (o *Options) setDefaults() {
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 5
	}
	if o.BackoffMin <= 0 {
		o.BackoffMin = time.Second
	}
	if o.BackoffMax <= 0 {
		o.BackoffMax = 5 * time.Minute
	}
	if o.BackoffMax < o.BackoffMin {
		o.BackoffMax = o.BackoffMin
	}
	if o.Lease <= 0 {
		o.Lease = 5 * time.Minute
	}
	if o.ClaimWait <= 0 {
		o.ClaimWait = time.Second
	}
	if o.BackendTimeout <= 0 {
		o.BackendTimeout = 10 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

// QueueConfig is one consumed queue: a plugin manifest's
// `[[jobs]] queue = "emails" concurrency = 4 timeout = "30s"`.
type QueueConfig struct {
	// Queue is the queue name.
	Queue string
	// Concurrency is how many of the queue's jobs run at once in this
	// process. Default 1.
	Concurrency int
	// Timeout bounds one run of a job; a job still running then counts as
	// failed and is retried. It must be below the runner's Lease.
	// Default 1m, or half the Lease if that is shorter.
	Timeout time.Duration
	// MaxAttempts overrides the runner's MaxAttempts for this queue when
	// positive.
	MaxAttempts int
}

// Periodic is a job submitted on a schedule: a plugin manifest's
// `[[periodic]] name = "cleanup" schedule = "@every 1h" queue = "maint"`.
type Periodic struct {
	// Name identifies the schedule across every process sharing the
	// backend; the runner's caller makes it unique (plugin name + "." +
	// manifest name). Same character set as queue names.
	Name string
	// Schedule is a spec for ParseSchedule.
	Schedule string
	// Queue receives the job.
	Queue string
	// Payload is the job's payload.
	Payload []byte
}

// Runner claims jobs from a Backend and runs them on Executors, one worker
// pool per queue, and submits periodic jobs. Create it with NewRunner,
// configure queues with SetQueue and schedules with SetPeriodic (before or
// after Start, any number of times: that is how hot reload reaches it), and
// end it with Stop. All methods are safe for concurrent use.
type Runner struct {
	backend Backend
	opts    Options
	log     *slog.Logger

	// hardCtx is cancelled when Stop gives up waiting: running jobs see
	// their context end.
	hardCtx      context.Context
	hardCancel   context.CancelFunc
	running      sync.WaitGroup // every running job
	loops        sync.WaitGroup // claim loops and the scheduler
	runningCount atomic.Int64

	mu        sync.Mutex
	started   bool
	stopped   bool
	queues    map[string]*queueRunner
	periodic  []*periodicEntry
	schedWake chan struct{} // cap 1: the periodic set changed
	schedStop context.CancelFunc
}

// NewRunner returns a Runner over backend. It does nothing until Start.
// The caller keeps ownership of backend and closes it after Stop.
func NewRunner(backend Backend, opts Options) *Runner {
	opts.setDefaults()
	hard, cancel := context.WithCancel(context.Background())
	return &Runner{
		backend:    backend,
		opts:       opts,
		log:        opts.Logger,
		hardCtx:    hard,
		hardCancel: cancel,
		queues:     make(map[string]*queueRunner),
		schedWake:  make(chan struct{}, 1),
	}
}

// queueState is what a worker needs to run one job; it is replaced as a
// whole by SetQueue, so a job runs on the state it was claimed under.
type queueState struct {
	cfg  QueueConfig
	exec Executor
}

type queueRunner struct {
	name    string
	state   atomic.Pointer[queueState]
	running atomic.Int64
	freed   chan struct{} // cap 1: a slot freed or the config changed
	jobs    sync.WaitGroup
	cancel  context.CancelFunc
	done    chan struct{} // closed when the claim loop returned

	mRunning                      prometheus.Gauge
	mOK, mRetry, mDead, mReleased prometheus.Counter
	mDuration                     prometheus.Observer
}

// SetQueue starts consuming cfg.Queue with ex, or, when the queue is
// already consumed, switches it to cfg and ex: jobs already running finish
// on the previous executor, jobs claimed from now on run on ex.
func (r *Runner) SetQueue(cfg QueueConfig, ex Executor) error {
	if ex == nil {
		return fmt.Errorf("jobs: queue %q: nil executor", cfg.Queue)
	}
	if err := CheckQueueName(cfg.Queue); err != nil {
		return fmt.Errorf("jobs: %w", err)
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 1
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = min(time.Minute, r.opts.Lease/2)
	}
	if cfg.Timeout >= r.opts.Lease {
		return fmt.Errorf("jobs: queue %q: timeout %v must be below the lease %v, or a running job would be claimed again", cfg.Queue, cfg.Timeout, r.opts.Lease)
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = r.opts.MaxAttempts
	}
	st := &queueState{cfg: cfg, exec: ex}

	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopped {
		return ErrStopped
	}
	if q, ok := r.queues[cfg.Queue]; ok {
		q.state.Store(st)
		q.wake()
		return nil
	}
	q := &queueRunner{
		name:      cfg.Queue,
		freed:     make(chan struct{}, 1),
		mRunning:  metrics.JobsRunning.WithLabelValues(cfg.Queue),
		mOK:       metrics.JobsProcessed.WithLabelValues(cfg.Queue, "ok"),
		mRetry:    metrics.JobsProcessed.WithLabelValues(cfg.Queue, "retry"),
		mDead:     metrics.JobsProcessed.WithLabelValues(cfg.Queue, "dead"),
		mReleased: metrics.JobsProcessed.WithLabelValues(cfg.Queue, "released"),
		mDuration: metrics.JobDuration.WithLabelValues(cfg.Queue),
	}
	q.state.Store(st)
	r.queues[cfg.Queue] = q
	if r.started {
		r.startQueue(q)
	}
	return nil
}

// RemoveQueue stops claiming jobs of queue and waits, until ctx is done,
// for its running jobs to finish. Jobs still running when ctx ends go on
// running; their results are recorded when they finish.
func (r *Runner) RemoveQueue(ctx context.Context, queue string) error {
	r.mu.Lock()
	q, ok := r.queues[queue]
	if ok {
		delete(r.queues, queue)
		if q.cancel != nil {
			q.cancel()
		}
	}
	r.mu.Unlock()
	if !ok {
		return nil
	}
	if q.done != nil {
		select {
		case <-q.done:
		case <-ctx.Done():
			return fmt.Errorf("jobs: remove queue %q: %w", queue, ctx.Err())
		}
	}
	if err := waitGroup(ctx, &q.jobs); err != nil {
		return fmt.Errorf("jobs: remove queue %q: %d jobs still running: %w", queue, q.running.Load(), err)
	}
	return nil
}

// Queues returns the names of the consumed queues, sorted.
func (r *Runner) Queues() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	names := make([]string, 0, len(r.queues))
	for n := range r.queues {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Start begins claiming jobs on every queue set so far (and on queues set
// later) and runs the periodic scheduler. It returns ErrStopped after Stop.
func (r *Runner) Start() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopped {
		return ErrStopped
	}
	if r.started {
		return nil
	}
	r.started = true
	for _, q := range r.queues {
		r.startQueue(q)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.schedStop = cancel
	r.loops.Add(1)
	go r.schedule(ctx)
	return nil
}

// startQueue launches q's claim loop; r.mu is held.
func (r *Runner) startQueue(q *queueRunner) {
	ctx, cancel := context.WithCancel(context.Background())
	q.cancel = cancel
	q.done = make(chan struct{})
	r.loops.Add(1)
	go r.claimLoop(ctx, q)
}

// Stop stops claiming and scheduling and waits until ctx is done for
// running jobs to finish. If they do not, their contexts are cancelled and
// Stop returns an error wrapping ctx's: those jobs stay leased and are
// claimed again once the lease runs out (or released, if their executor
// honours the cancellation). Stop is idempotent.
func (r *Runner) Stop(ctx context.Context) error {
	r.mu.Lock()
	r.stopped = true
	for _, q := range r.queues {
		if q.cancel != nil {
			q.cancel()
		}
	}
	if r.schedStop != nil {
		r.schedStop()
	}
	r.mu.Unlock()

	// Claim loops first: once they are gone nothing starts a job, so the
	// running group only shrinks.
	err := waitGroup(ctx, &r.loops)
	if err == nil {
		err = waitGroup(ctx, &r.running)
	}
	r.hardCancel()
	if err != nil {
		return fmt.Errorf("jobs: stop: %d jobs still running were cancelled and will be claimed again: %w", r.runningCount.Load(), err)
	}
	return nil
}

// Stats returns the statistics of every consumed queue, sorted by name.
// A queue whose backend call failed has Error set.
func (r *Runner) Stats(ctx context.Context) []QueueStats {
	r.mu.Lock()
	qs := make([]*queueRunner, 0, len(r.queues))
	for _, q := range r.queues {
		qs = append(qs, q)
	}
	r.mu.Unlock()
	slices.SortFunc(qs, func(a, b *queueRunner) int {
		if a.name < b.name {
			return -1
		}
		if a.name > b.name {
			return 1
		}
		return 0
	})
	out := make([]QueueStats, 0, len(qs))
	for _, q := range qs {
		s, err := r.backend.Stats(ctx, q.name)
		s.Queue = q.name
		if err != nil {
			s.Error = err.Error()
		}
		s.Running = q.running.Load()
		s.Concurrency = q.state.Load().cfg.Concurrency
		out = append(out, s)
	}
	return out
}

func (q *queueRunner) wake() {
	select {
	case q.freed <- struct{}{}:
	default:
	}
}

// claimLoop claims as many jobs as q has free workers and starts each on a
// goroutine, until ctx ends.
func (r *Runner) claimLoop(ctx context.Context, q *queueRunner) {
	defer r.loops.Done()
	defer close(q.done)
	errDelay := time.Duration(0)
	for ctx.Err() == nil {
		free := q.state.Load().cfg.Concurrency - int(q.running.Load())
		if free <= 0 {
			select {
			case <-q.freed:
				// Let the other workers finishing about now free their
				// slots too, so one claim fetches jobs for all of them.
				runtime.Gosched()
			case <-ctx.Done():
			}
			continue
		}
		batch, err := r.backend.Claim(ctx, q.name, free, r.opts.Lease, r.opts.ClaimWait)
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			metrics.JobsBackendErrors.WithLabelValues("claim").Inc()
			errDelay = min(max(2*errDelay, 100*time.Millisecond), 5*time.Second)
			r.log.Warn("job queue: claim failed", "queue", q.name, "retry_in", errDelay, "error", err)
			select {
			case <-time.After(errDelay):
			case <-ctx.Done():
			}
			continue
		}
		errDelay = 0
		if ctx.Err() != nil {
			// Stopping: hand back what the last claim got.
			for _, j := range batch {
				r.release(q, j)
			}
			break
		}
		st := q.state.Load()
		for _, j := range batch {
			q.running.Add(1)
			r.runningCount.Add(1)
			q.jobs.Add(1)
			r.running.Add(1)
			q.mRunning.Inc()
			go r.run(q, st, j)
		}
	}
}

// run runs one job and records its outcome with the backend. The job's
// worker slot is freed as soon as the executor returns, so the next claim
// overlaps this job's acknowledgement: under load one backend round trip
// then carries both.
func (r *Runner) run(q *queueRunner, st *queueState, j *Job) {
	freed := false
	freeSlot := func() {
		if !freed {
			freed = true
			q.running.Add(-1)
			r.runningCount.Add(-1)
			q.mRunning.Dec()
			q.wake()
		}
	}
	defer func() {
		freeSlot()
		q.jobs.Done()
		r.running.Done()
	}()
	maxAttempts := st.cfg.MaxAttempts
	if j.Attempt > maxAttempts {
		// Its last allowed delivery was lost with its worker.
		freeSlot()
		r.deadLetter(q, j, fmt.Sprintf("lease ran out on attempt %d of %d (worker died or job outlived the lease)", j.Attempt-1, maxAttempts))
		return
	}
	ctx, cancel := context.WithTimeout(r.hardCtx, st.cfg.Timeout)
	aj := abi.Job{Queue: []byte(j.Queue), ID: []byte(j.ID), Attempt: uint32(j.Attempt), Payload: j.Payload}
	start := time.Now()
	res, err := runSafely(ctx, st.exec, &aj)
	q.mDuration.Observe(time.Since(start).Seconds())
	timedOut := errors.Is(ctx.Err(), context.DeadlineExceeded)
	cancel()
	freeSlot()
	if err != nil && (r.hardCtx.Err() != nil || notRun(err)) {
		// Shutdown cut it short, or the plugin had no instance for it (all
		// busy serving requests, or draining for a reload): not the job's
		// fault, so the delivery does not count as an attempt. A job that
		// found no instance waits a moment first (its slot is already
		// free), so a pool that fails at once cannot spin claim/release.
		if r.hardCtx.Err() == nil {
			t := time.NewTimer(notRunPause)
			select {
			case <-t.C:
			case <-r.hardCtx.Done():
				t.Stop()
			}
		}
		r.release(q, j)
		return
	}
	switch {
	case err != nil:
		reason := err.Error()
		if timedOut {
			reason = fmt.Sprintf("timed out after %v: %v", st.cfg.Timeout, err)
		}
		r.retry(q, j, maxAttempts, reason)
	case res.Status == abi.JobOK:
		r.ack(q, j)
	case res.Status == abi.JobRetry:
		r.retry(q, j, maxAttempts, "handler asked for a retry: "+string(res.Error))
	case res.Status == abi.JobFail:
		r.deadLetter(q, j, "handler failed the job: "+string(res.Error))
	default:
		r.retry(q, j, maxAttempts, fmt.Sprintf("handler returned unknown status %d", res.Status))
	}
}

// notRunPause is how long a job that found no free instance waits before
// it is released.
const notRunPause = 50 * time.Millisecond

// notRun reports whether an executor error means the job never started:
// its plugin had no free instance within the pool's wait, or was closing.
func notRun(err error) bool {
	return errors.Is(err, engine.ErrPoolExhausted) || errors.Is(err, engine.ErrPoolClosed)
}

// runSafely calls ex, turning a panic into an error so a buggy executor
// fails one job instead of the process.
func runSafely(ctx context.Context, ex Executor, j *abi.Job) (res abi.JobResult, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("executor panicked: %v\n%s", p, debug.Stack())
		}
	}()
	return ex.RunJob(ctx, j)
}

func (r *Runner) backendCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), r.opts.BackendTimeout)
}

func (r *Runner) ack(q *queueRunner, j *Job) {
	ctx, cancel := r.backendCtx()
	defer cancel()
	if err := r.backend.Ack(ctx, j); err != nil {
		metrics.JobsBackendErrors.WithLabelValues("ack").Inc()
		r.log.Warn("job queue: ack failed; the job will run again after its lease", "queue", j.Queue, "job", j.ID, "attempt", j.Attempt, "error", err)
		return
	}
	q.mOK.Inc()
}

func (r *Runner) retry(q *queueRunner, j *Job, maxAttempts int, reason string) {
	if j.Attempt >= maxAttempts {
		r.deadLetter(q, j, fmt.Sprintf("gave up after %d attempts: %s", j.Attempt, reason))
		return
	}
	delay := Backoff(j.Attempt, r.opts.BackoffMin, r.opts.BackoffMax)
	ctx, cancel := r.backendCtx()
	defer cancel()
	if err := r.backend.Retry(ctx, j, delay, reason); err != nil {
		metrics.JobsBackendErrors.WithLabelValues("retry").Inc()
		r.log.Warn("job queue: retry failed; the job will run again after its lease", "queue", j.Queue, "job", j.ID, "attempt", j.Attempt, "error", err)
		return
	}
	q.mRetry.Inc()
	r.log.Warn("job failed; will retry", "queue", j.Queue, "job", j.ID, "attempt", j.Attempt,
		"max_attempts", maxAttempts, "retry_in", delay, "reason", reason)
}

func (r *Runner) deadLetter(q *queueRunner, j *Job, reason string) {
	ctx, cancel := r.backendCtx()
	defer cancel()
	if err := r.backend.DeadLetter(ctx, j, reason); err != nil {
		metrics.JobsBackendErrors.WithLabelValues("dead_letter").Inc()
		r.log.Warn("job queue: dead-lettering failed; the job will run again after its lease", "queue", j.Queue, "job", j.ID, "attempt", j.Attempt, "error", err)
		return
	}
	q.mDead.Inc()
	r.log.Error("job dead-lettered", "queue", j.Queue, "job", j.ID, "attempt", j.Attempt, "reason", reason)
}

func (r *Runner) release(q *queueRunner, j *Job) {
	ctx, cancel := r.backendCtx()
	defer cancel()
	if err := r.backend.Release(ctx, j); err != nil {
		metrics.JobsBackendErrors.WithLabelValues("release").Inc()
		r.log.Info("job queue: release failed; the job will run again after its lease", "queue", j.Queue, "job", j.ID, "error", err)
		return
	}
	q.mReleased.Inc()
}

// Backoff returns the delay before retrying after attempt (1-based) failed:
// min·2^(attempt-1) capped at max, then jittered uniformly into its upper
// half so that jobs failing together do not retry together.
func Backoff(attempt int, lo, hi time.Duration) time.Duration {
	d := hi
	if shift := attempt - 1; shift >= 0 && shift < 62 && lo <= hi>>shift {
		d = lo << shift
	}
	if d <= 1 {
		return d
	}
	half := d / 2
	return half + rand.N(d-half+1)
}

// waitGroup waits for wg or ctx, whichever comes first.
func waitGroup(ctx context.Context, wg *sync.WaitGroup) error {
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
