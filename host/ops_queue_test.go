package host

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/wasmcorn/wasmcorn/abi"
	"github.com/wasmcorn/wasmcorn/host/backend/redisconn"
	"github.com/wasmcorn/wasmcorn/host/backend/redisqueue"
	"github.com/wasmcorn/wasmcorn/host/backend/sqlitequeue"
	"github.com/wasmcorn/wasmcorn/host/jobs"
	"github.com/wasmcorn/wasmcorn/internal/metrics"
	"github.com/wasmcorn/wasmcorn/internal/testsvc"
)

func queueCall(t *testing.T, q Queue, queues ...string) *Call {
	t.Helper()
	return &Call{
		Ctx:      context.Background(),
		Plugin:   "shop",
		Grants:   &Grants{Queues: queues},
		Services: &Services{Queue: q},
		Log:      slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
}

func openQueue(t *testing.T) *sqlitequeue.Queue {
	t.Helper()
	q, err := sqlitequeue.Open(context.Background(), sqlitequeue.Options{Path: filepath.Join(t.TempDir(), "queue.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	return q
}

func submitArgs(queue string, payload []byte, delayMs int64) []byte {
	b := abi.AppendString(nil, queue)
	b = abi.AppendBytesValue(b, payload)
	return abi.AppendInt(b, delayMs)
}

// callSubmit runs queue.submit and returns the job id or the reply error.
func callSubmit(c *Call, in []byte) (string, error) {
	reply := dispatch(c, uint32(abi.OpQueueSubmit), in, nil)
	vs, err := abi.DecodeReply(abi.OpQueueSubmit, reply)
	if err != nil {
		return "", err
	}
	id, err := vs.Bytes("job_id")
	if err != nil {
		return "", err
	}
	if vs.More() {
		return "", errors.New("extra reply values")
	}
	return string(id), nil
}

func replyCode(err error) abi.Code {
	var re *abi.ReplyError
	if errors.As(err, &re) {
		return re.Code
	}
	return abi.OK
}

func TestQueueSubmit(t *testing.T) {
	q := openQueue(t)
	c := queueCall(t, q, "emails")
	before := testutil.ToFloat64(metrics.JobsSubmitted.WithLabelValues("emails"))

	id, err := callSubmit(c, submitArgs("emails", []byte(`{"to":"a@b.c"}`), 0))
	if err != nil || id == "" {
		t.Fatalf("submit: id %q, err %v", id, err)
	}
	js, err := q.Claim(context.Background(), "emails", 10, time.Minute, time.Second)
	if err != nil || len(js) != 1 || js[0].ID != id || string(js[0].Payload) != `{"to":"a@b.c"}` {
		t.Fatalf("claimed %v, %v; want job %s", js, err, id)
	}

	if _, err := callSubmit(c, submitArgs("emails", nil, 60_000)); err != nil {
		t.Fatalf("delayed submit: %v", err)
	}
	if s, _ := q.Stats(context.Background(), "emails"); s.Delayed != 1 {
		t.Fatalf("a delay_ms of 60000 did not delay the job: %+v", s)
	}
	if got := testutil.ToFloat64(metrics.JobsSubmitted.WithLabelValues("emails")) - before; got != 2 {
		t.Fatalf("wasmcorn_jobs_submitted_total grew by %v, want 2", got)
	}
}

func TestQueueSubmitErrors(t *testing.T) {
	q := openQueue(t)
	closed := openQueue(t)
	closed.Close()
	big := make([]byte, jobs.MaxPayloadBytes+1)
	expired, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel()
	for _, tc := range []struct {
		name    string
		call    *Call
		in      []byte
		code    abi.Code
		msgHave string
	}{
		{"not granted", queueCall(t, q, "emails"), submitArgs("billing", nil, 0), abi.ErrDenied, `queue "billing"`},
		{"no grants", &Call{Plugin: "x", Services: &Services{Queue: q}}, submitArgs("emails", nil, 0), abi.ErrDenied, "not granted"},
		{"no backend", queueCall(t, nil, "emails"), submitArgs("emails", nil, 0), abi.ErrUnavailable, "no queue backend"},
		{"backend closed", queueCall(t, closed, "emails"), submitArgs("emails", nil, 0), abi.ErrUnavailable, "closed"},
		{"deadline passed", func() *Call { c := queueCall(t, q, "emails"); c.Ctx = expired; return c }(), submitArgs("emails", nil, 0), abi.ErrTimeout, "deadline"},
		{"too large", queueCall(t, q, "emails"), submitArgs("emails", big, 0), abi.ErrTooLarge, "too large"},
		{"negative delay", queueCall(t, q, "emails"), submitArgs("emails", nil, -1), abi.ErrInvalid, "delay_ms -1"},
		{"huge delay", queueCall(t, q, "emails"), submitArgs("emails", nil, 1<<60), abi.ErrInvalid, "delay_ms"},
		{"no arguments", queueCall(t, q, "emails"), nil, abi.ErrInvalid, "queue"},
		{"missing delay", queueCall(t, q, "emails"), abi.AppendBytesValue(abi.AppendString(nil, "emails"), nil), abi.ErrInvalid, "delay_ms"},
		{"delay not an int", queueCall(t, q, "emails"), abi.AppendString(abi.AppendBytesValue(abi.AppendString(nil, "emails"), nil), "5"), abi.ErrInvalid, "delay_ms"},
		{"queue not a string", queueCall(t, q, "emails"), abi.AppendInt(nil, 3), abi.ErrInvalid, "queue"},
		{"extra argument", queueCall(t, q, "emails"), abi.AppendNull(submitArgs("emails", nil, 0)), abi.ErrInvalid, "unexpected"},
		{"truncated", queueCall(t, q, "emails"), submitArgs("emails", []byte("abc"), 0)[:12], abi.ErrInvalid, "payload"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := callSubmit(tc.call, tc.in)
			if replyCode(err) != tc.code || !strings.Contains(err.Error(), tc.msgHave) {
				t.Fatalf("err = %v, want code %s and a message containing %q", err, tc.code, tc.msgHave)
			}
		})
	}
	if s, _ := q.Stats(context.Background(), "emails"); s.Ready+s.Delayed != 0 {
		t.Fatalf("a refused submit enqueued a job: %+v", s)
	}
}

// TestQueueSubmitRedisDown submits through a Redis queue whose server was
// killed, then restarted.
func TestQueueSubmitRedisDown(t *testing.T) {
	if testing.Short() {
		t.Skip("starts redis-server")
	}
	srv := testsvc.StartRedis(t)
	q, err := redisqueue.New(redisqueue.Config{Conn: redisconn.Conn{Addrs: []string{srv.Addr()}}})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	c := queueCall(t, q, "emails")
	if _, err := callSubmit(c, submitArgs("emails", []byte("a"), 0)); err != nil {
		t.Fatalf("submit with the server up: %v", err)
	}
	srv.Kill()
	before := testutil.ToFloat64(metrics.JobsSubmitErrors.WithLabelValues("emails", "unavailable"))
	if _, err := callSubmit(c, submitArgs("emails", []byte("b"), 0)); replyCode(err) != abi.ErrUnavailable {
		t.Fatalf("submit with the server down: %v, want unavailable", err)
	}
	if got := testutil.ToFloat64(metrics.JobsSubmitErrors.WithLabelValues("emails", "unavailable")) - before; got != 1 {
		t.Fatalf("wasmcorn_jobs_submit_errors_total{code=unavailable} grew by %v, want 1", got)
	}
	srv.Start()
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := callSubmit(c, submitArgs("emails", []byte("c"), 0))
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("submit after the restart: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// FuzzQueueSubmit feeds arbitrary argument bytes to queue.submit: it must
// reply with a well-formed message and never panic.
func FuzzQueueSubmit(f *testing.F) {
	f.Add(submitArgs("emails", []byte("x"), 0))
	f.Add(submitArgs("emails", nil, 5))
	f.Add([]byte{3, 255, 255, 255, 255})
	q, err := sqlitequeue.Open(context.Background(), sqlitequeue.Options{Path: filepath.Join(f.TempDir(), "queue.db")})
	if err != nil {
		f.Fatal(err)
	}
	defer q.Close()
	c := &Call{Ctx: context.Background(), Plugin: "fuzz", Grants: &Grants{Queues: []string{"emails"}},
		Services: &Services{Queue: q}, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	f.Fuzz(func(t *testing.T, in []byte) {
		reply := dispatch(c, uint32(abi.OpQueueSubmit), in, nil)
		_, err := abi.DecodeReply(abi.OpQueueSubmit, reply)
		var re *abi.ReplyError
		if err != nil && !errors.As(err, &re) {
			t.Fatalf("malformed reply %x: %v", reply, err)
		}
	})
}
