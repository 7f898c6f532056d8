package testsvc

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestMariaDBLifecycle(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a MariaDB server")
	}
	begin := time.Now()
	m := StartMariaDB(t)
	t.Logf("StartMariaDB took %s", time.Since(begin))

	// Root over TCP with an empty password, database test exists.
	db := m.DB("test")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	m.Exec("CREATE TABLE test.kv (k VARCHAR(64) PRIMARY KEY, v TEXT)")
	m.Exec("INSERT INTO test.kv VALUES (?, ?)", "greeting", "héllo 👋")
	var v string
	if err := db.QueryRowContext(ctx, "SELECT v FROM kv WHERE k = ?", "greeting").Scan(&v); err != nil {
		t.Fatalf("select: %v", err)
	}
	if v != "héllo 👋" {
		t.Fatalf("utf8mb4 round trip: got %q", v)
	}
	var user string
	if err := db.QueryRowContext(ctx, "SELECT CURRENT_USER()").Scan(&user); err != nil {
		t.Fatal(err)
	}
	if user != "root@127.0.0.1" && user != "root@localhost" {
		t.Fatalf("CURRENT_USER() = %q, want root", user)
	}
	if n := m.GlobalStatus("Connections"); n < 1 {
		t.Fatalf("Connections = %d, want >= 1", n)
	}

	// Kill: the port closes; Start: same port, data survived (InnoDB recovery).
	m.Kill()
	if c, err := net.DialTimeout("tcp", m.Addr(), time.Second); err == nil {
		c.Close()
		t.Fatalf("port %d still accepts connections after Kill", m.Port())
	}
	begin = time.Now()
	m.Start()
	t.Logf("restart after Kill took %s", time.Since(begin))
	if err := db.QueryRowContext(ctx, "SELECT v FROM kv WHERE k = ?", "greeting").Scan(&v); err != nil {
		t.Fatalf("select after restart with the same pool: %v", err)
	}
	if v != "héllo 👋" {
		t.Fatalf("after restart: got %q", v)
	}

	// Pause: the port still accepts (the kernel does), the server answers nothing.
	m.Pause()
	pctx, pcancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	err := db.PingContext(pctx)
	pcancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		m.Resume()
		t.Fatalf("ping of a paused server: %v, want a deadline error", err)
	}
	m.Resume()
	if err := db.PingContext(ctx); err != nil {
		t.Fatalf("ping after Resume: %v", err)
	}

	// Graceful stop and start again.
	m.Stop()
	if err := db.PingContext(ctx); err == nil {
		t.Fatal("ping succeeded while stopped")
	}
	m.Start()
	if err := db.PingContext(ctx); err != nil {
		t.Fatalf("ping after Start: %v", err)
	}
}

func TestMariaDBParallelAndCleanup(t *testing.T) {
	if testing.Short() {
		t.Skip("starts MariaDB servers")
	}
	var dirs [2]string
	var ports [2]int
	t.Run("group", func(t *testing.T) {
		for i := range 2 {
			t.Run("server", func(t *testing.T) {
				t.Parallel()
				m := StartMariaDB(t)
				dirs[i], ports[i] = m.s.dir, m.Port()
				// Each server has its own data: a table made here is absent on the other.
				m.Exec("CREATE TABLE test.only_here (id INT)")
				if _, err := os.Stat(filepath.Join(m.s.dir, "data", "test", "only_here.frm")); err != nil {
					t.Fatalf("table file not in this server's data dir: %v", err)
				}
			})
		}
	})
	// The group's cleanups have run: both servers are gone with their files.
	if ports[0] == ports[1] {
		t.Fatalf("two servers share port %d", ports[0])
	}
	for i := range 2 {
		if _, err := os.Stat(dirs[i]); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("dir %s not removed after cleanup: %v", dirs[i], err)
		}
		if c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[i])), time.Second); err == nil {
			c.Close()
			t.Errorf("port %d still open after cleanup", ports[i])
		}
	}
}

// TestMariaDBServerOptions checks the core the benchmark suite uses: extra
// server options apply, Version answers, reading the Connections counter
// does not itself open connections, and Close removes the files.
func TestMariaDBServerOptions(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a MariaDB server")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	parent := t.TempDir()
	m, err := StartMariaDBServer(ctx, MariaDBOptions{Dir: parent, Args: []string{"--max-connections=4000"}})
	if errors.Is(err, ErrNotInstalled) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	dir := m.dir
	if filepath.Dir(dir) != parent {
		t.Errorf("server directory %s not under %s", dir, parent)
	}
	db, err := m.DB("")
	if err != nil {
		t.Fatal(err)
	}
	var maxConns int
	if err := db.QueryRowContext(ctx, "SELECT @@max_connections").Scan(&maxConns); err != nil || maxConns != 4000 {
		t.Errorf("max_connections = %d (%v), want 4000 from MariaDBOptions.Args", maxConns, err)
	}
	if v, err := m.Version(ctx); err != nil || !strings.Contains(v, "MariaDB") {
		t.Errorf("Version = %q, %v", v, err)
	}
	before, err := m.GlobalStatus(ctx, "Connections")
	if err != nil {
		t.Fatal(err)
	}
	after, err := m.GlobalStatus(ctx, "Connections")
	if err != nil || after != before {
		t.Errorf("Connections %d then %d (%v): reading the counter opened a connection", before, after, err)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s not removed by Close: %v", dir, err)
	}
	if err := m.Close(); err != nil { // a second Close is harmless
		t.Errorf("second Close: %v", err)
	}
}

// TestMariaDBPortTaken: a server started on a port another mariadbd
// already holds reports errPortTaken (the other answers with a different
// datadir) instead of taking it for its own, and the other keeps serving.
func TestMariaDBPortTaken(t *testing.T) {
	if testing.Short() {
		t.Skip("starts MariaDB servers")
	}
	a, b := StartMariaDB(t), StartMariaDB(t)
	a.Exec("CREATE TABLE test.mine (id INT)")
	b.Stop()
	b.s.closePools()
	b.s.port = a.Port()
	err := b.s.Start(context.Background())
	if !errors.Is(err, errPortTaken) {
		t.Fatalf("start on a taken port: got %v, want errPortTaken", err)
	}
	a.Exec("INSERT INTO test.mine VALUES (1)")
}

func TestFreePortDistinct(t *testing.T) {
	seen := map[int]bool{}
	for range 300 {
		p, err := freePort()
		if err != nil {
			t.Fatal(err)
		}
		if seen[p] {
			t.Fatalf("port %d handed out twice", p)
		}
		seen[p] = true
	}
}
