// Package testsvc starts throwaway backing services (MariaDB, Redis): real
// servers from the installed Debian packages, each on a free 127.0.0.1 port
// with its own temporary directory. Tests never use the machine's own
// services on their default ports, and can stop, kill and restart a
// throwaway server to test faults.
//
// The core (StartMariaDBServer, StartRedisServer) returns errors and is
// used by the benchmark suite as well; StartMariaDB and StartRedis wrap it
// for tests: they stop the server with t.Cleanup, fail the test on an
// error and skip it when a server binary is missing, naming the command
// that installs it (`scripts/deps.sh test`; `make test` always runs it
// first). The package does not import package testing (see TB), so a
// non-test binary using the core does not link it.
package testsvc

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"time"
)

// TB is the part of testing.TB the test wrappers use; *testing.T,
// *testing.B and testing.TB satisfy it.
type TB interface {
	Helper()
	Cleanup(func())
	Errorf(format string, args ...any)
	Fatalf(format string, args ...any)
	Skipf(format string, args ...any)
}

// opTimeout bounds one statement or state change made by a test wrapper.
const opTimeout = 30 * time.Second

// start runs a core start function for t: skip when the server is not
// installed, fail on another error, stop the server at cleanup.
func start[S interface{ Close() error }](t TB, what string, startFn func(context.Context) (S, error)) S {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s, err := startFn(ctx)
	if errors.Is(err, ErrNotInstalled) {
		t.Skipf("testsvc: %v", err)
	}
	if err != nil {
		t.Fatalf("testsvc: start %s: %v", what, err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("testsvc: close %s: %v", what, err)
		}
	})
	return s
}

// MariaDB is a throwaway MariaDBServer owned by one test: its methods fail
// the test on an error. Methods that change the server's state (Stop, Kill,
// Pause, Resume, Start) must be called from the test's goroutine, like
// t.Fatal; Port, DSN, Addr and DB are safe from any goroutine.
type MariaDB struct {
	t TB
	s *MariaDBServer
}

// StartMariaDB starts a throwaway MariaDB server for t (StartMariaDBServer)
// and registers its shutdown, and the removal of its files, with
// t.Cleanup. It calls t.Skip when the MariaDB server binaries are not
// installed.
func StartMariaDB(t TB) *MariaDB {
	t.Helper()
	s := start(t, "mariadb", func(ctx context.Context) (*MariaDBServer, error) {
		return StartMariaDBServer(ctx, MariaDBOptions{})
	})
	return &MariaDB{t: t, s: s}
}

// Server is the underlying server, for calls that report errors.
func (m *MariaDB) Server() *MariaDBServer { return m.s }

// Port is the server's TCP port on 127.0.0.1.
func (m *MariaDB) Port() int { return m.s.Port() }

// Addr is "127.0.0.1:port".
func (m *MariaDB) Addr() string { return m.s.Addr() }

// DSN returns a go-sql-driver/mysql DSN for database db as root over TCP,
// without parameters: "root@tcp(127.0.0.1:PORT)/db".
func (m *MariaDB) DSN(db string) string { return m.s.DSN(db) }

// DB returns the shared pool on database db (MariaDBServer.DB).
func (m *MariaDB) DB(db string) *sql.DB {
	p, err := m.s.DB(db)
	if err != nil {
		m.t.Fatalf("testsvc: %v", err)
	}
	return p
}

// Exec runs one statement as root with no default database (qualify table
// names, e.g. "CREATE TABLE test.t (...)") and fails the test on error.
func (m *MariaDB) Exec(query string, args ...any) {
	m.t.Helper()
	m.check(func(ctx context.Context) error { return m.s.Exec(ctx, query, args...) })
}

// GlobalStatus returns the integer value of a global status variable, e.g.
// "Connections" or "Threads_connected". It fails the test when the
// variable is missing.
func (m *MariaDB) GlobalStatus(name string) int64 {
	m.t.Helper()
	var v int64
	m.check(func(ctx context.Context) (err error) { v, err = m.s.GlobalStatus(ctx, name); return err })
	return v
}

