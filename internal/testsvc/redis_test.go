package testsvc

import (
	"bufio"
	"context"
	"errors"
	"net"
	"os"
	"strings"
	"testing"
	"time"
)

func TestRedisLifecycle(t *testing.T) {
	if testing.Short() {
		t.Skip("starts redis-server")
	}
	r := StartRedis(t)
	addr := r.Addr()
	if err := ping(addr); err != nil {
		t.Fatalf("ping fresh server: %v", err)
	}

	r.Kill()
	if err := ping(addr); err == nil {
		t.Fatal("ping answered after Kill")
	}
	r.Kill() // killing a stopped server is a no-op

	r.Start()
	if r.Addr() != addr {
		t.Fatalf("address changed across restart: %s then %s", addr, r.Addr())
	}
	if err := ping(addr); err != nil {
		t.Fatalf("ping after restart: %v", err)
	}
	r.Start() // starting a running server is a no-op
	if err := ping(addr); err != nil {
		t.Fatalf("ping after second Start: %v", err)
	}

	r.Stop()
	if err := ping(addr); err == nil {
		t.Fatal("ping answered after Stop")
	}
}

// TestRedisServerOptions checks the core the benchmark suite uses: extra
// server options apply and Close removes the files.
func TestRedisServerOptions(t *testing.T) {
	if testing.Short() {
		t.Skip("starts redis-server")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r, err := StartRedisServer(ctx, RedisOptions{Dir: t.TempDir(), Args: []string{"--maxclients", "1234"}})
	if errors.Is(err, ErrNotInstalled) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.DialTimeout("tcp", r.Addr(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Write([]byte("CONFIG GET maxclients\r\n")); err != nil {
		t.Fatal(err)
	}
	// *2 $10 maxclients $4 1234
	rd := bufio.NewReader(conn)
	var lines []string
	for range 5 {
		line, err := rd.ReadString('\n')
		if err != nil {
			t.Fatalf("read CONFIG GET reply: %v (so far %q)", err, lines)
		}
		lines = append(lines, strings.TrimSpace(line))
	}
	if lines[4] != "1234" {
		t.Errorf("CONFIG GET maxclients = %q, want 1234 from RedisOptions.Args", lines)
	}
	dir := r.dir
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := ping(r.Addr()); err == nil {
		t.Error("ping answered after Close")
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s not removed by Close: %v", dir, err)
	}
}

func TestRedisClusterAndSentinel(t *testing.T) {
	if testing.Short() {
		t.Skip("starts redis-server processes")
	}
	c := StartRedisCluster(t)
	if len(c.Addrs()) != 3 {
		t.Fatalf("cluster addrs %v", c.Addrs())
	}
	for _, a := range c.Addrs() {
		if err := ping(a); err != nil {
			t.Fatalf("cluster node %s: %v", a, err)
		}
	}
	s := StartRedisSentinel(t)
	if err := ping(s.SentinelAddr()); err != nil {
		t.Fatalf("sentinel: %v", err)
	}
	if err := ping(s.Master.Addr()); err != nil || s.MasterName == "" {
		t.Fatalf("master %s: %v", s.MasterName, err)
	}
}

// TestRedisPortTaken: a server started on a port another redis-server
// already holds reports errPortTaken instead of passing the other's PING
// off as its own, and the other server keeps serving.
func TestRedisPortTaken(t *testing.T) {
	if testing.Short() {
		t.Skip("starts redis-server")
	}
	a, b := StartRedis(t), StartRedis(t)
	b.Stop()
	b.s.port = a.s.Port()
	err := b.s.Start(context.Background())
	if !errors.Is(err, errPortTaken) {
		t.Fatalf("start on a taken port: got %v, want errPortTaken", err)
	}
	if err := ping(a.Addr()); err != nil {
		t.Fatalf("the server holding the port: %v", err)
	}
}
