package services

import (
	"context"
	"database/sql"
	"errors"
	"testing"
	"time"

	"github.com/wasmcorn/wasmcorn/bench/workload"
)

// TestServices starts both servers, seeds the workload and checks the
// connection counter counts a new connection.
func TestServices(t *testing.T) {
	if testing.Short() {
		t.Skip("starts mariadbd and redis-server")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	m, err := StartMariaDB(ctx, dir+"/mariadb")
	if errors.Is(err, ErrNotInstalled) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer m.Stop()
	r, err := StartRedis(ctx, dir+"/redis")
	if errors.Is(err, ErrNotInstalled) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer r.Stop()

	before, err := m.Connections(ctx)
	if err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("mysql", m.DSN("bench"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := workload.Seed(ctx, db); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := db.QueryRowContext(ctx, workload.SelectWorld, 17).Scan(new(int), &n); err != nil || n != workload.RandomNumber(17) {
		t.Fatalf("row 17: %d, %v", n, err)
	}
	after, err := m.Connections(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if after <= before {
		t.Errorf("Connections %d -> %d: the seeding connection was not counted", before, after)
	}
	c := r.Client()
	defer c.Close()
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if v, err := c.Get(ctx, "k").Result(); err != nil || v != "v" {
		t.Fatalf("redis get: %q %v", v, err)
	}
	if v, err := m.Version(ctx); err != nil || v == "" {
		t.Fatalf("version %q %v", v, err)
	}
}
