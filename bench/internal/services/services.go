// Package services starts the throwaway MariaDB and Redis the benchmark's
// db, cached and queue scenarios need: real servers from the Debian
// packages, on free 127.0.0.1 ports, with all files in a directory the
// caller owns. It is the non-test counterpart of internal/testsvc (which
// reports through testing.TB); the server options are chosen for a
// benchmark (a buffer pool that holds the data, enough connections for the
// classic stacks) rather than for fast test start-up.
package services

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/redis/go-redis/v9"

	"github.com/wasmcorn/wasmcorn/bench/internal/proc"
)

// ErrNotInstalled is wrapped when a server binary is missing.
var ErrNotInstalled = errors.New("not installed (run scripts/deps.sh test)")

// startTimeout bounds a server's start-up.
const startTimeout = 60 * time.Second

// MariaDB is a running throwaway mariadbd. Root has an empty password over
// TCP. Its methods are safe for concurrent use.
type MariaDB struct {
	Port  int
	dir   string
	p     *proc.Process
	admin *sql.DB // one long-lived connection for status queries
}

// Version is the server's version string, e.g. "10.11.6-MariaDB-0+deb12u1".
func (m *MariaDB) Version(ctx context.Context) (string, error) {
	var v string
	err := m.admin.QueryRowContext(ctx, "SELECT VERSION()").Scan(&v)
	return v, err
}

// DSN is a go-sql-driver DSN for database db as root over TCP.
func (m *MariaDB) DSN(db string) string {
	return fmt.Sprintf("root@tcp(127.0.0.1:%d)/%s", m.Port, db)
}

// Connections is the server's Connections status counter: connection
// attempts since start. A delta over a run counts the new connections.
// The admin pool keeps its one connection, so reading does not add one.
func (m *MariaDB) Connections(ctx context.Context) (int64, error) {
	var name string
	var v int64
	if err := m.admin.QueryRowContext(ctx, "SHOW GLOBAL STATUS LIKE 'Connections'").Scan(&name, &v); err != nil {
		return 0, fmt.Errorf("mariadb connections counter: %w", err)
	}
	return v, nil
}

// Exec runs a statement as root.
func (m *MariaDB) Exec(ctx context.Context, query string, args ...any) error {
	_, err := m.admin.ExecContext(ctx, query, args...)
	return err
}

// Pid is the server's process id.
func (m *MariaDB) Pid() int { return m.p.Pid() }

// Stop shuts the server down.
func (m *MariaDB) Stop() error {
	m.admin.Close()
	return m.p.Stop(30 * time.Second)
}

func findBin(name string) (string, error) {
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

func mariadbArgs(dir string) []string {
	args := []string{
		"--no-defaults",
		"--datadir=" + filepath.Join(dir, "data"),
		"--skip-name-resolve",
		"--character-set-server=utf8mb4",
		"--innodb-buffer-pool-size=128M",
		"--innodb-log-file-size=48M",
		"--innodb-flush-log-at-trx-commit=2",
		"--innodb-doublewrite=0",
		"--performance-schema=OFF",
		"--max-connections=4000",
		"--skip-log-bin",
	}
	if os.Geteuid() == 0 {
		args = append(args, "--user=root")
	}
	return args
}

// StartMariaDB initializes a data directory under dir (mariadb-install-db,
// a few seconds) and starts mariadbd on a free port. Database "bench" exists.
func StartMariaDB(ctx context.Context, dir string) (*MariaDB, error) {
	server, err := findBin("mariadbd")
	if err != nil {
		return nil, err
	}
	install, err := findBin("mariadb-install-db")
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	initArgs := append(mariadbArgs(dir), "--auth-root-authentication-method=normal", "--skip-test-db")
	if out, err := exec.CommandContext(ctx, install, initArgs...).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("mariadb-install-db in %s: %w\n%s", dir, err, out)
	}
	var lastErr error
	for range 3 { // a free port can be taken before mariadbd binds it
		port, err := proc.FreePort()
		if err != nil {
			return nil, err
		}
		args := append(mariadbArgs(dir),
			"--socket="+filepath.Join(dir, "mysqld.sock"),
			"--pid-file="+filepath.Join(dir, "mysqld.pid"),
			"--log-error="+filepath.Join(dir, "error.log"),
			"--bind-address=127.0.0.1",
			"--port="+strconv.Itoa(port),
		)
		p, err := proc.Start("mariadbd", exec.Command(server, args...), filepath.Join(dir, "stdout.log"))
		if err != nil {
			return nil, err
		}
		m := &MariaDB{Port: port, dir: dir, p: p}
		if lastErr = m.waitReady(ctx); lastErr == nil {
			return m, nil
		}
		_ = p.Stop(5 * time.Second)
		lastErr = fmt.Errorf("%w; error log:\n%s", lastErr, proc.Tail(filepath.Join(dir, "error.log"), 15))
	}
	return nil, fmt.Errorf("start mariadbd: %w", lastErr)
}

