package testsvc

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
)

// MariaDB is a throwaway mariadbd owned by one test: its own data directory,
// socket and pid file in a temporary directory, listening on a free
// 127.0.0.1 port. The root user has an empty password over TCP. Database
// `test` exists. Methods that change the server's state (Stop, Kill, Start)
// must be called from the test's goroutine, like t.Fatal; DSN, Addr, DB and
// Exec are safe from any goroutine.
type MariaDB struct {
	t    testing.TB
	dir  string // instance root: data/, mysqld.sock, mysqld.pid, error.log
	port int

	mu    sync.Mutex
	cmd   *exec.Cmd
	done  chan struct{} // closed when cmd has exited
	pools map[string]*sql.DB
}

// mariadbStartTimeout bounds how long a start may take before the test fails;
// generous because a loaded CI machine can be slow. A normal start takes well
// under a second.
const mariadbStartTimeout = 60 * time.Second

// StartMariaDB starts a throwaway MariaDB server for t and registers its
// shutdown (and the removal of its files) with t.Cleanup. It calls t.Skip
// when the MariaDB server binaries are not installed.
//
// The data directory is a copy of a template made once by
// mariadb-install-db and cached under the user cache directory
// (wasmcorn/testsvc/mariadb-<hash of version and options>), so a start costs
// a 20 MB copy and the server's own boot instead of a bootstrap run.
// Servers are independent: tests may start several in parallel.
func StartMariaDB(t testing.TB) *MariaDB {
	t.Helper()
	bins, err := findMariaDB()
	if err != nil {
		t.Skipf("testsvc: %v; run `scripts/deps.sh test` to install mariadb-server", err)
	}
	tmpl, err := mariadbTemplate(bins)
	if err != nil {
		t.Fatalf("testsvc: %v", err)
	}
	dir, err := os.MkdirTemp("", "wcmariadb-") // short: the socket path must stay under 108 bytes
	if err != nil {
		t.Fatalf("testsvc: %v", err)
	}
	m := &MariaDB{t: t, dir: dir, pools: map[string]*sql.DB{}}
	t.Cleanup(m.cleanup)
	if err := copyDir(tmpl, filepath.Join(dir, "data")); err != nil {
		t.Fatalf("testsvc: copy mariadb template: %v", err)
	}
	// A free port may be taken between probing and binding: retry on a
	// bind failure with a fresh port.
	for attempt := 1; ; attempt++ {
		if m.port, err = freePort(); err != nil {
			t.Fatalf("testsvc: %v", err)
		}
		err = m.start(bins.server)
		if err == nil {
			break
		}
		if attempt < 5 && strings.Contains(tail(m.logPath(), 20), "Address already in use") {
			continue
		}
		t.Fatalf("testsvc: %v", err)
	}
	m.Exec("CREATE DATABASE IF NOT EXISTS test")
	return m
}

// Port is the server's TCP port on 127.0.0.1.
func (m *MariaDB) Port() int { return m.port }

// Addr is "127.0.0.1:port".
func (m *MariaDB) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(m.port)) }

// DSN returns a go-sql-driver/mysql DSN for database db as root over TCP,
// without parameters: "root@tcp(127.0.0.1:PORT)/db".
func (m *MariaDB) DSN(db string) string {
	return fmt.Sprintf("root@tcp(%s)/%s", m.Addr(), db)
}

// DB returns a pool on database db (root, parseTime on), opened on first
// use, shared by callers and closed at cleanup. The pool outlives Kill and
// Start: database/sql reconnects when the server is back.
func (m *MariaDB) DB(db string) *sql.DB {
	m.mu.Lock()
	defer m.mu.Unlock()
	if p, ok := m.pools[db]; ok {
		return p
	}
	cfg := mysql.NewConfig()
	cfg.User, cfg.Net, cfg.Addr, cfg.DBName = "root", "tcp", m.Addr(), db
	cfg.ParseTime = true
	cfg.Timeout = 5 * time.Second
	conn, err := mysql.NewConnector(cfg)
	if err != nil { // only a malformed config fails here
		m.t.Fatalf("testsvc: mariadb connector: %v", err)
	}
	p := sql.OpenDB(conn)
	p.SetMaxIdleConns(4)
	m.pools[db] = p
	return p
}

// Exec runs one statement as root with no default database (qualify table
// names, e.g. "CREATE TABLE test.t (...)") and fails the test on error.
func (m *MariaDB) Exec(query string, args ...any) {
	m.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := m.DB("").ExecContext(ctx, query, args...); err != nil {
		m.t.Fatalf("testsvc: mariadb exec %q: %v", query, err)
	}
}

// GlobalStatus returns the integer value of a global status variable, e.g.
// "Connections" (connection attempts since the server started) or
// "Threads_connected". It fails the test when the variable is missing.
func (m *MariaDB) GlobalStatus(name string) int64 {
	m.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var v int64
	err := m.DB("").QueryRowContext(ctx,
		"SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = ?", name).Scan(&v)
	if err != nil {
		m.t.Fatalf("testsvc: mariadb global status %q: %v", name, err)
	}
	return v
}

