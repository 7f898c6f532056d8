// Package db is a database/sql driver, named "wasmcorn", for the SQL
// databases the wasmcorn host pools on a plugin's behalf. Import it for its
// side effect and open a database by the name the plugin's manifest grants:
//
//	import (
//		"database/sql"
//
//		_ "github.com/wasmcorn/wasmcorn/sdk-go/db"
//	)
//
//	var store, _ = sql.Open("wasmcorn", "default") // DSN = database name
//
//	func get(ctx context.Context, id int64) (name string, err error) {
//		err = store.QueryRowContext(ctx, "SELECT name FROM items WHERE id = ?", id).Scan(&name)
//		return
//	}
//
// Ordinary database/sql code then runs unchanged: queries, execs,
// transactions, prepared statements, NULLs (sql.NullString and friends),
// time.Time. Placeholders are whatever the database uses (? for SQLite and
// MySQL); parameters always travel apart from the SQL text and are bound by
// the host's driver, never formatted into the text. Named parameters
// (sql.Named) are not supported.
//
// # Connections
//
// A connection of this driver is only a name: the real connections live in
// the host's pools, shared by every instance of every plugin, and the host
// borrows one per statement or per transaction. sql.DB pool settings
// (SetMaxOpenConns, ...) are therefore irrelevant; open one *sql.DB per
// database in a package variable and keep it.
//
// # Transactions are scoped to the request
//
// A transaction (db.Begin, db.BeginTx) is a host handle that lives at most
// until the current request (or job) returns: the host rolls back every
// transaction the guest did not commit when the call ends, and the handle
// is then dead. Commit or roll back within the request, as with any
// request-scoped transaction (defer tx.Rollback() after Begin is the usual
// idiom). Isolation levels and read-only transactions are not supported
// (BeginTx returns an error for them); a transaction runs with the
// database's default isolation.
//
// On an embedded SQLite database the host has one writer connection: while
// a request holds a transaction, every write of that same request must go
// through the transaction (tx.Exec, not db.Exec); a write beside it fails at
// once with a conflict error instead of waiting for a transaction that can
// never finish. Reads beside a transaction are fine.
//
// # Prepared statements
//
// A *sql.Stmt of this driver keeps its SQL text and runs each execution as
// a plain query or exec; it holds no host state, so it may be prepared once
// in a package variable and used by every request. The host caches
// server-side prepared statements for repeated SQL by itself, so this costs
// nothing. The flip side: SQL errors surface when the statement runs, not
// when it is prepared.
//
// # Values
//
// Parameters: nil, integers, floats, bool, string and []byte map to the ABI
// value of the same kind (an unsigned integer above MaxInt64 is an error,
// as with database/sql's default converter); a time.Time is sent as the
// string "YYYY-MM-DD HH:MM:SS[.ffffff]" in UTC, the format both MySQL and
// SQLite parse (sub-microsecond digits are dropped); driver.Valuer types
// are converted by database/sql first.
//
// Results: integers arrive as int64, floats as float64, text as string,
// blobs as []byte, NULL as nil. The host sends DATE, DATETIME and TIMESTAMP
// columns as RFC 3339 strings (time.RFC3339Nano); the driver turns a string
// that is exactly such a timestamp back into a time.Time, so Scan into a
// *time.Time works, and scanning it into a *string yields the identical
// text. The cost of that rule: a text column that happens to hold a
// canonical RFC 3339 timestamp also scans into *any as a time.Time. MySQL
// DECIMAL arrives as its exact decimal string; a boolean column reads back
// as the integer 0 or 1 (neither engine has a boolean type).
//
// # Errors
//
// A failure reported by the host is a *abi.ReplyError; its Code tells
// abi.ErrSQL (the database rejected the statement; Msg is the database's
// message, e.g. MySQL's "Error 1062 (23000): Duplicate entry ..."),
// abi.ErrDenied (the manifest does not grant the database),
// abi.ErrUnavailable (the database is down or overloaded), abi.ErrTimeout
// (the request deadline ran out), abi.ErrTooLarge (a result over the host's
// limit: add LIMIT or paginate) and abi.ErrConflict (the SQLite case above).
package db

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/wasmcorn/wasmcorn/abi"
	"github.com/wasmcorn/wasmcorn/sdk-go/hostcall"
)

// DriverName is the name the driver registers with database/sql.
const DriverName = "wasmcorn"

func init() { sql.Register(DriverName, Driver{}) }

// Driver is the wasmcorn database/sql driver. The zero value is ready to
// use; its data source name is the database name granted in the plugin's
// manifest.
type Driver struct{}

// Open returns a connection to database name. It never fails: a wrong or
// ungranted name fails the first statement with abi.ErrDenied.
func (Driver) Open(name string) (driver.Conn, error) { return &conn{db: name}, nil }

// OpenConnector returns a connector for database name.
func (Driver) OpenConnector(name string) (driver.Connector, error) { return Connector{DB: name}, nil }

