// Package jobs runs background jobs: the contract a queue backend fulfils
// (Backend), the worker pools that claim jobs and hand them to plugins
// (Runner), and the periodic scheduler with its cron-style schedules.
//
// Delivery is at least once. A job is claimed with a lease; it is removed
// from the queue only after its handler returned OK. A handler that fails or
// asks for a retry runs again after an exponential backoff with jitter, up
// to MaxAttempts deliveries, then the job is dead-lettered; a handler that
// reports JobFail is dead-lettered at once. A job whose worker died (crash,
// kill -9, lost network) stays leased until the lease runs out and is then
// claimed again by any worker sharing the backend. Handlers must therefore
// be idempotent: a job may run more than once.
//
// Periodic jobs (SetPeriodic) are submitted at the slots of their
// schedule (ParseSchedule: "@every 30s", five cron fields, @daily...). Every
// process sharing a backend computes the same slots and tries to submit
// each; the backend lets exactly one succeed per (name, slot), so a job runs
// once per slot however many servers run. A slot missed by less than a
// minute (a restart across it) is submitted late; slots missed by more
// (the process was down or suspended) are skipped, not caught up.
//
// Two backends implement Backend: host/backend/sqlitequeue (durable, in a
// SQLite file, the default) and host/backend/redisqueue (Redis Streams with
// consumer groups).
package jobs

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/wasmcorn/wasmcorn/abi"
)

// Limits every backend enforces on Submit.
const (
	// MaxQueueNameLen bounds a queue name, which becomes part of keys and
	// metric labels.
	MaxQueueNameLen = 128
	// MaxPayloadBytes bounds one job's payload.
	MaxPayloadBytes = 1 << 20
	// MaxDelay bounds a submit delay.
	MaxDelay = 366 * 24 * time.Hour
)

// Errors backends and the runner return; callers branch on them with
// errors.Is.
var (
	// ErrInvalid: a malformed queue name, a negative or too long delay.
	ErrInvalid = errors.New("invalid job")
	// ErrTooLarge: a payload over MaxPayloadBytes.
	ErrTooLarge = errors.New("job payload too large")
	// ErrClosed: the backend was closed.
	ErrClosed = errors.New("queue backend closed")
	// ErrUnavailable: the backend's service cannot be reached; retrying
	// later may work. Backends wrap the underlying error with it.
	ErrUnavailable = errors.New("queue backend unavailable")
)

// Job is one delivery of a queued job to a worker. The backend allocates
// it in Claim; the runner owns it afterwards and passes it back unchanged to
// exactly one of Ack, Retry, DeadLetter or Release.
type Job struct {
	// Queue is the queue the job was submitted to.
	Queue string
	// ID is the job's id as returned by Submit; it is stable across retries.
	ID string
	// Attempt is the delivery number, 1 on the first run. A delivery whose
	// lease expired counts as an attempt.
	Attempt int
	// Payload is the submitted payload.
	Payload []byte
	// Enqueued is when the job was first submitted.
	Enqueued time.Time
	// Receipt identifies this delivery to the backend (a stream entry id,
	// a lease generation). It is opaque to everyone else.
	Receipt string
}

// Backend is a queue store shared by every process that uses it. All methods
// are safe for concurrent use. A method fails with an error wrapping
// ErrUnavailable when the service is unreachable and ErrClosed after Close.
type Backend interface {
	// Submit enqueues payload on queue, ready after delay (0: now), and
	// returns the job's id. Submit does not retain payload.
	Submit(ctx context.Context, queue string, payload []byte, delay time.Duration) (id string, err error)

	// Claim leases up to max ready jobs of queue to the caller for lease:
	// until it runs out no other Claim returns them. When none is ready it
	// waits up to wait (or until ctx is done) for one; it then returns an
	// empty slice and a nil error. Jobs whose lease ran out are ready again,
	// with Attempt counting that lost delivery.
	Claim(ctx context.Context, queue string, max int, lease, wait time.Duration) ([]*Job, error)

	// Ack removes a finished job and counts it as completed. For a job
	// whose lease was lost to another worker it is allowed but its effect
	// is the backend's: SQLite still removes the job (the work was done),
	// Redis leaves the other delivery be (it may run again).
	Ack(ctx context.Context, j *Job) error

	// Retry makes a failed job ready again after delay, recording reason.
	// The job's next delivery has Attempt+1. It is a no-op when the lease
	// was lost to another worker.
	Retry(ctx context.Context, j *Job, delay time.Duration, reason string) error

	// DeadLetter moves a job to queue's dead-letter store with reason,
	// where it stays for inspection and is not run again. It is a no-op
	// when the lease was lost to another worker.
	DeadLetter(ctx context.Context, j *Job, reason string) error

	// Release gives a claimed job back unrun: it is ready at once and the
	// delivery does not count as an attempt. Used on shutdown.
	Release(ctx context.Context, j *Job) error

	// SubmitPeriodic submits payload to queue for the schedule slot (name,
	// slot) unless some process sharing the backend already did: of all
	// callers with the same name and slot exactly one gets submitted true.
	// keep is how long the slot is remembered; it must exceed the clock
	// skew between processes. Claiming the slot and submitting the job are
	// one atomic step.
	SubmitPeriodic(ctx context.Context, name string, slot time.Time, keep time.Duration, queue string, payload []byte) (id string, submitted bool, err error)

	// Stats counts the jobs of queue. The Running and Concurrency fields
	// are left zero; the runner fills them.
	Stats(ctx context.Context, queue string) (QueueStats, error)

	// Close releases the backend's resources. Calls in progress may fail.
	Close() error
}