// Stop shuts the server down gracefully (SIGTERM) and waits for it to exit;
// SIGKILL follows if it has not exited within a minute.
func (m *MariaDB) Stop() {
	m.t.Helper()
	if err := m.signal(syscall.SIGTERM, time.Minute); err != nil {
		m.t.Fatalf("testsvc: stop mariadb: %v", err)
	}
}

// Kill stops the server with SIGKILL, as a crash would, and waits for it to
// exit. Established client connections see a reset.
func (m *MariaDB) Kill() {
	m.t.Helper()
	if err := m.signal(syscall.SIGKILL, time.Minute); err != nil {
		m.t.Fatalf("testsvc: kill mariadb: %v", err)
	}
}

// Pause freezes the server with SIGSTOP: connections stay open but nothing
// answers, as with a network partition or a hung server. Resume undoes it;
// cleanup resumes a paused server before stopping it.
func (m *MariaDB) Pause() {
	m.t.Helper()
	if err := m.signalRunning(syscall.SIGSTOP); err != nil {
		m.t.Fatalf("testsvc: pause mariadb: %v", err)
	}
}

// Resume continues a paused server (SIGCONT).
func (m *MariaDB) Resume() {
	m.t.Helper()
	if err := m.signalRunning(syscall.SIGCONT); err != nil {
		m.t.Fatalf("testsvc: resume mariadb: %v", err)
	}
}

func (m *MariaDB) signalRunning(sig syscall.Signal) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd == nil {
		return errors.New("mariadb was never started")
	}
	select {
	case <-m.done:
		return errors.New("mariadb is not running")
	default:
	}
	if err := m.cmd.Process.Signal(sig); err != nil {
		return err
	}
	return waitStopped(m.cmd.Process.Pid, sig == syscall.SIGSTOP)
}

// Start starts a stopped or killed server again on the same port with the
// same data directory (InnoDB recovers after a Kill) and waits until it
// accepts connections.
func (m *MariaDB) Start() {
	m.t.Helper()
	bins, err := findMariaDB()
	if err != nil {
		m.t.Fatalf("testsvc: %v", err)
	}
	if err := m.start(bins.server); err != nil {
		m.t.Fatalf("testsvc: restart mariadb: %v", err)
	}
}

func (m *MariaDB) logPath() string { return filepath.Join(m.dir, "error.log") }

// serverArgs are the options of every mariadbd this package runs, the
// template's bootstrap included. They favour start-up speed and a small
// footprint over durability: this is test data.
func serverArgs() []string {
	args := []string{
		"--no-defaults", // must come first: ignore /etc/mysql
		"--skip-name-resolve",
		"--character-set-server=utf8mb4",
		"--innodb-buffer-pool-size=32M",
		"--innodb-log-file-size=8M",
		"--innodb-data-file-path=ibdata1:4M:autoextend",
		"--innodb-autoextend-increment=1",
		"--innodb-temp-data-file-path=ibtmp1:1M:autoextend",
		"--innodb-buffer-pool-load-at-startup=0",
		"--innodb-buffer-pool-dump-at-shutdown=0",
		"--innodb-doublewrite=0",
		"--innodb-flush-log-at-trx-commit=2",
		"--performance-schema=OFF",
		"--max-connections=500",
	}
	if os.Geteuid() == 0 {
		args = append(args, "--user=root") // mariadbd refuses to run as root otherwise
	}
	return args
}

