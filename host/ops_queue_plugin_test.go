package host_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/wasmcorn/wasmcorn/abi"
	"github.com/wasmcorn/wasmcorn/host"
	"github.com/wasmcorn/wasmcorn/host/backend/redisconn"
	"github.com/wasmcorn/wasmcorn/host/backend/redisqueue"
	"github.com/wasmcorn/wasmcorn/host/backend/sqldb"
	"github.com/wasmcorn/wasmcorn/host/backend/sqlitequeue"
	"github.com/wasmcorn/wasmcorn/host/jobs"
	"github.com/wasmcorn/wasmcorn/host/jobs/jobstest"
	"github.com/wasmcorn/wasmcorn/internal/config"
	"github.com/wasmcorn/wasmcorn/internal/testplugins"
	"github.com/wasmcorn/wasmcorn/internal/testsvc"
)

// TestPluginJobs runs the example plugin plugins/jobs, loaded from its real
// manifest, on the real host runtime with a job runner over each queue
// backend: the plugin's HTTP handler submits jobs, its job handlers consume
// them (with a retry, a dead letter and a delayed job), and its periodic
// job writes digests.
func TestPluginJobs(t *testing.T) {
	host.SkipCompilingUnderRace(t)
	if testing.Short() {
		t.Skip("builds and runs a Wasm plugin; skipped with -short")
	}
	for _, tc := range []struct {
		name  string
		queue func(t *testing.T) jobs.Backend
	}{
		{"sqlite", func(t *testing.T) jobs.Backend {
			q, err := sqlitequeue.Open(context.Background(), sqlitequeue.Options{Path: filepath.Join(t.TempDir(), "queue.db"), PollInterval: 20 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			return q
		}},
		{"redis", func(t *testing.T) jobs.Backend {
			srv := testsvc.StartRedis(t)
			q, err := redisqueue.New(redisqueue.Config{Conn: redisconn.Conn{Addrs: []string{srv.Addr()}}, PromoteEvery: 20 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			return q
		}},
	} {
		t.Run(tc.name, func(t *testing.T) { testPluginJobs(t, tc.queue(t)) })
	}
}

type jobsApp struct {
	plugin *host.Plugin
}

func (a *jobsApp) do(t *testing.T, method, path, query, body string, want int) string {
	t.Helper()
	req := &abi.Request{
		Method: []byte(method), Scheme: []byte("http"), Host: []byte("example.test"),
		Path: []byte(path), RawQuery: []byte(query), RemoteAddr: []byte("127.0.0.1:9999"),
		RequestID: []byte("req-jobs"), Body: []byte(body),
	}
	out, err := a.plugin.Handle(context.Background(), abi.AppendRequest(nil, req), nil)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	var resp abi.Response
	if err := abi.DecodeResponse(out, &resp); err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	if int(resp.Status) != want {
		t.Fatalf("%s %s?%s = %d %s, want %d", method, path, query, resp.Status, resp.Body, want)
	}
	return string(resp.Body)
}

func testPluginJobs(t *testing.T, q jobs.Backend) {
	t.Cleanup(func() { q.Close() })
	ctx := context.Background()
	set, err := sqldb.Open(t.TempDir(), map[string]sqldb.Config{"default": {Driver: "sqlite", DSN: "app.db"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { set.Close() })
	cacheDir, err := os.UserCacheDir()
	if err != nil {
		cacheDir = t.TempDir()
	}
	rt, err := host.NewRuntime(host.RuntimeOptions{
		CacheDir: filepath.Join(cacheDir, "wasmcorn", "host-test-compiled"),
		Services: &host.Services{SQL: set, Queue: q},
		Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Close(context.Background()) })
	root, err := testplugins.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	m, err := config.LoadManifest(filepath.Join(root, "plugins", "jobs.toml"))
	if err != nil {
		t.Fatal(err)
	}
	spec := m.Spec("jobs", testplugins.Bytes(t, "jobs"))
	spec.Pool.Min, spec.Pool.Max, spec.Pool.MaxWait = 2, 6, time.Minute
	p, err := rt.Load(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Drain(context.Background()) })
	if !p.HasJobs() {
		t.Fatal("plugin jobs does not export wasmcorn_job")
	}

	r := jobs.NewRunner(q, jobs.Options{BackoffMin: 20 * time.Millisecond, BackoffMax: 100 * time.Millisecond,
		ClaimWait: 100 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	t.Cleanup(func() {
		c, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := r.Stop(c); err != nil {
			t.Errorf("stop runner: %v", err)
		}
	})
	for _, qc := range m.QueueConfigs() {
		if err := r.SetQueue(qc, p); err != nil {
			t.Fatal(err)
		}
	}
	periodic := m.PeriodicJobs("jobs")
	if len(periodic) != 1 || periodic[0].Name != "jobs.digest" {
		t.Fatalf("manifest periodic jobs: %+v", periodic)
	}
	periodic[0].Schedule = "@every 1s" // the manifest's minute is too slow for a test
	if err := r.SetPeriodic(periodic); err != nil {
		t.Fatal(err)
	}
	if err := r.Start(); err != nil {
		t.Fatal(err)
	}

	app := &jobsApp{plugin: p}
	app.do(t, "POST", "/jobs/signup", "", `{"email":`, 400)
	ids := map[string]string{}
	for _, s := range []struct{ email, query string }{
		{"ann@example.com", ""},
		{"flaky@example.com", ""},
		{"bob@example.com", "delay_ms=300"},
		{"not-an-address", ""},
	} {
		var res struct {
			JobID string `json:"job_id"`
		}
		body := app.do(t, "POST", "/jobs/signup", s.query, fmt.Sprintf(`{"email":%q}`, s.email), 202)
		if err := json.Unmarshal([]byte(body), &res); err != nil || res.JobID == "" {
			t.Fatalf("signup %s: %s", s.email, body)
		}
		ids[s.email] = res.JobID
	}

	jobstest.Eventually(t, 60*time.Second, "3 emails sent and 1 dead-lettered", func() bool {
		s, err := q.Stats(ctx, "emails")
		return err == nil && s.Completed == 3 && s.Dead == 1
	})
	var sent struct {
		Count int `json:"count"`
		Sent  []struct {
			JobID   string `json:"job_id"`
			Email   string `json:"email"`
			Attempt int    `json:"attempt"`
		} `json:"sent"`
	}
	if err := json.Unmarshal([]byte(app.do(t, "GET", "/jobs/sent", "", "", 200)), &sent); err != nil {
		t.Fatal(err)
	}
	if sent.Count != 3 {
		t.Fatalf("sent = %+v, want 3 emails", sent)
	}
	for _, s := range sent.Sent {
		wantAttempt := 1
		if s.Email == "flaky@example.com" {
			wantAttempt = 3 // failed twice, retried with backoff
		}
		if ids[s.Email] != s.JobID || s.Attempt != wantAttempt {
			t.Errorf("sent %+v, want job %s at attempt %d", s, ids[s.Email], wantAttempt)
		}
	}

	var digests struct {
		Count   int `json:"count"`
		Digests []struct {
			Total int `json:"total"`
		} `json:"digests"`
	}
	jobstest.Eventually(t, 30*time.Second, "the periodic job wrote a digest counting the 3 emails", func() bool {
		if err := json.Unmarshal([]byte(app.do(t, "GET", "/jobs/digests", "", "", 200)), &digests); err != nil {
			t.Fatal(err)
		}
		return digests.Count > 0 && digests.Digests[0].Total == 3
	})
	// The digest is visible as soon as the job wrote it, a moment before
	// the runner records the job as completed.
	var st []jobs.QueueStats
	jobstest.Eventually(t, 30*time.Second, "the runner counts the periodic job as completed", func() bool {
		st = r.Stats(ctx)
		return len(st) == 2 && st[1].Completed >= 1
	})
	if st[0].Queue != "emails" || st[1].Queue != "maintenance" || st[0].Concurrency != 4 {
		t.Fatalf("runner stats: %+v", st)
	}
}