// Stop shuts the server down gracefully (MariaDBServer.Stop).
func (m *MariaDB) Stop() { m.t.Helper(); m.check(func(context.Context) error { return m.s.Stop() }) }

// Kill stops the server with SIGKILL, as a crash would (MariaDBServer.Kill).
func (m *MariaDB) Kill() { m.t.Helper(); m.check(func(context.Context) error { return m.s.Kill() }) }

// Pause freezes the server with SIGSTOP (MariaDBServer.Pause); cleanup
// resumes a paused server before stopping it.
func (m *MariaDB) Pause() { m.t.Helper(); m.check(func(context.Context) error { return m.s.Pause() }) }

// Resume continues a paused server (SIGCONT).
func (m *MariaDB) Resume() {
	m.t.Helper()
	m.check(func(context.Context) error { return m.s.Resume() })
}

// Start starts a stopped or killed server again on the same port with the
// same data (MariaDBServer.Start).
func (m *MariaDB) Start() { m.t.Helper(); m.check(m.s.Start) }

func (m *MariaDB) check(op func(context.Context) error) {
	m.t.Helper()
	check(m.t, opTimeout+mariadbStartTimeout, op)
}

// check runs op with a timeout and fails the test on its error.
func check(t TB, timeout time.Duration, op func(context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := op(ctx); err != nil {
		t.Fatalf("testsvc: %v", err)
	}
}

// Redis is a throwaway RedisServer owned by one test: its methods fail the
// test on an error; the test's cleanup stops it.
type Redis struct {
	t TB
	s *RedisServer
}

// StartRedis starts a redis-server for t (StartRedisServer) and registers
// its shutdown with t.Cleanup. It skips the test when redis-server is not
// installed and fails it when the server does not answer PING in time.
func StartRedis(t TB) *Redis {
	t.Helper()
	s := start(t, "redis-server", func(ctx context.Context) (*RedisServer, error) {
		return StartRedisServer(ctx, RedisOptions{})
	})
	return &Redis{t: t, s: s}
}

// Addr is "127.0.0.1:port", the same across restarts.
func (r *Redis) Addr() string { return r.s.Addr() }

// Stop shuts the server down gracefully; stopping a stopped server does
// nothing.
func (r *Redis) Stop() { r.t.Helper(); r.check(func(context.Context) error { return r.s.Stop() }) }

// Kill stops the server abruptly, as a crash would; killing a stopped
// server does nothing.
func (r *Redis) Kill() { r.t.Helper(); r.check(func(context.Context) error { return r.s.Kill() }) }

// Start starts the server again on the same port after Stop or Kill (no
// data is kept); starting a running server does nothing.
func (r *Redis) Start() { r.t.Helper(); r.check(r.s.Start) }

func (r *Redis) check(op func(context.Context) error) {
	r.t.Helper()
	check(r.t, opTimeout, op)
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
// Another process may still take it before the caller binds it, so callers
// retry their start when the bind fails.
func freePort() (int, error) {
	handedOut.Lock()
	defer handedOut.Unlock()
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, fmt.Errorf("find a free port: %w", err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if !handedOut.ports[port] {
			handedOut.ports[port] = true
			return port, nil
		}
	}
	return 0, errors.New("find a free port: the kernel keeps offering ports already handed out")
}

// handedOut holds the ports freePort returned in this process: a closed
// probe listener's port is free again, and two servers starting in
// parallel could otherwise be given the same one before either binds it.
// Servers keep their port across restarts, so ports are never returned.
var handedOut = struct {
	sync.Mutex
	ports map[int]bool
}{ports: map[int]bool{}}

// errPortTaken reports that another server answered on a port a server
// was started on (another process bound it between probe and start).
var errPortTaken = errors.New("port taken by another server")

// tail returns the last n lines of the file at path, for error messages
// about a server that failed to start.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", path, err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
