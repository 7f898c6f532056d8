package classic

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wasmcorn/wasmcorn/bench/internal/proc"
	"github.com/wasmcorn/wasmcorn/bench/loadgen"
	"github.com/wasmcorn/wasmcorn/bench/workload"
	"github.com/wasmcorn/wasmcorn/internal/testsvc"
)

// TestStacksServeWorkload starts each classic stack against throwaway
// MariaDB and Redis and sends every endpoint a few requests, checking the
// answers with the workload's checks.
func TestStacksServeWorkload(t *testing.T) {
	if testing.Short() {
		t.Skip("starts MariaDB, Redis, nginx and three application servers")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if _, err := Available(ctx); errors.Is(err, ErrMissing) {
		t.Skip(err)
	} else if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	m := testsvc.StartMariaDB(t)
	r := testsvc.StartRedis(t)
	m.Exec("CREATE DATABASE bench")
	if err := workload.Seed(ctx, m.DB("bench")); err != nil {
		t.Fatal(err)
	}
	rc := redis.NewClient(&redis.Options{Addr: r.Addr()})
	defer rc.Close()
	for id := 1; id <= workload.Rows; id++ {
		k, v := WorldCacheEntry(id)
		if err := rc.Set(ctx, k, v, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	static := filepath.Join(dir, "static")
	if err := os.MkdirAll(static, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(static, workload.StaticName), workload.StaticContent(), 0o644); err != nil {
		t.Fatal(err)
	}

	for _, stack := range Stacks {
		t.Run(string(stack), func(t *testing.T) {
			run, err := Start(ctx, stack, Options{
				Dir:       filepath.Join(dir, string(stack)),
				StaticDir: static,
				MySQLPort: m.Port(),
				RedisAddr: r.Addr(),
				Cache:     "redis",
			})
			if err != nil {
				t.Fatal(err)
			}
			defer run.Stop()
			endpoints := []struct {
				path   string
				method string
				paths  []string
			}{
				{"/json", "GET", nil},
				{"/jsonstruct", "GET", nil},
				{"/db", "GET", workload.IDPaths("/db")[:20]},
				{"/cached", "GET", workload.IDPaths("/cached")[:20]},
				{"/queue", "POST", nil},
				{"/static/" + workload.StaticName, "GET", nil},
			}
			for _, ep := range endpoints {
				cfg := loadgen.Config{
					URL:         run.URL + ep.path,
					Paths:       ep.paths,
					Method:      ep.method,
					Connections: 2,
					Requests:    40,
					Timeout:     30 * time.Second,
					Check:       workload.Check(ep.path),
				}
				if ep.method == "POST" {
					cfg.Body = []byte(workload.JobPayload)
					cfg.Headers = []loadgen.Header{{Name: "Content-Type", Value: "application/json"}}
				}
				res, err := loadgen.Run(ctx, cfg)
				if err != nil {
					t.Fatal(err)
				}
				if res.Successes != 40 {
					t.Errorf("%s: %d of 40 succeeded: errors %+v %v", ep.path, res.Successes, res.Errors, res.ErrorSamples)
				}
			}
			// The Django items are the workload's items.
			var got workload.ItemList
			if err := getJSON(run.URL+"/jsonstruct", &got); err != nil {
				t.Fatal(err)
			}
			if want := workload.Items(); !reflect.DeepEqual(got, want) {
				t.Errorf("/jsonstruct = %+v\nwant %+v", got, want)
			}
			u, err := proc.TreeUsage(run.Pids()...)
			if err != nil {
				t.Fatal(err)
			}
			// nginx master + 2 workers, the app master + its workers.
			if u.Procs < 6 || u.CPU <= 0 || u.PeakRSS <= 0 {
				t.Errorf("usage %+v: want the whole process tree", u)
			}
			if n, err := rc.LLen(ctx, QueueKey).Result(); err != nil || n < 40 {
				t.Errorf("queue length %d (%v), want >= 40 jobs submitted", n, err)
			}
			rc.Del(ctx, QueueKey)
		})
	}
}

func getJSON(url string, v any) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}
