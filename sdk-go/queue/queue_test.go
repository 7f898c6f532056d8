package queue

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wasmcorn/wasmcorn/abi"
	wasmcorn "github.com/wasmcorn/wasmcorn/sdk-go"
	"github.com/wasmcorn/wasmcorn/sdk-go/internal/testhost"
)

type submitted struct {
	queue   string
	payload []byte
	delayMs int64
}

// fakeQueue plays the host's queue.submit: it decodes arguments strictly,
// grants only "emails", and records what was submitted.
type fakeQueue struct {
	mu   sync.Mutex
	jobs []submitted
}

func install(t *testing.T) *fakeQueue {
	h := &fakeQueue{}
	t.Cleanup(testhost.Set(h.serve))
	return h
}

func (h *fakeQueue) serve(op abi.Op, args []byte) []byte {
	if op != abi.OpQueueSubmit {
		return abi.AppendReplyError(nil, abi.ErrUnknownOp, op.String())
	}
	vs := abi.NewValues(args)
	q, err1 := vs.Next()
	p, err2 := vs.Next()
	d, err3 := vs.Int("delay_ms")
	if errors.Join(err1, err2, err3) != nil || vs.More() || q.Kind != abi.KindString || p.Kind != abi.KindBytes {
		return abi.AppendReplyError(nil, abi.ErrInvalid, "bad queue.submit arguments")
	}
	if string(q.B) != "emails" {
		return abi.AppendReplyError(nil, abi.ErrDenied, "queue "+string(q.B)+" not granted")
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.jobs = append(h.jobs, submitted{string(q.B), append([]byte(nil), p.B...), d})
	return abi.AppendString(abi.AppendReplyOK(nil), "job-"+string(rune('0'+len(h.jobs))))
}

func TestSubmit(t *testing.T) {
	h := install(t)
	for _, tc := range []struct {
		name    string
		payload []byte
		delay   time.Duration
		wantMs  int64
	}{
		{"now", []byte("hi"), 0, 0},
		{"empty payload", nil, 0, 0},
		{"delay", []byte("x"), 1500 * time.Millisecond, 1500},
		{"delay rounds up", []byte("x"), time.Microsecond, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id, err := Submit("emails", tc.payload, tc.delay)
			if err != nil || !strings.HasPrefix(id, "job-") {
				t.Fatalf("Submit: %q, %v", id, err)
			}
			last := h.jobs[len(h.jobs)-1]
			if last.queue != "emails" || string(last.payload) != string(tc.payload) || last.delayMs != tc.wantMs {
				t.Fatalf("host got %+v, want payload %q and delay_ms %d", last, tc.payload, tc.wantMs)
			}
		})
	}
}

func TestSubmitErrors(t *testing.T) {
	h := install(t)
	_, err := Submit("billing", []byte("x"), 0)
	var re *abi.ReplyError
	if !errors.As(err, &re) || re.Code != abi.ErrDenied {
		t.Fatalf("Submit to an ungranted queue: %v, want code denied", err)
	}
	if _, err := Submit("emails", nil, -time.Second); err == nil {
		t.Fatal("Submit accepted a negative delay")
	}
	if _, err := SubmitJSON("emails", func() {}, 0); err == nil {
		t.Fatal("SubmitJSON accepted a value JSON cannot encode")
	}
	if len(h.jobs) != 0 {
		t.Fatalf("failed submits reached the host: %+v", h.jobs)
	}
}

type welcome struct {
	To   string `json:"to"`
	Name string `json:"name"`
}

func TestSubmitJSONAndHandler(t *testing.T) {
	h := install(t)
	if _, err := SubmitJSON("emails", welcome{To: "a@example.com", Name: "Ann"}, 0); err != nil {
		t.Fatal(err)
	}
	if got := string(h.jobs[0].payload); got != `{"to":"a@example.com","name":"Ann"}` {
		t.Fatalf("payload %s", got)
	}

	var got welcome
	fn := JSONHandler(func(ctx context.Context, job wasmcorn.Job, w welcome) error {
		got = w
		if w.Name == "" {
			return errors.New("no name")
		}
		return nil
	})
	job := wasmcorn.Job{Queue: "emails", ID: "1", Attempt: 1, Payload: h.jobs[0].payload}
	if err := fn(context.Background(), job); err != nil || got.To != "a@example.com" {
		t.Fatalf("handler: %v, decoded %+v", err, got)
	}
	// fn's errors pass through as retryable errors.
	job.Payload = []byte(`{"to":"b@example.com"}`)
	if err := fn(context.Background(), job); err == nil || err.Error() != "no name" {
		t.Fatalf("handler error: %v", err)
	}
	// A payload that does not decode fails permanently.
	job.Payload = []byte(`not json`)
	err := fn(context.Background(), job)
	if err == nil || !strings.Contains(err.Error(), "payload is not a JSON") {
		t.Fatalf("bad payload: %v", err)
	}
	// The SDK has no IsPermanent; Permanent's wrapper type is the tell.
	if want := fmt.Sprintf("%T", wasmcorn.Permanent(errors.New("x"))); fmt.Sprintf("%T", err) != want {
		t.Fatalf("bad payload error is a %T, want a Permanent error (%s)", err, want)
	}
}
