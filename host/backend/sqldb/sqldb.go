// Package sqldb is wasmcorn's SQL backend: the named databases plugins may
// be granted, each a set of database/sql pools. It implements host.SQL.
//
// Two drivers are supported:
//
//   - "sqlite" (the default): an embedded SQLite file through
//     modernc.org/sqlite (pure Go, no cgo). Each database gets two pools on
//     the same file: a writer pool of exactly one connection, used for
//     writes and transactions, and a reader pool for plain reads. The file
//     is in WAL mode, so readers never block the writer or each other, and
//     because only one connection ever writes, concurrent writers queue in
//     database/sql (bounded by the caller's context) instead of failing with
//     SQLITE_BUSY. A DSN of ":memory:" is one private in-memory database
//     served by a single connection.
//   - "mysql" (MySQL and MariaDB): github.com/go-sql-driver/mysql with one
//     pool on the primary and one per read replica; plain reads rotate over
//     the replicas round robin.
//
// A database that is down makes operations fail (see IsUnavailable) without
// closing anything: database/sql discards broken connections and dials new
// ones, so the pools recover by themselves when the database returns.
package sqldb

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-sql-driver/mysql"
	sqlite "modernc.org/sqlite"

	"github.com/wasmcorn/wasmcorn/internal/metrics"
)

// Driver names accepted in Config.Driver.
const (
	DriverSQLite = "sqlite"
	DriverMySQL  = "mysql"
)

// DefaultSQLiteFile is the SQLite file of a database configured without a
// DSN, relative to the data directory given to Open.
const DefaultSQLiteFile = "wasmcorn.db"

// Defaults applied by Open to zero Config fields.
const (
	// DefaultMySQLMaxOpenConns caps each MySQL pool (primary and each
	// replica). A wasmcorn process serves many requests per connection, so
	// a few dozen connections carry thousands of requests per second.
	DefaultMySQLMaxOpenConns = 32
	// DefaultConnMaxLifetime recycles MySQL connections, so a load balancer
	// or a failover moves traffic within minutes and server-side state does
	// not accumulate.
	DefaultConnMaxLifetime = 30 * time.Minute
	// DefaultConnMaxIdleTime closes MySQL connections idle this long.
	DefaultConnMaxIdleTime = 5 * time.Minute
	// DefaultDialTimeout bounds establishing a MySQL connection when the
	// DSN has no timeout parameter. Requests are bounded by their deadline
	// anyway; this bounds the pool's own background dials.
	DefaultDialTimeout = 5 * time.Second
	// DefaultSQLiteBusyTimeout is how long a SQLite connection waits for a
	// lock held by another process (or by a write sent through a plain
	// query) before SQLITE_BUSY.
	DefaultSQLiteBusyTimeout = 5 * time.Second
)

// DefaultSQLiteReaders is the default size of a SQLite reader pool: reads
// run in parallel up to the CPU count, and a few more connections cover
// requests that hold one while doing other work.
func DefaultSQLiteReaders() int { return max(4, 2*runtime.GOMAXPROCS(0)) }

// Config is one named database. The zero value is an embedded SQLite
// database in DefaultSQLiteFile under the data directory.
type Config struct {
	// Driver is "sqlite" or "mysql". Default "sqlite".
	Driver string
	// DSN is, for sqlite, a file path (relative paths are resolved against
	// the data directory; default DefaultSQLiteFile), optionally followed by
	// "?" and modernc.org/sqlite parameters; ":memory:" is a private
	// in-memory database. For mysql it is a go-sql-driver DSN such as
	// "app:secret@tcp(db1:3306)/app". Open always sets parseTime=true (the
	// host needs DATETIME values as time.Time) and, unless the DSN says
	// otherwise, a dial timeout of DefaultDialTimeout and, with the
	// default loc=UTC, the session time zone '+00:00' (so TIMESTAMP values
	// read and write in UTC); the connection collation is the driver's
	// default, utf8mb4_general_ci.
	DSN string
	// Replicas are MySQL DSNs of read replicas. Plain reads (db.query
	// outside a transaction) rotate over them; writes, transactions and
	// prepared statements use the primary. Not allowed for sqlite.
	Replicas []string
	// MaxOpenConns caps each pool. Default DefaultMySQLMaxOpenConns for
	// mysql, DefaultSQLiteReaders for the SQLite reader pool (the SQLite
	// writer pool always has exactly one connection).
	MaxOpenConns int
	// MaxIdleConns caps idle connections kept per pool. Default
	// MaxOpenConns, so a busy pool never closes and redials connections
	// between bursts.
	MaxIdleConns int
	// ConnMaxLifetime recycles connections older than this. Default
	// DefaultConnMaxLifetime for mysql, unlimited for sqlite.
	ConnMaxLifetime time.Duration
	// ConnMaxIdleTime closes connections idle longer than this. Default
	// DefaultConnMaxIdleTime for mysql, unlimited for sqlite.
	ConnMaxIdleTime time.Duration
	// QueryTimeout bounds each statement below the request deadline.
	// Default 0: only the request deadline bounds it.
	QueryTimeout time.Duration
	// StmtCacheSize is how many prepared statements each pool caches, by
	// SQL text, for plain queries and execs outside transactions. A query
	// is prepared the second time it is seen and evicted least recently
	// used first (CLOCK). Default DefaultStmtCacheSize; negative disables
	// the cache.
	StmtCacheSize int
}

