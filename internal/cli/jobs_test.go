package cli

import (
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/wasmcorn/wasmcorn/abi"
	"github.com/wasmcorn/wasmcorn/host/jobs"
	"github.com/wasmcorn/wasmcorn/internal/config"
	"github.com/wasmcorn/wasmcorn/internal/testsvc"
)

// TestJobsCommand drives `wasmcorn jobs` against the admin endpoints of
// real services on each queue backend: jobs fail permanently into the
// dead-letter store, are listed, one is purged, the rest are requeued and
// then complete.
func TestJobsCommand(t *testing.T) {
	for _, backend := range []string{"sqlite", "redis"} {
		t.Run(backend, func(t *testing.T) {
			cfg := config.Default()
			cfg.DataDir = t.TempDir()
			cfg.Queue.Backend = backend
			if backend == "redis" {
				if testing.Short() {
					t.Skip("starts redis-server")
				}
				cfg.Queue.Redis.Addrs = []string{testsvc.StartRedis(t).Addr()}
			}
			testJobsCommand(t, cfg)
		})
	}
}

func testJobsCommand(t *testing.T, cfg *config.Config) {
	ctx := context.Background()
	s, err := openServices(ctx, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	var failing atomic.Bool
	failing.Store(true)
	ex := jobs.ExecutorFunc(func(ctx context.Context, j *abi.Job) (abi.JobResult, error) {
		if failing.Load() {
			return abi.JobResult{Status: abi.JobFail, Error: []byte("bad address " + string(j.Payload))}, nil
		}
		return abi.JobResult{}, nil
	})
	if err := s.runner.SetQueue(jobs.QueueConfig{Queue: "emails", Concurrency: 2}, ex); err != nil {
		t.Fatal(err)
	}
	if err := s.runner.Start(); err != nil {
		t.Fatal(err)
	}
	defer s.stopJobs(ctx)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	routes := s.adminRoutes()
	srv := &fasthttp.Server{Handler: func(c *fasthttp.RequestCtx) {
		if h := routes[string(c.Path())]; h != nil {
			h(c)
			return
		}
		c.Error("not found", fasthttp.StatusNotFound)
	}}
	go srv.Serve(ln)
	defer srv.Shutdown()
	addr := ln.Addr().String()
	jobsCmd := func(args ...string) (string, error) {
		out, _, err := run(t, nil, append([]string{"jobs", "-admin", addr}, args...)...)
		return out, err
	}

	var ids []string
	for _, to := range []string{"a@x", "b@x", "c@x"} {
		id, err := s.host.Queue.Submit(ctx, "emails", []byte(to), 0)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	waitStats(t, s, func(q jobs.QueueStats) bool { return q.Dead == 3 })

	out, err := jobsCmd()
	if err != nil || !strings.Contains(out, "emails") || !strings.Contains(out, "DEAD") {
		t.Fatalf("jobs: %v\n%s", err, out)
	}
	// Without -admin the address is the config's admin.listen.
	conf := filepath.Join(t.TempDir(), "wasmcorn.toml")
	writeFile(t, conf, "[admin]\nlisten = \""+addr+"\"\n")
	if out2, _, err := run(t, nil, "jobs", "-config", conf, "stats"); err != nil || out2 != out {
		t.Fatalf("jobs -config: %v\n%s\nwant\n%s", err, out2, out)
	}
	out, err = jobsCmd("dead", "emails", "-n", "10")
	if err != nil {
		t.Fatal(err)
	}
	for i, id := range ids {
		if !strings.Contains(out, id) || !strings.Contains(out, "bad address "+[]string{"a@x", "b@x", "c@x"}[i]) {
			t.Fatalf("jobs dead: job %s or its reason missing:\n%s", id, out)
		}
	}
	if !strings.Contains(out, "3 dead letter(s) of queue emails shown") {
		t.Fatalf("jobs dead:\n%s", out)
	}

	// Refusals: no ids and no -all, ids and -all, a bad queue name, a
	// purge over GET.
	if _, err := jobsCmd("purge", "emails"); err == nil {
		t.Fatal("jobs purge without ids or -all succeeded")
	}
	if _, err := jobsCmd("requeue", "emails", "-all", ids[0]); err == nil {
		t.Fatal("jobs requeue with ids and -all succeeded")
	}
	if _, err := jobsCmd("dead", "bad queue!"); err == nil || !strings.Contains(err.Error(), "queue parameter") {
		t.Fatalf("jobs dead with a bad queue name: %v", err)
	}
	resp, err := http.Get("http://" + addr + adminPurgePath + "?queue=emails&all=1")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("GET purge: %s", resp.Status)
	}

	out, err = jobsCmd("purge", "emails", ids[0])
	if err != nil || !strings.Contains(out, "emails: 1 dead letter(s) purged") {
		t.Fatalf("jobs purge %s: %v\n%s", ids[0], err, out)
	}
	failing.Store(false)
	out, err = jobsCmd("requeue", "-all", "emails")
	if err != nil || !strings.Contains(out, "emails: 2 dead letter(s) requeued") {
		t.Fatalf("jobs requeue -all: %v\n%s", err, out)
	}
	waitStats(t, s, func(q jobs.QueueStats) bool { return q.Completed == 2 && q.Dead == 0 })

	resp, err = http.Get("http://" + addr + adminDeadPath + "?queue=emails")
	if err != nil {
		t.Fatal(err)
	}
	var dead struct {
		Dead []jobs.DeadLetter `json:"dead"`
	}
	err = json.NewDecoder(resp.Body).Decode(&dead)
	resp.Body.Close()
	if err != nil || dead.Dead == nil || len(dead.Dead) != 0 {
		t.Fatalf("GET dead after requeue: %v %+v", err, dead)
	}
}

func waitStats(t *testing.T, s *services, cond func(jobs.QueueStats) bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		st := s.runner.Stats(context.Background())
		if len(st) == 1 && cond(st[0]) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("queue stats never matched: %+v", st)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
