package native

import (
	"context"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wasmcorn/wasmcorn/bench/loadgen"
	"github.com/wasmcorn/wasmcorn/bench/workload"
	"github.com/wasmcorn/wasmcorn/internal/testsvc"
)

// TestEndpoints runs the native server against throwaway MariaDB and Redis
// and checks every endpoint's answers, with both /cached backends, and
// that the queue worker executes the submitted jobs.
func TestEndpoints(t *testing.T) {
	if testing.Short() {
		t.Skip("starts MariaDB and Redis")
	}
	m := testsvc.StartMariaDB(t)
	r := testsvc.StartRedis(t)
	m.Exec("CREATE DATABASE bench")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := workload.Seed(ctx, m.DB("bench")); err != nil {
		t.Fatal(err)
	}
	rc := redis.NewClient(&redis.Options{Addr: r.Addr()})
	defer rc.Close()
	for id := 1; id <= workload.Rows; id++ {
		if err := rc.Set(ctx, workload.WorldKey(id), workload.WorldValue(id), 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	static := t.TempDir()
	if err := os.WriteFile(filepath.Join(static, workload.StaticName), workload.StaticContent(), 0o644); err != nil {
		t.Fatal(err)
	}

	for _, cache := range []string{"memory", "redis"} {
		t.Run(cache, func(t *testing.T) {
			s, err := New(Config{
				MySQLDSN:  m.DSN("bench"),
				RedisAddr: r.Addr(),
				StaticDir: static,
				Cache:     cache,
			}, slog.New(slog.DiscardHandler))
			if err != nil {
				t.Fatal(err)
			}
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			go s.Serve(ln)
			defer s.Close()
			base := "http://" + ln.Addr().String()
			before := s.jobsDone.Load()
			tests := []struct {
				path, method string
				paths        []string
			}{
				{"/json", "GET", nil},
				{"/jsonstruct", "GET", nil},
				{"/jsonbig", "GET", nil},
				{"/db", "GET", workload.IDPaths("/db")},
				{"/cached", "GET", workload.IDPaths("/cached")},
				{"/queue", "POST", nil},
				{"/static/" + workload.StaticName, "GET", nil},
			}
			for _, tt := range tests {
				t.Run(tt.path, func(t *testing.T) {
					res, err := loadgen.Run(ctx, loadgen.Config{
						URL:         base + tt.path,
						Paths:       tt.paths,
						Method:      tt.method,
						Body:        []byte(workload.JobPayload),
						Connections: 4,
						Requests:    2000,
						Check:       workload.Check(tt.path),
					})
					if err != nil {
						t.Fatal(err)
					}
					if res.Successes != 2000 {
						t.Errorf("%d of 2000 succeeded: %+v %v", res.Successes, res.Errors, res.ErrorSamples)
					}
				})
			}
			// Every submitted job is executed by the worker.
			deadline := time.Now().Add(30 * time.Second)
			for s.jobsDone.Load()-before < 2000 && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond)
			}
			if got := s.jobsDone.Load() - before; got != 2000 {
				t.Errorf("jobs executed = %d, want 2000", got)
			}
		})
	}
	// A bad id is the client's error.
	s, err := New(Config{MySQLDSN: m.DSN("bench"), RedisAddr: r.Addr()}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	go s.Serve(ln)
	defer s.Close()
	res, err := loadgen.Run(ctx, loadgen.Config{URL: "http://" + ln.Addr().String() + "/db?id=0", Requests: 1})
	if err != nil || res.StatusCodes[400] != 1 {
		t.Errorf("/db?id=0: %v %v, want 400", res.StatusCodes, err)
	}
}

func TestConfigErrors(t *testing.T) {
	if _, err := New(Config{Cache: "disk"}, slog.New(slog.DiscardHandler)); err == nil {
		t.Error("cache disk accepted")
	}
	if _, err := New(Config{MySQLDSN: "not a dsn"}, slog.New(slog.DiscardHandler)); err == nil {
		t.Error("bad DSN accepted")
	}
}
