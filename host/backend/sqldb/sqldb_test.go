package sqldb_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/go-sql-driver/mysql"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"
	sqlite "modernc.org/sqlite"

	"github.com/wasmcorn/wasmcorn/host/backend/sqldb"
	"github.com/wasmcorn/wasmcorn/internal/metrics"
)

func open(t *testing.T, dir string, cfgs map[string]sqldb.Config) *sqldb.Set {
	t.Helper()
	s, err := sqldb.Open(dir, cfgs)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func pragma(t *testing.T, db *sql.DB, name string) string {
	t.Helper()
	var v string
	if err := db.QueryRow("PRAGMA " + name).Scan(&v); err != nil {
		t.Fatalf("PRAGMA %s: %v", name, err)
	}
	return v
}

func TestSQLiteDefaults(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, map[string]sqldb.Config{"default": {}})
	if _, err := os.Stat(filepath.Join(dir, sqldb.DefaultSQLiteFile)); err != nil {
		t.Fatalf("default file not created in the data dir: %v", err)
	}
	primary, read, ok := s.Pools("default")
	if !ok || primary == read {
		t.Fatalf("Pools: ok=%v, separate reader pool=%v", ok, primary != read)
	}
	if got := s.Dialect("default"); got != sqldb.DriverSQLite {
		t.Fatalf("Dialect = %q", got)
	}
	if n := primary.Stats().MaxOpenConnections; n != 1 {
		t.Fatalf("writer pool max %d connections, want 1", n)
	}
	if n := read.Stats().MaxOpenConnections; n != sqldb.DefaultSQLiteReaders() {
		t.Fatalf("reader pool max %d, want %d", n, sqldb.DefaultSQLiteReaders())
	}
	for _, db := range []*sql.DB{primary, read} {
		for name, want := range map[string]string{"journal_mode": "wal", "foreign_keys": "1", "busy_timeout": "5000", "synchronous": "1"} {
			if got := pragma(t, db, name); got != want {
				t.Errorf("PRAGMA %s = %q, want %q", name, got, want)
			}
		}
	}
	if _, _, ok := s.Pools("nope"); ok {
		t.Fatal("Pools of an unknown database: ok")
	}
	if s.Dialect("nope") != "" || s.QueryTimeout("nope") != 0 {
		t.Fatal("unknown database has a dialect or timeout")
	}
	if err := s.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestSQLiteDSNOverridesAndPaths(t *testing.T) {
	dir := t.TempDir()
	abs := filepath.Join(t.TempDir(), "abs.db")
	s := open(t, dir, map[string]sqldb.Config{
		"rel":  {DSN: "sub.db?_pragma=busy_timeout(250)&_pragma=synchronous(FULL)", MaxOpenConns: 3},
		"abs":  {DSN: abs},
		"mem":  {DSN: ":memory:"},
		"mem2": {DSN: ":memory:"},
	})
	if _, err := os.Stat(filepath.Join(dir, "sub.db")); err != nil {
		t.Fatalf("relative path not under the data dir: %v", err)
	}
	if _, err := os.Stat(abs); err != nil {
		t.Fatalf("absolute path not used: %v", err)
	}
	p, r, _ := s.Pools("rel")
	if got := pragma(t, p, "busy_timeout"); got != "250" {
		t.Errorf("busy_timeout = %s, want the DSN's 250", got)
	}
	if got := pragma(t, r, "synchronous"); got != "2" {
		t.Errorf("synchronous = %s, want the DSN's FULL (2)", got)
	}
	if got := pragma(t, r, "foreign_keys"); got != "1" {
		t.Errorf("foreign_keys = %s, want the default 1", got)
	}
	if n := r.Stats().MaxOpenConnections; n != 3 {
		t.Errorf("reader pool max %d, want MaxOpenConns 3", n)
	}
	// Each :memory: database is its own, on one connection for both roles.
	mp, mr, _ := s.Pools("mem")
	if mp != mr || mp.Stats().MaxOpenConnections != 1 {
		t.Fatal(":memory: must be one single-connection pool")
	}
	if _, err := mp.Exec("CREATE TABLE only_in_mem (x)"); err != nil {
		t.Fatal(err)
	}
	m2, _, _ := s.Pools("mem2")
	if _, err := m2.Exec("SELECT * FROM only_in_mem"); err == nil {
		t.Fatal("two :memory: databases share data")
	}
	if got := s.Names(); strings.Join(got, ",") != "abs,mem,mem2,rel" {
		t.Fatalf("Names = %v", got)
	}
}

func TestValidate(t *testing.T) {
	cases := []struct {
		name string
		cfg  sqldb.Config
		want string // "" = valid
	}{
		{"zero", sqldb.Config{}, ""},
		{"sqlite", sqldb.Config{Driver: "sqlite", DSN: "x.db"}, ""},
		{"mysql", sqldb.Config{Driver: "mysql", DSN: "u:p@tcp(127.0.0.1:3306)/app", Replicas: []string{"u@tcp(r:3306)/app"}}, ""},
		{"unknown driver", sqldb.Config{Driver: "postgres"}, `unknown driver "postgres"`},
		{"mysql without dsn", sqldb.Config{Driver: "mysql"}, "needs a dsn"},
		{"bad mysql dsn", sqldb.Config{Driver: "mysql", DSN: "u@tcp(x/app"}, "dsn"},
		{"bad replica dsn", sqldb.Config{Driver: "mysql", DSN: "u@tcp(x:1)/a", Replicas: []string{"u@tcp(x/app"}}, "replica 1"},
		{"sqlite replicas", sqldb.Config{Replicas: []string{"r.db"}}, "replicas are only supported"},
		{"negative", sqldb.Config{MaxOpenConns: -1}, "must not be negative"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate("db1")
			if tc.want == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), `database "db1"`) {
				t.Fatalf("error %v, want one naming database \"db1\" and containing %q", err, tc.want)
			}
			// Open refuses it too, opening nothing.
			if _, err := sqldb.Open(t.TempDir(), map[string]sqldb.Config{"db1": tc.cfg}); err == nil {
				t.Fatal("Open accepted an invalid config")
			}
		})
	}
}

