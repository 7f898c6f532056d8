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
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/go-sql-driver/mysql"
)

// MariaDBServer is a throwaway mariadbd: its own data directory, socket and
// pid file in a directory it removes at Close, listening on a free
// 127.0.0.1 port. The root user has an empty password over TCP. Database
// `test` exists. Its methods are safe for concurrent use, but Stop, Kill,
// Pause, Resume and Start are meant to be called by one controlling
// goroutine (a test's, or a benchmark's).
type MariaDBServer struct {
	dir  string // instance root: data/, mysqld.sock, mysqld.pid, error.log
	port int
	args []string // MariaDBOptions.Args

	mu    sync.Mutex
	cmd   *exec.Cmd
	done  chan struct{} // closed when cmd has exited
	pools map[string]*sql.DB
}

// MariaDBOptions configures StartMariaDBServer.
type MariaDBOptions struct {
	// Dir is where the server's directory is made; empty means the system
	// temporary directory. Keep it short: the socket path must stay under
	// 108 bytes.
	Dir string
	// Args are mariadbd options appended to this package's own at every
	// start (a later option wins), e.g. a larger buffer pool and more
	// connections for a benchmark. The data directory template is made
	// without them.
	Args []string
}

// ErrNotInstalled is wrapped by the start functions' error when a server
// binary is missing (`scripts/deps.sh test` installs them).
var ErrNotInstalled = errors.New("not installed (run `scripts/deps.sh test`)")

// mariadbStartTimeout bounds how long a start may take; generous because a
// loaded CI machine can be slow. A normal start takes well under a second.
const mariadbStartTimeout = 60 * time.Second

// StartMariaDBServer starts a throwaway MariaDB server; the caller must
// Close it. The error wraps ErrNotInstalled when the MariaDB server
// binaries are not installed.
//
// The data directory is a copy of a template made once by
// mariadb-install-db and cached under the user cache directory
// (wasmcorn/testsvc/mariadb-<hash of version and options>), so a start costs
// a 20 MB copy and the server's own boot instead of a bootstrap run.
// Servers are independent: several may run in parallel.
func StartMariaDBServer(ctx context.Context, opts MariaDBOptions) (_ *MariaDBServer, err error) {
	bins, err := findMariaDB()
	if err != nil {
		return nil, err
	}
	tmpl, err := mariadbTemplate(bins)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp(opts.Dir, "wcmariadb-") // short: see MariaDBOptions.Dir
	if err != nil {
		return nil, err
	}
	m := &MariaDBServer{dir: dir, args: slices.Clone(opts.Args), pools: map[string]*sql.DB{}}
	defer func() {
		if err != nil {
			m.Close()
		}
	}()
	if err := copyDir(tmpl, filepath.Join(dir, "data")); err != nil {
		return nil, fmt.Errorf("copy mariadb template: %w", err)
	}
	// A free port may be taken between probing and binding (by another
	// test process): retry with a fresh port.
	for attempt := 1; ; attempt++ {
		if m.port, err = freePort(); err != nil {
			return nil, err
		}
		err = m.start(ctx, bins.server)
		if err == nil {
			break
		}
		m.closePools() // they point at the old port
		if attempt < 5 && (errors.Is(err, errPortTaken) || strings.Contains(tail(m.logPath(), 20), "Address already in use")) {
			continue
		}
		return nil, err
	}
	if err := m.Exec(ctx, "CREATE DATABASE IF NOT EXISTS test"); err != nil {
		return nil, err
	}
	return m, nil
}

// Port is the server's TCP port on 127.0.0.1.
func (m *MariaDBServer) Port() int { return m.port }

// Addr is "127.0.0.1:port".
func (m *MariaDBServer) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(m.port)) }

// DSN returns a go-sql-driver/mysql DSN for database db as root over TCP,
// without parameters: "root@tcp(127.0.0.1:PORT)/db".
func (m *MariaDBServer) DSN(db string) string {
	return fmt.Sprintf("root@tcp(%s)/%s", m.Addr(), db)
}

// DB returns a pool on database db (root, parseTime on), opened on first
// use, shared by callers and closed by Close. The pool outlives Kill and
// Start: database/sql reconnects when the server is back.
func (m *MariaDBServer) DB(db string) (*sql.DB, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if p, ok := m.pools[db]; ok {
		return p, nil
	}
	cfg := mysql.NewConfig()
	cfg.User, cfg.Net, cfg.Addr, cfg.DBName = "root", "tcp", m.Addr(), db
	cfg.ParseTime = true
	cfg.Timeout = 5 * time.Second
	conn, err := mysql.NewConnector(cfg)
	if err != nil { // only a malformed config fails here
		return nil, fmt.Errorf("mariadb connector: %w", err)
	}
	p := sql.OpenDB(conn)
	p.SetMaxIdleConns(4)
	m.pools[db] = p
	return p, nil
}

// Exec runs one statement as root with no default database (qualify table
// names, e.g. "CREATE TABLE test.t (...)").
func (m *MariaDBServer) Exec(ctx context.Context, query string, args ...any) error {
	db, err := m.DB("")
	if err != nil {
		return err
	}
	if _, err := db.ExecContext(ctx, query, args...); err != nil {
		return fmt.Errorf("mariadb exec %q: %w", query, err)
	}
	return nil
}