// Set is the configured databases. It implements host.SQL. Its methods are
// safe for concurrent use; Close must be called once nothing uses the pools.
type Set struct {
	dbs     map[string]*database
	caches  map[*sql.DB]*stmtCache // immutable after Open
	unwatch func()
}

type database struct {
	name     string
	dialect  string
	primary  *sql.DB
	read     []*sql.DB // the reader pool (sqlite) or replicas (mysql); empty: read from primary
	next     atomic.Uint32
	timeout  time.Duration
	counters []*atomic.Int64 // connections opened, one per pool, for metrics
}

// Validate checks cfg without opening anything.
func (c Config) Validate(name string) error {
	switch c.Driver {
	case "", DriverSQLite:
		if len(c.Replicas) > 0 {
			return fmt.Errorf("database %q: replicas are only supported with driver %q", name, DriverMySQL)
		}
	case DriverMySQL:
		if c.DSN == "" {
			return fmt.Errorf("database %q: driver %q needs a dsn", name, DriverMySQL)
		}
		for i, dsn := range append([]string{c.DSN}, c.Replicas...) {
			if _, err := mysql.ParseDSN(dsn); err != nil {
				what := "dsn"
				if i > 0 {
					what = fmt.Sprintf("replica %d", i)
				}
				return fmt.Errorf("database %q: %s: %w", name, what, err)
			}
		}
	default:
		return fmt.Errorf("database %q: unknown driver %q (want %q or %q)", name, c.Driver, DriverSQLite, DriverMySQL)
	}
	if c.MaxOpenConns < 0 || c.MaxIdleConns < 0 || c.ConnMaxLifetime < 0 || c.ConnMaxIdleTime < 0 || c.QueryTimeout < 0 {
		return fmt.Errorf("database %q: pool limits and timeouts must not be negative", name)
	}
	return nil
}

// Open opens every database of cfgs. SQLite files are created when missing
// (relative paths under dataDir); MySQL pools dial lazily, so Open succeeds
// while a MySQL server is down and requests fail with an unavailable error
// until it is up. On error nothing stays open.
func Open(dataDir string, cfgs map[string]Config) (*Set, error) {
	s := &Set{dbs: make(map[string]*database, len(cfgs)), caches: map[*sql.DB]*stmtCache{}}
	names := make([]string, 0, len(cfgs))
	for name := range cfgs {
		names = append(names, name)
	}
	sort.Strings(names)
	var watched []metrics.DBPool
	for _, name := range names {
		cfg := cfgs[name]
		if err := cfg.Validate(name); err != nil {
			s.Close()
			return nil, err
		}
		var d *database
		var err error
		if cfg.Driver == DriverMySQL {
			d, err = openMySQL(name, cfg)
		} else {
			d, err = openSQLite(name, dataDir, cfg)
		}
		if err != nil {
			s.Close()
			return nil, err
		}
		s.dbs[name] = d
		watched = append(watched, d.pools()...)
		size := cfg.StmtCacheSize
		if size == 0 {
			size = DefaultStmtCacheSize
		}
		if size > 0 {
			for _, p := range append([]*sql.DB{d.primary}, d.read...) {
				s.caches[p] = newStmtCache(p, size)
			}
		}
	}
	s.unwatch = metrics.WatchDBPools(watched)
	return s, nil
}

// Pools returns the primary pool of database name and the pool for plain
// reads: the next replica round robin (mysql), the reader pool (sqlite), or
// the primary.
func (s *Set) Pools(name string) (primary, read *sql.DB, ok bool) {
	d, ok := s.dbs[name]
	if !ok {
		return nil, nil, false
	}
	switch len(d.read) {
	case 0:
		return d.primary, d.primary, true
	case 1:
		return d.primary, d.read[0], true
	}
	i := d.next.Add(1)
	return d.primary, d.read[int(i%uint32(len(d.read)))], true
}