func TestOpenSQLiteFailure(t *testing.T) {
	_, err := sqldb.Open(t.TempDir(), map[string]sqldb.Config{"broken": {DSN: "/nonexistent/dir/x.db"}})
	if err == nil || !strings.Contains(err.Error(), `database "broken"`) {
		t.Fatalf("error %v, want one naming the database", err)
	}
}

// A MySQL database that is down does not stop Open (pools dial lazily);
// Ping reports it, and the error is classified unavailable.
func TestMySQLLazyOpenAndRoundRobin(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens here now
	dsn := func(db string) string { return fmt.Sprintf("u@tcp(%s)/%s", addr, db) }
	s := open(t, "", map[string]sqldb.Config{"m": {Driver: "mysql", DSN: dsn("p"), Replicas: []string{dsn("r1"), dsn("r2"), dsn("r3")}}})
	err = s.Ping(context.Background())
	if err == nil || !strings.Contains(err.Error(), `database "m"`) || !sqldb.IsUnavailable(err) {
		t.Fatalf("Ping of a closed port: %v (unavailable=%v)", err, sqldb.IsUnavailable(err))
	}
	primary, _, _ := s.Pools("m")
	seen := map[*sql.DB]int{}
	for range 9 {
		p, r, ok := s.Pools("m")
		if !ok || p != primary || r == primary {
			t.Fatal("replica pools must differ from the primary")
		}
		seen[r]++
	}
	if len(seen) != 3 {
		t.Fatalf("reads spread over %d replicas, want 3", len(seen))
	}
	for r, n := range seen {
		if n != 3 {
			t.Fatalf("replica %p got %d of 9 reads", r, n)
		}
	}
	if n := primary.Stats().MaxOpenConnections; n != sqldb.DefaultMySQLMaxOpenConns {
		t.Fatalf("default max open %d", n)
	}
}

func TestIsUnavailable(t *testing.T) {
	busy := sqliteBusyError(t)
	cases := []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"dial refused", &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}, true},
		{"wrapped reset", fmt.Errorf("read: %w", syscall.ECONNRESET), true},
		{"bad conn", driver.ErrBadConn, true},
		{"invalid conn", mysql.ErrInvalidConn, true},
		{"eof", io.ErrUnexpectedEOF, true},
		{"too many connections", &mysql.MySQLError{Number: 1040, Message: "Too many connections"}, true},
		{"server shutdown", &mysql.MySQLError{Number: 1053}, true},
		{"syntax", &mysql.MySQLError{Number: 1064, Message: "syntax"}, false},
		{"duplicate", &mysql.MySQLError{Number: 1062}, false},
		{"closed pool", errors.New("sql: database is closed"), true},
		{"sqlite busy", busy, true},
		{"other", errors.New("no such table: x"), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := sqldb.IsUnavailable(tc.err); got != tc.want {
				t.Fatalf("IsUnavailable(%v) = %v, want %v", tc.err, got, tc.want)
			}
		})
	}
}

// sqliteBusyError provokes a real SQLITE_BUSY: one connection holds the
// write lock, another with no busy timeout tries to write.
func sqliteBusyError(t *testing.T) error {
	path := filepath.Join(t.TempDir(), "busy.db")
	a, err := sql.Open("sqlite", path+"?_pragma=journal_mode(WAL)")
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(0)")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if _, err := a.Exec("CREATE TABLE t (x)"); err != nil {
		t.Fatal(err)
	}
	conn, err := a.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(context.Background(), "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	defer conn.ExecContext(context.Background(), "ROLLBACK")
	_, err = b.Exec("INSERT INTO t VALUES (1)")
	var se *sqlite.Error
	if !errors.As(err, &se) {
		t.Fatalf("want a *sqlite.Error, got %v", err)
	}
	return err
}

func TestPoolMetrics(t *testing.T) {
	s, err := sqldb.Open(t.TempDir(), map[string]sqldb.Config{"metrics_probe": {MaxOpenConns: 5}})
	if err != nil {
		t.Fatal(err)
	}
	_, r, _ := s.Pools("metrics_probe")
	if _, err := r.Exec("SELECT 1"); err != nil {
		t.Fatal(err)
	}
	out, err := testutil.GatherAndFormat(metrics.Registry, expfmt.TypeTextPlain, "wasmcorn_db_pool_max_open_connections", "wasmcorn_db_pool_connections_opened_total")
	if err != nil {
		t.Fatal(err)
	}
	text := string(out)
	for _, want := range []string{
		`wasmcorn_db_pool_max_open_connections{db="metrics_probe",index="0",role="writer"} 1`,
		`wasmcorn_db_pool_max_open_connections{db="metrics_probe",index="0",role="reader"} 5`,
		`wasmcorn_db_pool_connections_opened_total{db="metrics_probe",index="0",role="writer"} 1`,
		`wasmcorn_db_pool_connections_opened_total{db="metrics_probe",index="0",role="reader"} 1`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %s\n%s", want, text)
		}
	}
	s.Close()
	out, _ = testutil.GatherAndFormat(metrics.Registry, expfmt.TypeTextPlain, "wasmcorn_db_pool_max_open_connections")
	if strings.Contains(string(out), "metrics_probe") {
		t.Fatalf("closed set still reported:\n%s", out)
	}
}
