package cli

import (
	"context"
	"log/slog"
	"testing"

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