// Connector opens connections to one database; sql.OpenDB(Connector{DB:
// "default"}) is the same as sql.Open("wasmcorn", "default").
type Connector struct {
	// DB is the database name as granted in the manifest.
	DB string
}

// Connect returns a new connection. It does not call the host.
func (c Connector) Connect(context.Context) (driver.Conn, error) { return &conn{db: c.DB}, nil }

// Driver returns the Driver.
func (Connector) Driver() driver.Driver { return Driver{} }

// conn is one guest-side connection: the database name and, while a
// transaction is open on it, the host's transaction handle. database/sql
// serializes use of a conn.
type conn struct {
	db string
	tx int64 // 0: no transaction
}

var (
	_ driver.Conn               = (*conn)(nil)
	_ driver.ConnBeginTx        = (*conn)(nil)
	_ driver.ConnPrepareContext = (*conn)(nil)
	_ driver.QueryerContext     = (*conn)(nil)
	_ driver.ExecerContext      = (*conn)(nil)
	_ driver.Pinger             = (*conn)(nil)
	_ driver.Tx                 = (*tx)(nil)
	_ driver.Stmt               = (*stmt)(nil)
	_ driver.StmtQueryContext   = (*stmt)(nil)
	_ driver.StmtExecContext    = (*stmt)(nil)
	_ driver.Rows               = (*rows)(nil)
)

func (c *conn) Prepare(query string) (driver.Stmt, error) {
	return c.PrepareContext(context.Background(), query)
}

// PrepareContext returns a client-side statement: see the package
// documentation on prepared statements.
func (c *conn) PrepareContext(_ context.Context, query string) (driver.Stmt, error) {
	return &stmt{c: c, query: query}, nil
}

// Close does nothing: the host owns the real connections. A transaction
// still open is rolled back by the host when the request ends.
func (c *conn) Close() error { return nil }

func (c *conn) Begin() (driver.Tx, error) { return c.BeginTx(context.Background(), driver.TxOptions{}) }

// ErrTxOptions is returned by BeginTx for an isolation level other than
// the default or a read-only transaction, which the host does not offer.
var ErrTxOptions = errors.New("wasmcorn db: isolation levels and read-only transactions are not supported")