// GlobalStatus returns the integer value of a global status variable, e.g.
// "Connections" (connection attempts since the server started) or
// "Threads_connected". Reading it reuses an idle connection of the root
// pool, so it does not itself count as a new connection.
func (m *MariaDBServer) GlobalStatus(ctx context.Context, name string) (int64, error) {
	db, err := m.DB("")
	if err != nil {
		return 0, err
	}
	var v int64
	err = db.QueryRowContext(ctx,
		"SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = ?", name).Scan(&v)
	if err != nil {
		return 0, fmt.Errorf("mariadb global status %q: %w", name, err)
	}
	return v, nil
}

// Version is the server's version string, e.g. "10.11.6-MariaDB-0+deb12u1".
func (m *MariaDBServer) Version(ctx context.Context) (string, error) {
	db, err := m.DB("")
	if err != nil {
		return "", err
	}
	var v string
	if err := db.QueryRowContext(ctx, "SELECT VERSION()").Scan(&v); err != nil {
		return "", fmt.Errorf("mariadb version: %w", err)
	}
	return v, nil
}

// Stop shuts the server down gracefully (SIGTERM) and waits for it to exit;
// SIGKILL follows if it has not exited within a minute.
func (m *MariaDBServer) Stop() error {
	if err := m.signal(syscall.SIGTERM, time.Minute); err != nil {
		return fmt.Errorf("stop mariadb: %w", err)
	}
	return nil
}

// Kill stops the server with SIGKILL, as a crash would, and waits for it to
// exit. Established client connections see a reset.
func (m *MariaDBServer) Kill() error {
	if err := m.signal(syscall.SIGKILL, time.Minute); err != nil {
		return fmt.Errorf("kill mariadb: %w", err)
	}
	return nil
}

// Pause freezes the server with SIGSTOP: connections stay open but nothing
// answers, as with a network partition or a hung server. Resume undoes it;
// Close resumes a paused server before stopping it.
func (m *MariaDBServer) Pause() error {
	if err := m.signalRunning(syscall.SIGSTOP); err != nil {
		return fmt.Errorf("pause mariadb: %w", err)
	}
	return nil
}

// Resume continues a paused server (SIGCONT).
func (m *MariaDBServer) Resume() error {
	if err := m.signalRunning(syscall.SIGCONT); err != nil {
		return fmt.Errorf("resume mariadb: %w", err)
	}
	return nil
}

func (m *MariaDBServer) signalRunning(sig syscall.Signal) error {
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
func (m *MariaDBServer) Start(ctx context.Context) error {
	bins, err := findMariaDB()
	if err != nil {
		return err
	}
	if err := m.start(ctx, bins.server); err != nil {
		return fmt.Errorf("restart mariadb: %w", err)
	}
	return nil
}

func (m *MariaDBServer) logPath() string { return filepath.Join(m.dir, "error.log") }

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

func (m *MariaDBServer) start(ctx context.Context, server string) error {
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
	args = append(args, m.args...)
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
		err := m.ping(ctx)
		if err == nil {
			err = m.checkOwn(ctx)
		}
		if errors.Is(err, errPortTaken) {
			cmd.Process.Kill()
			<-done
			return err
		}
		if err == nil {
			return nil
		} else if time.Now().After(deadline) || ctx.Err() != nil {
			cmd.Process.Kill()
			<-done
			if ctx.Err() != nil {
				return fmt.Errorf("mariadbd on port %d not ready: %w", m.port, ctx.Err())
			}
			return fmt.Errorf("mariadbd on port %d not ready after %s: %v; log tail:\n%s",
				m.port, mariadbStartTimeout, err, tail(m.logPath(), 20))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// ping reports whether the server accepts a TCP connection and answers a
// query. The plain dial first keeps the driver from logging while the port
// is still closed.
func (m *MariaDBServer) ping(ctx context.Context) error {
	c, err := net.DialTimeout("tcp", m.Addr(), time.Second)
	if err != nil {
		return err
	}
	c.Close()
	db, err := m.DB("")
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	return db.PingContext(ctx)
}

// checkOwn makes sure the server answering on m's port is m's own: when
// another server took the port first, m's mariadbd fails to bind and exits,
// but until it does a ping reaches the other one.
func (m *MariaDBServer) checkOwn(ctx context.Context) error {
	db, err := m.DB("")
	if err != nil {
		return err
	}
	var dataDir string
	if err := db.QueryRowContext(ctx, "SELECT @@datadir").Scan(&dataDir); err != nil {
		return fmt.Errorf("mariadb on port %d: read datadir: %w", m.port, err)
	}
	want := filepath.Join(m.dir, "data")
	got := filepath.Clean(dataDir)
	if got == want {
		return nil
	}
	if real, err := filepath.EvalSymlinks(want); err == nil && got == real {
		return nil // the server reports the resolved path
	}
	return fmt.Errorf("mariadb on port %d serves %s, not %s: %w", m.port, dataDir, want, errPortTaken)
}

// closePools closes the connection pools DB handed out.
func (m *MariaDBServer) closePools() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, p := range m.pools {
		p.Close()
	}
	m.pools = map[string]*sql.DB{}
}

// signal sends sig to a running server and waits up to wait for it to exit,
// escalating to SIGKILL after that.
func (m *MariaDBServer) signal(sig syscall.Signal, wait time.Duration) error {
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

// Close kills the server if it runs (test data is disposable: no graceful
// shutdown), closes the pools and removes the server's files. It returns
// the error of the removal.
func (m *MariaDBServer) Close() error {
	m.closePools()
	m.mu.Lock()
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
	return os.RemoveAll(m.dir)
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
		return "", fmt.Errorf("%s: %w", name, ErrNotInstalled)
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
