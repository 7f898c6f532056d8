package host

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/wasmcorn/wasmcorn/abi"
	"github.com/wasmcorn/wasmcorn/host/jobs"
	"github.com/wasmcorn/wasmcorn/internal/metrics"
)

func init() {
	registerOp(abi.OpQueueSubmit, opQueueSubmit)
}

// opQueueSubmit is queue.submit: (string queue, bytes payload, int delay_ms)
// -> (string job_id). The queue must be granted in the plugin's manifest
// (else denied, naming the queue); delay_ms is 0..jobs.MaxDelay and the
// payload at most jobs.MaxPayloadBytes (else invalid / too_large). The job
// is durable in the queue backend when the reply is ok. A backend that is
// down or closed replies unavailable; the call's deadline running out
// replies timeout.
func opQueueSubmit(c *Call, args *abi.Values, reply []byte) []byte {
	queue, err := args.Bytes("queue")
	if err != nil {
		return abi.AppendReplyError(reply, abi.ErrInvalid, "queue.submit: "+err.Error())
	}
	payload, err := args.Bytes("payload")
	if err != nil {
		return abi.AppendReplyError(reply, abi.ErrInvalid, "queue.submit: "+err.Error())
	}
	delayMs, err := args.Int("delay_ms")
	if err != nil {
		return abi.AppendReplyError(reply, abi.ErrInvalid, "queue.submit: "+err.Error())
	}
	if args.More() {
		return abi.AppendReplyError(reply, abi.ErrInvalid, "queue.submit: unexpected arguments after delay_ms")
	}
	if delayMs < 0 || delayMs > jobs.MaxDelay.Milliseconds() {
		return abi.AppendReplyError(reply, abi.ErrInvalid, "queue.submit: delay_ms "+strconv.FormatInt(delayMs, 10)+
			" outside 0.."+strconv.FormatInt(jobs.MaxDelay.Milliseconds(), 10))
	}
	name := string(queue)
	if c.Grants == nil || !c.Grants.HasQueue(name) {
		return abi.AppendReplyError(reply, abi.ErrDenied, "queue.submit: plugin "+strconv.Quote(c.Plugin)+
			" is not granted queue "+strconv.Quote(name)+" (list it in the manifest's queues)")
	}
	if c.Services == nil || c.Services.Queue == nil {
		metrics.JobsSubmitErrors.WithLabelValues(name, abi.ErrUnavailable.String()).Inc()
		return abi.AppendReplyError(reply, abi.ErrUnavailable, "queue.submit: no queue backend is configured")
	}
	ctx := c.Ctx
	if ctx == nil {
		ctx = context.Background()
	}
	id, err := c.Services.Queue.Submit(ctx, name, payload, time.Duration(delayMs)*time.Millisecond)
	if err != nil {
		code := queueErrCode(err)
		metrics.JobsSubmitErrors.WithLabelValues(name, code.String()).Inc()
		if code == abi.ErrUnavailable || code == abi.ErrInternal {
			c.Log.Warn("queue.submit failed", "queue", name, "request_id", c.RequestID(), "error", err)
		}
		return abi.AppendReplyError(reply, code, "queue.submit to "+strconv.Quote(name)+": "+err.Error())
	}
	metrics.JobsSubmitted.WithLabelValues(name).Inc()
	return abi.AppendString(abi.AppendReplyOK(reply), id)
}

// queueErrCode maps a queue backend error to its reply code.
func queueErrCode(err error) abi.Code {
	switch {
	case errors.Is(err, jobs.ErrTooLarge):
		return abi.ErrTooLarge
	case errors.Is(err, jobs.ErrInvalid):
		return abi.ErrInvalid
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return abi.ErrTimeout
	case errors.Is(err, ErrBackendDown), errors.Is(err, jobs.ErrUnavailable), errors.Is(err, jobs.ErrClosed):
		return abi.ErrUnavailable
	}
	return abi.ErrInternal
}
