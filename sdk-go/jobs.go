package wasmcorn

import (
	"context"
	"slices"
	"sync"
)

// Job is one job delivered to a job handler. The handler owns it: Payload
// is a copy that may be kept.
type Job struct {
	// Queue is the queue the job was submitted to.
	Queue string
	// ID is the job's id, unique per queue; it is the same on every attempt.
	ID string
	// Attempt is 1 on the first run and counts retries after that.
	Attempt int
	// Payload is the bytes given to the submitting call.
	Payload []byte
}

// JobFunc handles one job. Returning nil acknowledges it; returning an
// error retries it later with backoff (until the queue's attempt limit,
// then it goes to the dead-letter queue); returning Permanent(err)
// dead-letters it at once. A panic counts as a retryable error and is
// logged with its stack. Jobs are delivered at least once, so a JobFunc
// should be idempotent.
type JobFunc func(ctx context.Context, job Job) error

var jobs struct {
	sync.Mutex
	m map[string]JobFunc
}

// HandleJob registers fn for the jobs of queue; the plugin's manifest
// decides which queues its workers consume. Like Serve, call it from an
// init function. A later call for the same queue replaces fn. A job for a
// queue without a registered function fails permanently with a message
// naming the queues that are registered.
func HandleJob(queue string, fn JobFunc) {
	if fn == nil {
		panic("wasmcorn: HandleJob with a nil function for queue " + queue)
	}
	jobs.Lock()
	defer jobs.Unlock()
	if jobs.m == nil {
		jobs.m = make(map[string]JobFunc)
	}
	jobs.m[queue] = fn
}

func jobFunc(queue string) (JobFunc, bool) {
	jobs.Lock()
	defer jobs.Unlock()
	fn, ok := jobs.m[queue]
	return fn, ok
}

func jobQueues() []string {
	jobs.Lock()
	defer jobs.Unlock()
	qs := make([]string, 0, len(jobs.m))
	for q := range jobs.m {
		qs = append(qs, q)
	}
	slices.Sort(qs)
	return qs
}

// permanentError marks an error that must not be retried.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// Permanent wraps err so that a JobFunc returning it dead-letters the job
// instead of retrying it. errors.Is and errors.As see through the wrapper.
// Permanent(nil) is nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err: err}
}