func (c *conn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	if opts.Isolation != driver.IsolationLevel(sql.LevelDefault) || opts.ReadOnly {
		return nil, ErrTxOptions
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if c.tx != 0 {
		return nil, errors.New("wasmcorn db: a transaction is already open on this connection")
	}
	a := hostcall.AcquireArgs()
	a.B = abi.AppendString(a.B, c.db)
	vs, err := hostcall.Call(abi.OpDBBegin, a.B)
	a.Release()
	if err != nil {
		return nil, err
	}
	h, err := vs.Int("transaction handle")
	if err != nil {
		return nil, fmt.Errorf("wasmcorn db: begin: %w", err)
	}
	c.tx = h
	return &tx{c: c, h: h}, nil
}

// Ping runs SELECT 1 on the database, so sql.DB.Ping reports a denied or
// unavailable database.
func (c *conn) Ping(ctx context.Context) error {
	r, err := c.QueryContext(ctx, "SELECT 1", nil)
	if err != nil {
		return err
	}
	return r.Close()
}

// appendTarget appends the first argument of a db op: the open
// transaction's handle, else the database name.
func (c *conn) appendTarget(b []byte) []byte {
	if c.tx != 0 {
		return abi.AppendInt(b, c.tx)
	}
	return abi.AppendString(b, c.db)
}

func (c *conn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	a := hostcall.AcquireArgs()
	defer a.Release()
	a.B = abi.AppendString(c.appendTarget(a.B), query)
	var err error
	if a.B, err = appendArgs(a.B, args); err != nil {
		return nil, err
	}
	vs, bufp, err := callQuery(a.B)
	if err != nil {
		return nil, err
	}
	r, err := newRows(vs, bufp)
	if err != nil {
		putReplyBuf(bufp)
		return nil, err
	}
	return r, nil
}

// callQuery runs db.query with the encoded args. The reply's values alias
// the returned buffer, which goes back with putReplyBuf when done.
func callQuery(args []byte) (abi.Values, *[]byte, error) {
	bufp := replyBufs.Get().(*[]byte)
	vs, reply, err := hostcall.CallBuf(abi.OpDBQuery, args, *bufp)
	*bufp = reply
	if err != nil {
		putReplyBuf(bufp)
		return abi.Values{}, nil, err
	}
	return vs, bufp, nil
}

// readColumns reads a query reply's column count and names, appending the
// names (aliasing the reply) to cols, and leaves vs at the first value.
func readColumns(vs *abi.Values, cols [][]byte) ([][]byte, error) {
	n, err := vs.Int("column count")
	if err != nil {
		return cols, fmt.Errorf("wasmcorn db: query reply: %w", err)
	}
	if n < 0 || n > int64(vs.Remaining()) { // each name takes at least 5 bytes
		return cols, fmt.Errorf("wasmcorn db: query reply: bad column count %d", n)
	}
	for range n {
		name, err := vs.Bytes("column name")
		if err != nil {
			return cols, fmt.Errorf("wasmcorn db: query reply: %w", err)
		}
		cols = append(cols, name)
	}
	if n == 0 && vs.More() {
		return cols, errors.New("wasmcorn db: query reply: values without columns")
	}
	return cols, nil
}

func (c *conn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	a := hostcall.AcquireArgs()
	defer a.Release()
	a.B = abi.AppendString(c.appendTarget(a.B), query)
	var err error
	if a.B, err = appendArgs(a.B, args); err != nil {
		return nil, err
	}
	vs, err := hostcall.Call(abi.OpDBExec, a.B)
	if err != nil {
		return nil, err
	}
	var res result
	if res.affected, err = vs.Int("rows affected"); err == nil {
		res.lastID, err = vs.Int("last insert id")
	}
	if err != nil {
		return nil, fmt.Errorf("wasmcorn db: exec reply: %w", err)
	}
	return res, nil
}

// result is an exec's outcome; both numbers are known.
type result struct{ affected, lastID int64 }

func (r result) LastInsertId() (int64, error) { return r.lastID, nil }
func (r result) RowsAffected() (int64, error) { return r.affected, nil }

// tx is an open host transaction.
type tx struct {
	c *conn
	h int64
}

func (t *tx) Commit() error   { return t.end(abi.OpDBCommit) }
func (t *tx) Rollback() error { return t.end(abi.OpDBRollback) }

func (t *tx) end(op abi.Op) error {
	if t.c.tx == t.h {
		t.c.tx = 0 // over, whatever the host answers
	}
	a := hostcall.AcquireArgs()
	a.B = abi.AppendInt(a.B, t.h)
	_, err := hostcall.Call(op, a.B)
	a.Release()
	return err
}

// stmt is a client-side prepared statement: the SQL text, run on its
// connection (inside the connection's transaction, if one is open).
type stmt struct {
	c     *conn
	query string
}

func (s *stmt) Close() error { return nil }

// NumInput returns -1: the host's database checks the parameter count.
func (s *stmt) NumInput() int { return -1 }

func (s *stmt) Exec(args []driver.Value) (driver.Result, error) {
	return s.c.ExecContext(context.Background(), s.query, named(args))
}

func (s *stmt) Query(args []driver.Value) (driver.Rows, error) {
	return s.c.QueryContext(context.Background(), s.query, named(args))
}

func (s *stmt) ExecContext(ctx context.Context, args []driver.NamedValue) (driver.Result, error) {
	return s.c.ExecContext(ctx, s.query, args)
}

func (s *stmt) QueryContext(ctx context.Context, args []driver.NamedValue) (driver.Rows, error) {
	return s.c.QueryContext(ctx, s.query, args)
}

func named(args []driver.Value) []driver.NamedValue {
	nv := make([]driver.NamedValue, len(args))
	for i, v := range args {
		nv[i] = driver.NamedValue{Ordinal: i + 1, Value: v}
	}
	return nv
}

// rows reads a db.query reply in place: values are decoded as Next asks
// for them, and []byte values alias the reply buffer, which stays the rows'
// until Close (database/sql copies them on Scan, except into sql.RawBytes,
// which is valid until the next Next, as usual).
type rows struct {
	cols []string
	vs   abi.Values
	buf  *[]byte
}

func newRows(vs abi.Values, buf *[]byte) (*rows, error) {
	var small [8][]byte // names of a typical result, without a heap allocation
	names, err := readColumns(&vs, small[:0])
	if err != nil {
		return nil, err
	}
	r := &rows{cols: make([]string, len(names)), vs: vs, buf: buf}
	for i, name := range names {
		r.cols[i] = string(name)
	}
	return r, nil
}

func (r *rows) Columns() []string { return r.cols }

func (r *rows) Close() error {
	if r.buf != nil {
		putReplyBuf(r.buf)
		r.buf = nil
	}
	r.vs = abi.Values{}
	return nil
}

func (r *rows) Next(dest []driver.Value) error {
	if !r.vs.More() {
		return io.EOF
	}
	for i := range dest {
		v, err := r.vs.Next()
		if err != nil {
			return fmt.Errorf("wasmcorn db: query reply row: %w", err)
		}
		dest[i] = toDriver(v)
	}
	return nil
}

// Reply buffers of queries, reused across queries; the host writes a reply
// into one directly when it fits.
var replyBufs = sync.Pool{New: func() any { b := make([]byte, 4<<10); return &b }}

// maxKeptReplyBuf is the largest reply buffer returned to the pool.
const maxKeptReplyBuf = 1 << 20

func putReplyBuf(b *[]byte) {
	if cap(*b) <= maxKeptReplyBuf {
		replyBufs.Put(b)
	}
}