// Stmt borrows a prepared statement for query on pool, one of the pools
// Pools returned, from the pool's statement cache. It returns nil when the
// query should run unprepared: the cache is disabled, the query is seen for
// the first time, or preparing it failed. The caller must Release a non-nil
// result after closing its rows.
func (s *Set) Stmt(ctx context.Context, pool *sql.DB, query string) *CachedStmt {
	c := s.caches[pool]
	if c == nil {
		return nil
	}
	return c.get(ctx, query)
}

// Dialect returns "sqlite" or "mysql" for database name, "" when unknown.
func (s *Set) Dialect(name string) string {
	if d, ok := s.dbs[name]; ok {
		return d.dialect
	}
	return ""
}

// QueryTimeout returns the configured per-statement timeout of database
// name (0: none).
func (s *Set) QueryTimeout(name string) time.Duration {
	if d, ok := s.dbs[name]; ok {
		return d.timeout
	}
	return 0
}

// Names returns the configured database names, sorted.
func (s *Set) Names() []string {
	names := make([]string, 0, len(s.dbs))
	for n := range s.dbs {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Ping checks that every primary answers, for readiness probes. The error
// names every database that did not.
func (s *Set) Ping(ctx context.Context) error {
	var errs []error
	for _, name := range s.Names() {
		if err := s.dbs[name].primary.PingContext(ctx); err != nil {
			errs = append(errs, fmt.Errorf("database %q: %w", name, err))
		}
	}
	return errors.Join(errs...)
}

// Close closes every pool. Operations in flight finish first (database/sql
// waits for connections in use to be returned).
func (s *Set) Close() error {
	if s.unwatch != nil {
		s.unwatch()
	}
	for _, c := range s.caches {
		c.close()
	}
	var errs []error
	for _, d := range s.dbs {
		for _, p := range append([]*sql.DB{d.primary}, d.read...) {
			if err := p.Close(); err != nil {
				errs = append(errs, fmt.Errorf("close database %q: %w", d.name, err))
			}
		}
	}
	return errors.Join(errs...)
}

func (d *database) pools() []metrics.DBPool {
	role, readRole := "primary", "replica"
	if d.dialect == DriverSQLite {
		role, readRole = "writer", "reader"
	}
	ps := []metrics.DBPool{{DB: d.name, Role: role, Pool: d.primary, Opened: d.counters[0].Load}}
	for i, r := range d.read {
		ps = append(ps, metrics.DBPool{DB: d.name, Role: readRole, Index: i, Pool: r, Opened: d.counters[i+1].Load})
	}
	return ps
}

// countingConnector counts the connections a pool opens.
type countingConnector struct {
	driver.Connector
	n *atomic.Int64
}

func (c countingConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.Connector.Connect(ctx)
	if err == nil {
		c.n.Add(1)
	}
	return conn, err
}

func (d *database) newPool(conn driver.Connector) *sql.DB {
	n := new(atomic.Int64)
	d.counters = append(d.counters, n)
	return sql.OpenDB(countingConnector{Connector: conn, n: n})
}

func openSQLite(name, dataDir string, cfg Config) (*database, error) {
	path, params, _ := strings.Cut(cfg.DSN, "?")
	if path == "" {
		path = DefaultSQLiteFile
	}
	memory := path == ":memory:" || strings.Contains(params, "mode=memory")
	if !memory && !filepath.IsAbs(path) && !strings.HasPrefix(path, "file:") {
		path = filepath.Join(dataDir, path)
	}
	q, err := url.ParseQuery(params)
	if err != nil {
		return nil, fmt.Errorf("database %q: sqlite dsn parameters %q: %w", name, params, err)
	}
	// Parameters the caller set win; these are the defaults.
	pragmas := map[string]string{
		"busy_timeout": fmt.Sprint(DefaultSQLiteBusyTimeout.Milliseconds()),
		"foreign_keys": "1",
		"journal_mode": "WAL",
		// With WAL, NORMAL is safe against corruption; a power loss may
		// roll back the last transactions but never tears one.
		"synchronous": "NORMAL",
	}
	if memory {
		delete(pragmas, "journal_mode")
	}
	for _, p := range q["_pragma"] {
		key, _, _ := strings.Cut(strings.ToLower(strings.TrimSpace(p)), "(")
		key, _, _ = strings.Cut(key, "=")
		delete(pragmas, strings.TrimSpace(key))
	}
	for k, v := range pragmas {
		q.Add("_pragma", k+"("+v+")")
	}
	if q.Get("_txlock") == "" {
		// Take the write lock at BEGIN, so a transaction never fails later
		// on a lock upgrade (which SQLite cannot wait for).
		q.Set("_txlock", "immediate")
	}
	conn, err := sqlite.NewConnector(path + "?" + q.Encode())
	if err != nil {
		return nil, fmt.Errorf("database %q: sqlite dsn: %w", name, err)
	}

	d := &database{name: name, dialect: DriverSQLite, timeout: cfg.QueryTimeout}
	d.primary = d.newPool(conn)
	d.primary.SetMaxOpenConns(1)
	d.primary.SetMaxIdleConns(1)
	d.primary.SetConnMaxLifetime(cfg.ConnMaxLifetime)
	d.primary.SetConnMaxIdleTime(cfg.ConnMaxIdleTime)
	if memory {
		// One connection is the whole database: never close it.
		d.primary.SetConnMaxLifetime(0)
		d.primary.SetConnMaxIdleTime(0)
	}
	// Open the file now: a bad path or a corrupt file fails Open, not the
	// first request, and the WAL switch happens before readers exist.
	ctx, cancel := context.WithTimeout(context.Background(), DefaultSQLiteBusyTimeout+5*time.Second)
	defer cancel()
	if err := d.primary.PingContext(ctx); err != nil {
		d.primary.Close()
		return nil, fmt.Errorf("database %q: open sqlite %s: %w", name, path, err)
	}
	if memory {
		return d, nil
	}
	readers := cfg.MaxOpenConns
	if readers == 0 {
		readers = DefaultSQLiteReaders()
	}
	idle := cfg.MaxIdleConns
	if idle == 0 {
		idle = readers
	}
	r := d.newPool(conn)
	r.SetMaxOpenConns(readers)
	r.SetMaxIdleConns(idle)
	r.SetConnMaxLifetime(cfg.ConnMaxLifetime)
	r.SetConnMaxIdleTime(cfg.ConnMaxIdleTime)
	d.read = []*sql.DB{r}
	return d, nil
}

func openMySQL(name string, cfg Config) (*database, error) {
	d := &database{name: name, dialect: DriverMySQL, timeout: cfg.QueryTimeout}
	open := func(dsn string) (*sql.DB, error) {
		mc, err := mysql.ParseDSN(dsn)
		if err != nil {
			return nil, err
		}
		mc.ParseTime = true
		if mc.Timeout == 0 {
			mc.Timeout = DefaultDialTimeout
		}
		// Sessions in UTC, like the driver's parsing (Loc) and the host's
		// time parameters, so TIMESTAMP columns round-trip whatever the
		// server's system time zone.
		if _, ok := mc.Params["time_zone"]; !ok && mc.Loc == time.UTC {
			if mc.Params == nil {
				mc.Params = map[string]string{}
			}
			mc.Params["time_zone"] = "'+00:00'"
		}
		if !strings.Contains(dsn, "interpolateParams=") {
			mc.InterpolateParams = defaultInterpolateParams
		}
		mc.Logger = driverLogger{db: name}
		conn, err := mysql.NewConnector(mc)
		if err != nil {
			return nil, err
		}
		p := d.newPool(conn)
		maxOpen := cfg.MaxOpenConns
		if maxOpen == 0 {
			maxOpen = DefaultMySQLMaxOpenConns
		}
		idle := cfg.MaxIdleConns
		if idle == 0 {
			idle = maxOpen
		}
		life, idleTime := cfg.ConnMaxLifetime, cfg.ConnMaxIdleTime
		if life == 0 {
			life = DefaultConnMaxLifetime
		}
		if idleTime == 0 {
			idleTime = DefaultConnMaxIdleTime
		}
		p.SetMaxOpenConns(maxOpen)
		p.SetMaxIdleConns(idle)
		p.SetConnMaxLifetime(life)
		p.SetConnMaxIdleTime(idleTime)
		return p, nil
	}
	var err error
	if d.primary, err = open(cfg.DSN); err != nil {
		return nil, fmt.Errorf("database %q: %w", name, err)
	}
	for i, dsn := range cfg.Replicas {
		r, err := open(dsn)
		if err != nil {
			d.primary.Close()
			for _, p := range d.read {
				p.Close()
			}
			return nil, fmt.Errorf("database %q: replica %d: %w", name, i+1, err)
		}
		d.read = append(d.read, r)
	}
	return d, nil
}

// defaultInterpolateParams selects how the MySQL driver sends parameters
// when the DSN does not say. See the package README for the measurement
// behind the choice.
const defaultInterpolateParams = true

// driverLogger sends go-sql-driver/mysql's own log lines (connections found
// broken and discarded, and the like) to slog instead of stderr.
type driverLogger struct{ db string }

func (l driverLogger) Print(v ...any) {
	slog.Warn("mysql driver: "+strings.TrimSpace(fmt.Sprint(v...)), "db", l.db)
}