// DeadLetter is one dead-lettered job, kept for inspection.
type DeadLetter struct {
	// Job is the job as last delivered: Attempt is the number of
	// deliveries it had. Receipt is empty.
	Job Job `json:"job"`
	// Reason says why it was dead-lettered (the handler's error, or the
	// attempt limit).
	Reason string `json:"reason"`
	// At is when it was dead-lettered.
	At time.Time `json:"at"`
}

// DeadLetterReader is implemented by backends that can list dead letters
// (both built-in backends do); admin tools type-assert a Backend to it.
type DeadLetterReader interface {
	// DeadLetters returns up to n of queue's most recent dead letters,
	// newest first.
	DeadLetters(ctx context.Context, queue string, n int) ([]DeadLetter, error)
}

// DeadLetterManager is implemented by backends whose dead letters can be
// put back to work or deleted (both built-in backends); admin tools
// type-assert a Backend to it. ids are job ids as DeadLetters reports them;
// an empty ids selects every dead letter of queue. Ids that match no dead
// letter of queue are ignored: the returned count says how many matched.
type DeadLetterManager interface {
	DeadLetterReader
	// RequeueDead makes dead letters of queue ready again, at once, as
	// fresh jobs: same id and payload, Attempt starting over at 1.
	RequeueDead(ctx context.Context, queue string, ids []string) (int, error)
	// PurgeDead deletes dead letters of queue for good.
	PurgeDead(ctx context.Context, queue string, ids []string) (int, error)
}

// QueueStats describes one queue. Counts other than Running and Completed
// are a snapshot of the shared backend, over every process using it.
type QueueStats struct {
	Queue string `json:"queue"`
	// Ready jobs wait for a worker.
	Ready int64 `json:"ready"`
	// Delayed jobs were submitted with a delay that has not passed yet.
	Delayed int64 `json:"delayed"`
	// InFlight jobs are leased to a worker (in any process).
	InFlight int64 `json:"in_flight"`
	// Retrying jobs failed and wait for their backoff to pass.
	Retrying int64 `json:"retrying"`
	// Dead jobs were dead-lettered and are kept for inspection.
	Dead int64 `json:"dead"`
	// Completed counts jobs acknowledged since the backend was created.
	Completed int64 `json:"completed"`
	// Running is the number of this queue's jobs running in this process.
	Running int64 `json:"running"`
	// Concurrency is this process's worker limit for the queue.
	Concurrency int `json:"concurrency"`
	// Error is set when the backend could not be asked.
	Error string `json:"error,omitempty"`
}

// Executor runs one job in a plugin. *host.Plugin implements it.
//
// RunJob returns the guest's verdict. An error means the job could not be
// run to a verdict (trap, deadline) and counts as a retry, except an error
// wrapping engine.ErrPoolExhausted or engine.ErrPoolClosed (no instance was
// free, the plugin is being replaced): the job did not start, so it is
// released without counting an attempt.
// The returned result must not alias memory that is reused after RunJob
// returns (guest memory): its Error is read afterwards.
type Executor interface {
	RunJob(ctx context.Context, job *abi.Job) (abi.JobResult, error)
}

// ExecutorFunc adapts a function to Executor.
type ExecutorFunc func(ctx context.Context, job *abi.Job) (abi.JobResult, error)

// RunJob calls f.
func (f ExecutorFunc) RunJob(ctx context.Context, job *abi.Job) (abi.JobResult, error) {
	return f(ctx, job)
}

// CheckSubmit validates the arguments of a Submit; backends call it first.
func CheckSubmit(queue string, payload []byte, delay time.Duration) error {
	if err := CheckQueueName(queue); err != nil {
		return err
	}
	if len(payload) > MaxPayloadBytes {
		return fmt.Errorf("submit to queue %q: %w: %d bytes, limit %d", queue, ErrTooLarge, len(payload), MaxPayloadBytes)
	}
	if delay < 0 || delay > MaxDelay {
		return fmt.Errorf("submit to queue %q: %w: delay %v outside 0..%v", queue, ErrInvalid, delay, MaxDelay)
	}
	return nil
}

// CheckQueueName reports whether name is a usable queue name: 1 to
// MaxQueueNameLen bytes of ASCII letters, digits, '_', '-', '.' and ':'.
// Names are restricted because they become parts of Redis keys and metric
// label values.
func CheckQueueName(name string) error {
	if name == "" || len(name) > MaxQueueNameLen {
		return fmt.Errorf("queue name %q: %w: length must be 1..%d", name, ErrInvalid, MaxQueueNameLen)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9',
			c == '_', c == '-', c == '.', c == ':':
		default:
			return fmt.Errorf("queue name %q: %w: byte %q not allowed (letters, digits, _ - . : only)", name, ErrInvalid, c)
		}
	}
	return nil
}
