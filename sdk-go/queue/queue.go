// Package queue submits background jobs to the host's job queue.
//
//	id, err := queue.SubmitJSON("emails", Welcome{To: user.Email}, 0)
//
// A job is a payload of bytes on a named queue. The plugin's manifest must
// grant the queue (`[grants] queues = ["emails"]`), otherwise Submit fails
// with code denied. When Submit returns without error the job is stored
// durably by the host's queue backend (a SQLite file, or Redis Streams) and
// will run at least once, after delay, on a worker of whichever plugin
// consumes the queue (`[[jobs]] queue = "emails"` in its manifest, and a
// handler registered with wasmcorn.HandleJob, often wrapped with
// JSONHandler):
//
//	func init() {
//		wasmcorn.HandleJob("emails", queue.JSONHandler(sendWelcome))
//	}
//
//	func sendWelcome(ctx context.Context, job wasmcorn.Job, w Welcome) error { ... }
//
// Jobs run at least once: a worker that dies mid-job, or whose
// acknowledgement is lost, makes the job run again, so handlers should be
// idempotent. A handler error retries the job with exponential backoff up
// to the queue's attempt limit, then dead-letters it; wasmcorn.Permanent
// dead-letters it at once.
//
// # Errors
//
// Failures reported by the host are *abi.ReplyError values (errors.As);
// their Code is abi.ErrDenied (queue not granted), abi.ErrInvalid (bad
// queue name or delay), abi.ErrTooLarge (payload over MaxPayloadBytes),
// abi.ErrUnavailable (queue backend down: retry later), abi.ErrTimeout
// (the request's deadline ran out) or abi.ErrInternal.
//
// Every function is safe for concurrent use.
package queue

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/wasmcorn/wasmcorn/abi"
	wasmcorn "github.com/wasmcorn/wasmcorn/sdk-go"
	"github.com/wasmcorn/wasmcorn/sdk-go/hostcall"
)

// MaxPayloadBytes is the largest payload the host accepts.
const MaxPayloadBytes = 1 << 20

// Submit enqueues payload on queue, to run once delay has passed (0: as
// soon as a worker is free), and returns the job's id. The delay is rounded
// up to whole milliseconds; a negative one is an error. payload is copied
// to the host and may be reused when Submit returns.
func Submit(queue string, payload []byte, delay time.Duration) (string, error) {
	if delay < 0 {
		return "", fmt.Errorf("wasmcorn queue: submit to %q: negative delay %v", queue, delay)
	}
	ms := int64(delay / time.Millisecond)
	if delay%time.Millisecond != 0 {
		ms++
	}
	a := hostcall.AcquireArgs()
	defer a.Release()
	a.B = abi.AppendString(a.B, queue)
	a.B = abi.AppendBytesValue(a.B, payload)
	a.B = abi.AppendInt(a.B, ms)
	vs, err := hostcall.Call(abi.OpQueueSubmit, a.B)
	if err != nil {
		return "", err
	}
	id, err := vs.Bytes("job_id")
	if err != nil {
		return "", fmt.Errorf("wasmcorn queue: submit to %q: bad reply: %w", queue, err)
	}
	return string(id), nil
}

// SubmitJSON encodes v with encoding/json and submits it like Submit.
func SubmitJSON(queue string, v any, delay time.Duration) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("wasmcorn queue: submit to %q: encode payload: %w", queue, err)
	}
	return Submit(queue, b, delay)
}

// JSONHandler adapts fn, which takes a job's payload decoded from JSON
// into a T, to a wasmcorn.JobFunc for wasmcorn.HandleJob. A payload that is
// not valid JSON for T fails the job permanently (it is dead-lettered: no
// retry would decode it); fn's own errors follow the JobFunc rules.
func JSONHandler[T any](fn func(ctx context.Context, job wasmcorn.Job, v T) error) wasmcorn.JobFunc {
	return func(ctx context.Context, job wasmcorn.Job) error {
		var v T
		if err := json.Unmarshal(job.Payload, &v); err != nil {
			return wasmcorn.Permanent(fmt.Errorf("job %s of queue %q: payload is not a JSON %T: %w", job.ID, job.Queue, v, err))
		}
		return fn(ctx, job, v)
	}
}
