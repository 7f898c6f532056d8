package cli

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/wasmcorn/wasmcorn/abi"
	"github.com/wasmcorn/wasmcorn/host/jobs"
	"github.com/wasmcorn/wasmcorn/internal/config"
	"github.com/wasmcorn/wasmcorn/internal/testsvc"
)

// TestServicesRedisBackends: with cache and queue on Redis, the services
// reach a real (throwaway) Redis: the job runner exists, a submitted job
// gets an id, and a cached value reads back.
func TestServicesRedisBackends(t *testing.T) {
	if testing.Short() {
		t.Skip("starts redis-server")
	}
	r := testsvc.StartRedis(t)
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.Cache.Backend = "redis"
	cfg.Cache.Redis.Addrs = []string{r.Addr()}
	cfg.Queue.Backend = "redis"
	cfg.Queue.Redis.Addrs = []string{r.Addr()}
	ctx := context.Background()
	s, err := openServices(ctx, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	if s.host.Queue == nil || s.runner == nil {
		t.Fatal("redis queue or job runner not configured")
	}
	id, err := s.host.Queue.Submit(ctx, "emails", []byte(`{"to":"a@example.test"}`), 0)
	if err != nil || id == "" {
		t.Fatalf("submit: %q, %v", id, err)
	}
	if err := s.host.Cache.Set(ctx, "ns:k", []byte("v"), 0); err != nil {
		t.Fatal(err)
	}
	v, ok, err := s.host.Cache.Get(ctx, "ns:k")
	if err != nil || !ok || string(v) != "v" {
		t.Fatalf("cache get: %q %v %v", v, ok, err)
	}
}

// TestServicesRedisTopologies: [cache.redis] and [queue.redis] in cluster
// and sentinel mode reach throwaway deployments: a cached value reads back,
// a lock is taken and freed, and a submitted job is run by the runner.
func TestServicesRedisTopologies(t *testing.T) {
	if testing.Short() {
		t.Skip("starts redis-server processes")
	}
	for _, mode := range []string{"cluster", "sentinel"} {
		t.Run(mode, func(t *testing.T) {
			r := config.Redis{Mode: mode}
			if mode == "cluster" {
				r.Addrs = testsvc.StartRedisCluster(t).Addrs()
			} else {
				s := testsvc.StartRedisSentinel(t)
				r.Addrs, r.MasterName = []string{s.SentinelAddr()}, s.MasterName
			}
			cfg := config.Default()
			cfg.DataDir = t.TempDir()
			cfg.Cache.Backend, cfg.Queue.Backend = "redis", "redis"
			cfg.Cache.Redis, cfg.Queue.Redis = r, r
			if err := cfg.Validate(); err != nil {
				t.Fatalf("config: %v", err)
			}
			ctx := context.Background()
			s, err := openServices(ctx, cfg, slog.New(slog.DiscardHandler))
			if err != nil {
				t.Fatal(err)
			}
			defer s.close()
			if err := s.host.Cache.Set(ctx, "ns:k", []byte("v"), time.Minute); err != nil {
				t.Fatal(err)
			}
			if v, ok, err := s.host.Cache.Get(ctx, "ns:k"); err != nil || !ok || string(v) != "v" {
				t.Fatalf("cache get: %q %v %v", v, ok, err)
			}
			tok, err := s.host.Locker.Acquire(ctx, "ns:login", time.Minute, 0)
			if err != nil {
				t.Fatal(err)
			}
			if ok, err := s.host.Locker.Release(ctx, "ns:login", tok); !ok || err != nil {
				t.Fatalf("release: %v %v", ok, err)
			}
			ran := make(chan string, 1)
			err = s.runner.SetQueue(jobs.QueueConfig{Queue: "emails"}, jobs.ExecutorFunc(func(_ context.Context, j *abi.Job) (abi.JobResult, error) {
				ran <- string(j.Payload)
				return abi.JobResult{}, nil
			}))
			if err != nil {
				t.Fatal(err)
			}
			if err := s.runner.Start(); err != nil {
				t.Fatal(err)
			}
			defer s.stopJobs(ctx)
			if _, err := s.host.Queue.Submit(ctx, "emails", []byte("hello"), 0); err != nil {
				t.Fatal(err)
			}
			select {
			case p := <-ran:
				if p != "hello" {
					t.Fatalf("job payload %q", p)
				}
			case <-time.After(30 * time.Second):
				t.Fatal("the job did not run")
			}
		})
	}
}