func (m *MariaDB) start(server string) error {
	m.mu.Lock()
	if m.done != nil {
		select {
		case <-m.done:
		default:
			m.mu.Unlock()
			return errors.New("mariadb is already running")
		}
	}
	args := append(serverArgs(),
		"--datadir="+filepath.Join(m.dir, "data"),
		"--socket="+filepath.Join(m.dir, "mysqld.sock"),
		"--pid-file="+filepath.Join(m.dir, "mysqld.pid"),
		"--log-error="+m.logPath(),
		"--bind-address=127.0.0.1",
		"--port="+strconv.Itoa(m.port),
	)
	cmd := exec.Command(server, args...)
	cmd.SysProcAttr = childAttr()
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard // everything goes to error.log
	if err := cmd.Start(); err != nil {
		m.mu.Unlock()
		return fmt.Errorf("start %s: %w", server, err)
	}
	done := make(chan struct{})
	m.cmd, m.done = cmd, done
	m.mu.Unlock()
	go func() {
		cmd.Wait()
		close(done)
	}()

	deadline := time.Now().Add(mariadbStartTimeout)
	for {
		select {
		case <-done:
			return fmt.Errorf("mariadbd on port %d exited during start-up (%s); log tail:\n%s",
				m.port, cmd.ProcessState, tail(m.logPath(), 20))
		default:
		}
		if err := m.ping(); err == nil {
			return nil
		} else if time.Now().After(deadline) {
			cmd.Process.Kill()
			<-done
			return fmt.Errorf("mariadbd on port %d not ready after %s: %v; log tail:\n%s",
				m.port, mariadbStartTimeout, err, tail(m.logPath(), 20))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// ping reports whether the server accepts a TCP connection and answers a
// query. The plain dial first keeps the driver from logging while the port
// is still closed.
func (m *MariaDB) ping() error {
	c, err := net.DialTimeout("tcp", m.Addr(), time.Second)
	if err != nil {
		return err
	}
	c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return m.DB("").PingContext(ctx)
}

// signal sends sig to a running server and waits up to wait for it to exit,
// escalating to SIGKILL after that.
func (m *MariaDB) signal(sig syscall.Signal, wait time.Duration) error {
	m.mu.Lock()
	cmd, done := m.cmd, m.done
	m.mu.Unlock()
	if cmd == nil {
		return errors.New("mariadb was never started")
	}
	select {
	case <-done:
		return errors.New("mariadb is not running")
	default:
	}
	if err := cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("signal %v to mariadbd (pid %d): %w", sig, cmd.Process.Pid, err)
	}
	select {
	case <-done:
		return nil
	case <-time.After(wait):
		cmd.Process.Kill()
		<-done
		return fmt.Errorf("mariadbd (pid %d) did not exit within %s of %v; killed", cmd.Process.Pid, wait, sig)
	}
}

func (m *MariaDB) cleanup() {
	m.mu.Lock()
	for _, p := range m.pools {
		p.Close()
	}
	m.pools = map[string]*sql.DB{}
	cmd, done := m.cmd, m.done
	m.mu.Unlock()
	if cmd != nil {
		select {
		case <-done:
		default:
			// Test data is disposable: no need for a graceful shutdown.
			cmd.Process.Signal(syscall.SIGCONT) // in case it is paused
			cmd.Process.Kill()
			<-done
		}
	}
	os.RemoveAll(m.dir)
}

type mariadbBins struct {
	server, install string
}

// findMariaDB locates mariadbd (usually /usr/sbin, often not on a user's
// PATH) and mariadb-install-db.
func findMariaDB() (mariadbBins, error) {
	find := func(name string) (string, error) {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
		for _, d := range []string{"/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"} {
			p := filepath.Join(d, name)
			if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
				return p, nil
			}
		}
		return "", fmt.Errorf("%s not found", name)
	}
	var b mariadbBins
	var err error
	if b.server, err = find("mariadbd"); err != nil {
		return b, err
	}
	if b.install, err = find("mariadb-install-db"); err != nil {
		return b, err
	}
	return b, nil
}

var templateOnce struct {
	sync.Mutex
	dir string
}

// mariadbTemplate returns a data directory freshly made by
// mariadb-install-db, built once and cached across test processes under the
// user cache directory, keyed by the server version and options. Building
// happens in a scratch directory renamed into place, so concurrent test
// processes never see a half-built template.
func mariadbTemplate(b mariadbBins) (string, error) {
	templateOnce.Lock()
	defer templateOnce.Unlock()
	if templateOnce.dir != "" {
		return templateOnce.dir, nil
	}
	ver, err := exec.Command(b.server, "--version").Output()
	if err != nil {
		return "", fmt.Errorf("%s --version: %w", b.server, err)
	}
	h := sha256.New()
	fmt.Fprintf(h, "%s\n%s\n", ver, strings.Join(serverArgs(), " "))
	root, err := os.UserCacheDir()
	if err != nil {
		root = os.TempDir()
	}
	parent := filepath.Join(root, "wasmcorn", "testsvc")
	final := filepath.Join(parent, "mariadb-"+hex.EncodeToString(h.Sum(nil))[:16])
	data := filepath.Join(final, "data")
	if _, err := os.Stat(filepath.Join(final, "READY")); err == nil {
		templateOnce.dir = data
		return data, nil
	}
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return "", fmt.Errorf("mariadb template: %w", err)
	}
	scratch, err := os.MkdirTemp(parent, "building-")
	if err != nil {
		return "", fmt.Errorf("mariadb template: %w", err)
	}
	defer os.RemoveAll(scratch) // a no-op after a successful rename
	args := append(serverArgs(),
		"--datadir="+filepath.Join(scratch, "data"),
		"--auth-root-authentication-method=normal",
		"--skip-test-db",
	)
	out, err := exec.Command(b.install, args...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("mariadb-install-db: %w\n%s", err, out)
	}
	if err := os.WriteFile(filepath.Join(scratch, "READY"), ver, 0o644); err != nil {
		return "", fmt.Errorf("mariadb template: %w", err)
	}
	if err := os.Rename(scratch, final); err != nil {
		// Another process finished first; use its template.
		if _, statErr := os.Stat(filepath.Join(final, "READY")); statErr != nil {
			return "", fmt.Errorf("mariadb template: install %s: %w", final, err)
		}
	}
	templateOnce.dir = data
	return data, nil
}

// copyDir copies the regular files and directories of src into a new dst.
func copyDir(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o700)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		return copyFile(p, target)
	})
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o660)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
