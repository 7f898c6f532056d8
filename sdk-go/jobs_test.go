package wasmcorn

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/wasmcorn/wasmcorn/abi"
)

var errSentinel = errors.New("sentinel")

func TestJobs(t *testing.T) {
	host := installHost(t)
	var got []Job
	HandleJob("test-jobs", func(ctx context.Context, j Job) error {
		got = append(got, j)
		switch string(j.Payload) {
		case "retry":
			return fmt.Errorf("wrapped: %w", io.ErrUnexpectedEOF)
		case "fail":
			return Permanent(fmt.Errorf("bad payload: %w", errSentinel))
		case "wrapped-fail":
			return fmt.Errorf("outer: %w", Permanent(errSentinel))
		case "panic":
			panic("job boom")
		}
		return nil
	})
	cases := []struct {
		queue, payload string
		status         abi.JobStatus
		msg            string
	}{
		{"test-jobs", "ok", abi.JobOK, ""},
		{"test-jobs", "retry", abi.JobRetry, "wrapped: unexpected EOF"},
		{"test-jobs", "fail", abi.JobFail, "bad payload: sentinel"},
		{"test-jobs", "wrapped-fail", abi.JobFail, "outer: sentinel"},
		{"test-jobs", "panic", abi.JobRetry, "panic: job boom"},
		{"no-such-queue", "x", abi.JobFail, `wasmcorn: no job handler for queue "no-such-queue" in this plugin (registered: [`},
	}
	var g guest
	for _, c := range cases {
		t.Run(c.queue+"/"+c.payload, func(t *testing.T) {
			msg := abi.AppendJob(nil, &abi.Job{Queue: []byte(c.queue), ID: []byte("id-1"), Attempt: 3, Payload: []byte(c.payload)})
			in := load(&g, msg)
			var res abi.JobResult
			if err := abi.DecodeJobResult(g.job(in), &res); err != nil {
				t.Fatal(err)
			}
			if res.Status != c.status || !strings.HasPrefix(string(res.Error), c.msg) {
				t.Fatalf("got %d %q, want %d %q", res.Status, res.Error, c.status, c.msg)
			}
			// The handler owns the payload: the host overwriting its buffer
			// must not change it.
			for i := range in {
				in[i] = 0
			}
		})
	}
	if len(got) != 5 || string(got[0].Payload) != "ok" || got[0].ID != "id-1" || got[0].Attempt != 3 || got[0].Queue != "test-jobs" {
		t.Fatalf("jobs seen: %+v", got)
	}
	var panicLogged bool
	for _, l := range host.entries() {
		if strings.Contains(l.msg, "job handler panicked") {
			st, _ := l.get("stack")
			panicLogged = strings.Contains(st.Str(), "TestJobs")
		}
	}
	if !panicLogged {
		t.Errorf("job panic not logged with a stack: %+v", host.entries())
	}

	var res abi.JobResult
	if err := abi.DecodeJobResult(g.job([]byte{1}), &res); err != nil || res.Status != abi.JobFail {
		t.Fatalf("malformed job: %v %+v", err, res)
	}
}

func TestPermanent(t *testing.T) {
	if Permanent(nil) != nil {
		t.Fatal("Permanent(nil) != nil")
	}
	err := Permanent(errSentinel)
	if !errors.Is(err, errSentinel) || err.Error() != "sentinel" {
		t.Fatalf("Permanent hides its error: %v", err)
	}
}

func TestHandleJobNil(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("HandleJob(nil) did not panic")
		}
	}()
	HandleJob("q", nil)
}