func (m *MariaDB) waitReady(ctx context.Context) error {
	if err := proc.WaitTCP(ctx, fmt.Sprintf("127.0.0.1:%d", m.Port), m.p, startTimeout); err != nil {
		return err
	}
	cfg := mysql.NewConfig()
	cfg.User, cfg.Net, cfg.Addr = "root", "tcp", fmt.Sprintf("127.0.0.1:%d", m.Port)
	cfg.Timeout = 5 * time.Second
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		return err
	}
	m.admin = sql.OpenDB(conn)
	m.admin.SetMaxOpenConns(1)
	m.admin.SetMaxIdleConns(1)
	deadline := time.Now().Add(startTimeout)
	for {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err = m.admin.PingContext(pctx)
		cancel()
		if err == nil {
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			m.admin.Close()
			return fmt.Errorf("mariadbd on port %d does not answer: %w", m.Port, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := m.admin.ExecContext(ctx, "CREATE DATABASE IF NOT EXISTS bench"); err != nil {
		m.admin.Close()
		return fmt.Errorf("create database bench: %w", err)
	}
	return nil
}

// Redis is a running throwaway redis-server without persistence.
type Redis struct {
	Port int
	p    *proc.Process
}

// Addr is "127.0.0.1:port".
func (r *Redis) Addr() string { return fmt.Sprintf("127.0.0.1:%d", r.Port) }

// Pid is the server's process id.
func (r *Redis) Pid() int { return r.p.Pid() }

// Client returns a new client of the server; the caller closes it.
func (r *Redis) Client() *redis.Client { return redis.NewClient(&redis.Options{Addr: r.Addr()}) }

// Stop shuts the server down.
func (r *Redis) Stop() error { return r.p.Stop(10 * time.Second) }

// StartRedis starts redis-server on a free port with its files in dir.
func StartRedis(ctx context.Context, dir string) (*Redis, error) {
	bin, err := findBin("redis-server")
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var lastErr error
	for range 3 {
		port, err := proc.FreePort()
		if err != nil {
			return nil, err
		}
		cmd := exec.Command(bin,
			"--port", strconv.Itoa(port),
			"--bind", "127.0.0.1",
			"--dir", dir,
			"--save", "",
			"--appendonly", "no",
			"--daemonize", "no",
			"--maxclients", "10000",
		)
		p, err := proc.Start("redis-server", cmd, filepath.Join(dir, "redis.log"))
		if err != nil {
			return nil, err
		}
		r := &Redis{Port: port, p: p}
		if lastErr = proc.WaitTCP(ctx, r.Addr(), p, startTimeout); lastErr == nil {
			c := r.Client()
			lastErr = c.Ping(ctx).Err()
			c.Close()
			if lastErr == nil {
				return r, nil
			}
		}
		_ = p.Stop(5 * time.Second)
	}
	return nil, fmt.Errorf("start redis-server: %w", lastErr)
}
