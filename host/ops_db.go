package host

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wasmcorn/wasmcorn/abi"
	"github.com/wasmcorn/wasmcorn/host/backend/sqldb"
	"github.com/wasmcorn/wasmcorn/internal/metrics"
)

// SQL host operations (db.*). A guest names a database by string (which its
// manifest must grant) or passes an int transaction handle from db.begin;
// SQL text always travels separately from its parameters, which are bound
// by the driver, never formatted into the text.
//
// Values map as follows. Parameters: null -> NULL, int -> int64, float ->
// float64, string -> string, bytes -> []byte, bool -> bool. Result columns:
// NULL -> null; integers -> int (an unsigned BIGINT above 2^63-1 -> its
// decimal string); FLOAT/DOUBLE -> float; text (CHAR, VARCHAR, TEXT, JSON,
// ENUM, SET, TIME, SQLite TEXT) -> string; binary (BLOB, BINARY, VARBINARY,
// BIT, SQLite BLOB) -> bytes; DATE, DATETIME, TIMESTAMP -> string in RFC 3339
// with nanoseconds (time.RFC3339Nano); MySQL DECIMAL -> string, exactly as
// the server prints it, because no ABI value holds a decimal without loss.
//
// Plain reads (db.query with a database name) go to the read pool (a
// replica, or the SQLite reader pool); everything else to the primary.

// MaxSQLResultBytes bounds the reply of one db.query or db.stmt_query. A
// result that grows past it stops being read and fails with too_large.
const MaxSQLResultBytes = 16 << 20

func init() {
	registerOp(abi.OpDBQuery, opDBQuery)
	registerOp(abi.OpDBExec, opDBExec)
	registerOp(abi.OpDBBegin, opDBBegin)
	registerOp(abi.OpDBCommit, opDBCommit)
	registerOp(abi.OpDBRollback, opDBRollback)
	registerOp(abi.OpDBPrepare, opDBPrepare)
	registerOp(abi.OpDBStmtQuery, opDBStmtQuery)
	registerOp(abi.OpDBStmtExec, opDBStmtExec)
	registerOp(abi.OpDBStmtClose, opDBStmtClose)
}

// dbTx is a transaction handle. Releasing it rolls back a transaction the
// guest did not finish.
type dbTx struct {
	tx      *sql.Tx
	db      string
	dialect string
	done    bool
	log     *slog.Logger // the plugin's
}

// rollbackWait bounds how long the end of a call waits for the rollback of
// a transaction the guest left open. database/sql's Rollback takes no
// context, and a database that hangs (rather than refusing) would otherwise
// hold the instance until TCP gives up; past the bound the rollback goes on
// in the background and the call ends.
const rollbackWait = time.Second

func (t *dbTx) Release() {
	if t.done {
		return
	}
	t.done = true
	done := make(chan struct{})
	go func() {
		t.tx.Rollback()
		close(done)
	}()
	timer := time.NewTimer(rollbackWait)
	defer timer.Stop()
	select {
	case <-done:
	case <-timer.C:
		t.log.Warn("rollback of an abandoned transaction still running; continuing in the background",
			"db", t.db, "waited", rollbackWait)
	}
}

// dbStmt is a prepared statement handle, on a pool or inside a transaction.
type dbStmt struct {
	stmt    *sql.Stmt
	db      string
	dialect string
	tx      *dbTx // nil: prepared on the primary pool
}

func (s *dbStmt) Release() { s.stmt.Close() }

// dbFail is a refusal decided before or after reaching the database.
type dbFail struct {
	code abi.Code
	msg  string
}

// dbTarget is what the first argument of db.query, db.exec and
// db.prepare names.
type dbTarget struct {
	name    string
	dialect string
	primary *sql.DB
	read    *sql.DB
	tx      *dbTx
}

// resolveDB reads the first argument: a granted database name or an open
// transaction handle.
func resolveDB(c *Call, args *abi.Values, op abi.Op) (t dbTarget, f *dbFail) {
	v, err := args.Next()
	if err != nil {
		return t, &dbFail{abi.ErrInvalid, op.String() + ": database or transaction: " + err.Error()}
	}
	switch v.Kind {
	case abi.KindInt:
		tx, f := lookupTx(c, v.I, op)
		if f != nil {
			return t, f
		}
		return dbTarget{name: tx.db, dialect: tx.dialect, tx: tx}, nil
	case abi.KindString:
		return resolveName(c, v.B, op)
	}
	return t, &dbFail{abi.ErrInvalid, op.String() + ": first argument must be a database name or a transaction handle, got " + v.Kind.String()}
}

func resolveName(c *Call, name []byte, op abi.Op) (t dbTarget, f *dbFail) {
	var granted string
	ok := false
	if c.Grants != nil {
		for _, g := range c.Grants.Databases {
			if g == string(name) {
				granted, ok = g, true
				break
			}
		}
	}
	if !ok {
		return t, &dbFail{abi.ErrDenied, fmt.Sprintf("plugin %q has no grant for database %q (add it to [grants] databases)", c.Plugin, name)}
	}
	if c.Services == nil || c.Services.SQL == nil {
		return t, &dbFail{abi.ErrUnavailable, fmt.Sprintf("database %q is not available: no SQL databases are configured", granted)}
	}
	primary, read, ok := c.Services.SQL.Pools(granted)
	if !ok {
		return t, &dbFail{abi.ErrUnavailable, fmt.Sprintf("database %q is granted to plugin %q but not configured (add [databases.%s])", granted, c.Plugin, granted)}
	}
	return dbTarget{name: granted, dialect: c.Services.SQL.Dialect(granted), primary: primary, read: read}, nil
}

func lookupTx(c *Call, id int64, op abi.Op) (*dbTx, *dbFail) {
	tx, ok := c.LookupHandle(id).(*dbTx)
	if !ok {
		return nil, &dbFail{abi.ErrInvalid, fmt.Sprintf("%s: %d is not an open transaction handle", op, id)}
	}
	if tx.done {
		return nil, &dbFail{abi.ErrInvalid, fmt.Sprintf("%s: transaction %d already ended", op, id)}
	}
	return tx, nil
}

func lookupStmt(c *Call, args *abi.Values, op abi.Op) (int64, *dbStmt, *dbFail) {
	id, err := args.Int("statement")
	if err != nil {
		return 0, nil, &dbFail{abi.ErrInvalid, op.String() + ": " + err.Error()}
	}
	st, ok := c.LookupHandle(id).(*dbStmt)
	if !ok {
		return id, nil, &dbFail{abi.ErrInvalid, fmt.Sprintf("%s: %d is not an open statement handle", op, id)}
	}
	if st.tx != nil && st.tx.done {
		return id, nil, &dbFail{abi.ErrInvalid, fmt.Sprintf("%s: statement %d belongs to a transaction that already ended", op, id)}
	}
	return id, st, nil
}

// sqliteWriterHeld refuses a statement that needs the SQLite writer
// connection of database t while the same call holds it in a transaction:
// the guest is blocked in this call, so the transaction could never finish
// and the statement would wait until the deadline. (A MySQL pool simply
// uses another connection.)
func sqliteWriterHeld(c *Call, db string, op abi.Op) *dbFail {
	for id, h := range c.handles {
		if tx, ok := h.(*dbTx); ok && !tx.done && tx.db == db && tx.dialect == sqldb.DriverSQLite {
			return &dbFail{abi.ErrConflict, fmt.Sprintf(
				"%s: database %q: this call's open transaction %d holds the SQLite writer; run the statement in that transaction or commit it first", op, db, id)}
		}
	}
	return nil
}

// dbScratch is per-operation working memory, pooled so that the hot path
// does not allocate it per call.
type dbScratch struct {
	params []any
	rw     rowWriter
	cells  []rowCell
	dest   []any
}

var dbScratchPool = sync.Pool{New: func() any { return new(dbScratch) }}

func getScratch() *dbScratch { return dbScratchPool.Get().(*dbScratch) }

func (s *dbScratch) release() {
	clear(s.params) // drop references to guest memory and strings
	s.params = s.params[:0]
	s.rw.reset()
	dbScratchPool.Put(s)
}

// readParams converts the remaining argument values to driver arguments.
// Bytes alias the guest's message, which is stable while the op runs;
// drivers copy what they send.
func readParams(args *abi.Values, dst []any, op abi.Op) ([]any, *dbFail) {
	for args.More() {
		v, err := args.Next()
		if err != nil {
			return dst, &dbFail{abi.ErrInvalid, fmt.Sprintf("%s: parameter %d: %v", op, len(dst)+1, err)}
		}
		switch v.Kind {
		case abi.KindNull:
			dst = append(dst, nil)
		case abi.KindInt:
			dst = append(dst, v.I)
		case abi.KindFloat:
			dst = append(dst, v.F)
		case abi.KindString:
			dst = append(dst, string(v.B))
		case abi.KindBytes:
			dst = append(dst, v.B)
		case abi.KindBool:
			dst = append(dst, v.I != 0)
		}
	}
	return dst, nil
}

func readSQL(args *abi.Values, op abi.Op) (string, *dbFail) {
	b, err := args.Bytes("sql")
	if err != nil {
		return "", &dbFail{abi.ErrInvalid, op.String() + ": " + err.Error()}
	}
	if len(b) == 0 {
		return "", &dbFail{abi.ErrInvalid, op.String() + ": empty SQL"}
	}
	return string(b), nil
}

func noMoreArgs(args *abi.Values, op abi.Op) *dbFail {
	if args.More() {
		return &dbFail{abi.ErrInvalid, fmt.Sprintf("%s: %d unexpected trailing argument bytes", op, args.Remaining())}
	}
	return nil
}

// opCtx returns the context for one statement: the call's, narrowed by the
// database's query timeout when one is configured.
func opCtx(c *Call, db string) (context.Context, context.CancelFunc) {
	ctx := c.Ctx
	if ctx == nil {
		ctx = context.Background()
	}
	if c.Services == nil {
		return ctx, nil
	}
	if qt, ok := c.Services.SQL.(interface{ QueryTimeout(string) time.Duration }); ok {
		if d := qt.QueryTimeout(db); d > 0 {
			return context.WithTimeout(ctx, d)
		}
	}
	return ctx, nil
}

// stmtCacher is implemented by SQL backends that cache prepared statements
// (sqldb.Set does): a repeated query then costs one round trip on the
// binary protocol instead of being parsed by the server every time.
type stmtCacher interface {
	Stmt(ctx context.Context, pool *sql.DB, query string) *sqldb.CachedStmt
}

func cachedStmt(c *Call, ctx context.Context, pool *sql.DB, query string) *sqldb.CachedStmt {
	if c.Services == nil {
		return nil
	}
	if sc, ok := c.Services.SQL.(stmtCacher); ok {
		return sc.Stmt(ctx, pool, query)
	}
	return nil
}

// classify maps a database error to a reply code and message.
func classify(ctx context.Context, db string, err error) *dbFail {
	switch {
	case ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled):
		cause := ctx.Err()
		if cause == nil {
			cause = err
		}
		return &dbFail{abi.ErrTimeout, fmt.Sprintf("database %q: %v", db, cause)}
	case errors.Is(err, sql.ErrTxDone):
		return &dbFail{abi.ErrInvalid, fmt.Sprintf("database %q: %v", db, err)}
	case sqldb.IsUnavailable(err):
		return &dbFail{abi.ErrUnavailable, fmt.Sprintf("database %q unavailable: %v", db, err)}
	}
	// The driver's own message, unprefixed, so guests can match on it
	// (for example MySQL's "Error 1062 (23000): Duplicate entry ...").
	return &dbFail{abi.ErrSQL, err.Error()}
}

func opDBQuery(c *Call, args *abi.Values, reply []byte) []byte {
	t, f := resolveDB(c, args, abi.OpDBQuery)
	if f != nil {
		return dbReply(reply, "", abi.OpDBQuery, f)
	}
	q, f := readSQL(args, abi.OpDBQuery)
	if f != nil {
		return dbReply(reply, t.name, abi.OpDBQuery, f)
	}
	s := getScratch()
	defer s.release()
	if s.params, f = readParams(args, s.params, abi.OpDBQuery); f != nil {
		return dbReply(reply, t.name, abi.OpDBQuery, f)
	}
	if t.tx == nil && t.dialect == sqldb.DriverSQLite && t.read == t.primary {
		if f := sqliteWriterHeld(c, t.name, abi.OpDBQuery); f != nil {
			return dbReply(reply, t.name, abi.OpDBQuery, f)
		}
	}
	start := time.Now()
	var rows *sql.Rows
	var err error
	ctx, cancel := opCtx(c, t.name)
	var cached *sqldb.CachedStmt
	switch {
	case t.tx != nil:
		rows, err = t.tx.tx.QueryContext(ctx, q, s.params...)
	default:
		if cached = cachedStmt(c, ctx, t.read, q); cached != nil {
			rows, err = cached.Stmt.QueryContext(ctx, s.params...)
		} else {
			rows, err = t.read.QueryContext(ctx, q, s.params...)
		}
	}
	reply, f = s.writeRows(ctx, reply, t.name, t.dialect, rows, err)
	if cached != nil {
		cached.Release()
	}
	if cancel != nil {
		cancel()
	}
	observe(t.name, abi.OpDBQuery, start)
	return dbReply(reply, t.name, abi.OpDBQuery, f)
}

func opDBExec(c *Call, args *abi.Values, reply []byte) []byte {
	t, f := resolveDB(c, args, abi.OpDBExec)
	if f != nil {
		return dbReply(reply, "", abi.OpDBExec, f)
	}
	q, f := readSQL(args, abi.OpDBExec)
	if f != nil {
		return dbReply(reply, t.name, abi.OpDBExec, f)
	}
	s := getScratch()
	defer s.release()
	if s.params, f = readParams(args, s.params, abi.OpDBExec); f != nil {
		return dbReply(reply, t.name, abi.OpDBExec, f)
	}
	if t.tx == nil && t.dialect == sqldb.DriverSQLite {
		if f := sqliteWriterHeld(c, t.name, abi.OpDBExec); f != nil {
			return dbReply(reply, t.name, abi.OpDBExec, f)
		}
	}
	start := time.Now()
	var res sql.Result
	var err error
	ctx, cancel := opCtx(c, t.name)
	switch {
	case t.tx != nil:
		res, err = t.tx.tx.ExecContext(ctx, q, s.params...)
	default:
		if cached := cachedStmt(c, ctx, t.primary, q); cached != nil {
			res, err = cached.Stmt.ExecContext(ctx, s.params...)
			cached.Release()
		} else {
			res, err = t.primary.ExecContext(ctx, q, s.params...)
		}
	}
	reply, f = writeResult(ctx, reply, t.name, res, err)
	if cancel != nil {
		cancel()
	}
	observe(t.name, abi.OpDBExec, start)
	return dbReply(reply, t.name, abi.OpDBExec, f)
}

func opDBBegin(c *Call, args *abi.Values, reply []byte) []byte {
	name, err := args.Bytes("database")
	if err != nil {
		return dbReply(reply, "", abi.OpDBBegin, &dbFail{abi.ErrInvalid, "db.begin: " + err.Error()})
	}
	t, f := resolveName(c, name, abi.OpDBBegin)
	if f == nil {
		f = noMoreArgs(args, abi.OpDBBegin)
	}
	if f == nil && t.dialect == sqldb.DriverSQLite {
		f = sqliteWriterHeld(c, t.name, abi.OpDBBegin)
	}
	if f != nil {
		return dbReply(reply, t.name, abi.OpDBBegin, f)
	}
	start := time.Now()
	// The transaction lives until commit, rollback or the end of the call,
	// so it takes the call's context, not a per-statement one: when the
	// call's deadline passes, database/sql rolls it back.
	ctx := c.Ctx
	if ctx == nil {
		ctx = context.Background()
	}
	tx, err := t.primary.BeginTx(ctx, nil)
	observe(t.name, abi.OpDBBegin, start)
	if err != nil {
		return dbReply(reply, t.name, abi.OpDBBegin, classify(ctx, t.name, err))
	}
	log := c.Log
	if log == nil {
		log = slog.Default()
	}
	id := c.AddHandle(&dbTx{tx: tx, db: t.name, dialect: t.dialect, log: log})
	return dbReply(abi.AppendInt(abi.AppendReplyOK(reply), id), t.name, abi.OpDBBegin, nil)
}

func opDBCommit(c *Call, args *abi.Values, reply []byte) []byte {
	return endTx(c, args, reply, abi.OpDBCommit)
}

func opDBRollback(c *Call, args *abi.Values, reply []byte) []byte {
	return endTx(c, args, reply, abi.OpDBRollback)
}

func endTx(c *Call, args *abi.Values, reply []byte, op abi.Op) []byte {
	id, err := args.Int("transaction")
	if err != nil {
		return dbReply(reply, "", op, &dbFail{abi.ErrInvalid, op.String() + ": " + err.Error()})
	}
	tx, f := lookupTx(c, id, op)
	if f == nil {
		f = noMoreArgs(args, op)
	}
	if f != nil {
		db := ""
		if tx != nil {
			db = tx.db
		}
		return dbReply(reply, db, op, f)
	}
	start := time.Now()
	if op == abi.OpDBCommit {
		err = tx.tx.Commit()
	} else {
		err = tx.tx.Rollback()
	}
	// Either way the transaction is over: database/sql never reuses a Tx
	// whose Commit failed.
	tx.done = true
	c.DropHandle(id)
	observe(tx.db, op, start)
	if err != nil {
		ctx := c.Ctx
		if ctx == nil {
			ctx = context.Background()
		}
		return dbReply(reply, tx.db, op, classify(ctx, tx.db, err))
	}
	return dbReply(abi.AppendReplyOK(reply), tx.db, op, nil)
}

func opDBPrepare(c *Call, args *abi.Values, reply []byte) []byte {
	t, f := resolveDB(c, args, abi.OpDBPrepare)
	if f != nil {
		return dbReply(reply, "", abi.OpDBPrepare, f)
	}
	q, f := readSQL(args, abi.OpDBPrepare)
	if f == nil {
		f = noMoreArgs(args, abi.OpDBPrepare)
	}
	if f == nil && t.tx == nil && t.dialect == sqldb.DriverSQLite {
		f = sqliteWriterHeld(c, t.name, abi.OpDBPrepare)
	}
	if f != nil {
		return dbReply(reply, t.name, abi.OpDBPrepare, f)
	}
	start := time.Now()
	ctx, cancel := opCtx(c, t.name)
	var st *sql.Stmt
	var err error
	if t.tx != nil {
		st, err = t.tx.tx.PrepareContext(ctx, q)
	} else {
		st, err = t.primary.PrepareContext(ctx, q)
	}
	if cancel != nil {
		cancel()
	}
	observe(t.name, abi.OpDBPrepare, start)
	if err != nil {
		return dbReply(reply, t.name, abi.OpDBPrepare, classify(ctx, t.name, err))
	}
	id := c.AddHandle(&dbStmt{stmt: st, db: t.name, dialect: t.dialect, tx: t.tx})
	return dbReply(abi.AppendInt(abi.AppendReplyOK(reply), id), t.name, abi.OpDBPrepare, nil)
}

func opDBStmtQuery(c *Call, args *abi.Values, reply []byte) []byte {
	_, st, f := lookupStmt(c, args, abi.OpDBStmtQuery)
	if f != nil {
		return dbReply(reply, "", abi.OpDBStmtQuery, f)
	}
	if st.tx == nil && st.dialect == sqldb.DriverSQLite {
		if f := sqliteWriterHeld(c, st.db, abi.OpDBStmtQuery); f != nil {
			return dbReply(reply, st.db, abi.OpDBStmtQuery, f)
		}
	}
	s := getScratch()
	defer s.release()
	if s.params, f = readParams(args, s.params, abi.OpDBStmtQuery); f != nil {
		return dbReply(reply, st.db, abi.OpDBStmtQuery, f)
	}
	start := time.Now()
	ctx, cancel := opCtx(c, st.db)
	rows, err := st.stmt.QueryContext(ctx, s.params...)
	reply, f = s.writeRows(ctx, reply, st.db, st.dialect, rows, err)
	if cancel != nil {
		cancel()
	}
	observe(st.db, abi.OpDBStmtQuery, start)
	return dbReply(reply, st.db, abi.OpDBStmtQuery, f)
}

func opDBStmtExec(c *Call, args *abi.Values, reply []byte) []byte {
	_, st, f := lookupStmt(c, args, abi.OpDBStmtExec)
	if f != nil {
		return dbReply(reply, "", abi.OpDBStmtExec, f)
	}
	if st.tx == nil && st.dialect == sqldb.DriverSQLite {
		if f := sqliteWriterHeld(c, st.db, abi.OpDBStmtExec); f != nil {
			return dbReply(reply, st.db, abi.OpDBStmtExec, f)
		}
	}
	s := getScratch()
	defer s.release()
	if s.params, f = readParams(args, s.params, abi.OpDBStmtExec); f != nil {
		return dbReply(reply, st.db, abi.OpDBStmtExec, f)
	}
	start := time.Now()
	ctx, cancel := opCtx(c, st.db)
	res, err := st.stmt.ExecContext(ctx, s.params...)
	reply, f = writeResult(ctx, reply, st.db, res, err)
	if cancel != nil {
		cancel()
	}
	observe(st.db, abi.OpDBStmtExec, start)
	return dbReply(reply, st.db, abi.OpDBStmtExec, f)
}

func opDBStmtClose(c *Call, args *abi.Values, reply []byte) []byte {
	id, err := args.Int("statement")
	if err != nil {
		return dbReply(reply, "", abi.OpDBStmtClose, &dbFail{abi.ErrInvalid, "db.stmt_close: " + err.Error()})
	}
	st, ok := c.LookupHandle(id).(*dbStmt)
	if !ok {
		return dbReply(reply, "", abi.OpDBStmtClose, &dbFail{abi.ErrInvalid, fmt.Sprintf("db.stmt_close: %d is not an open statement handle", id)})
	}
	if f := noMoreArgs(args, abi.OpDBStmtClose); f != nil {
		return dbReply(reply, st.db, abi.OpDBStmtClose, f)
	}
	c.DropHandle(id)
	st.stmt.Close() // its only error is a failed server-side close, which the pool handles
	return dbReply(abi.AppendReplyOK(reply), st.db, abi.OpDBStmtClose, nil)
}

// writeResult appends an exec reply: rows affected, last insert id.
func writeResult(ctx context.Context, reply []byte, db string, res sql.Result, err error) ([]byte, *dbFail) {
	if err != nil {
		return reply, classify(ctx, db, err)
	}
	// Drivers that cannot tell report an error; the guest sees 0.
	affected, _ := res.RowsAffected()
	lastID, _ := res.LastInsertId()
	reply = abi.AppendReplyOK(reply)
	reply = abi.AppendInt(reply, affected)
	return abi.AppendInt(reply, lastID), nil
}

// writeRows appends a query reply: column count, names, row-major values.
// It always closes rows.
func (s *dbScratch) writeRows(ctx context.Context, reply []byte, db, dialect string, rows *sql.Rows, err error) ([]byte, *dbFail) {
	if err != nil {
		return reply, classify(ctx, db, err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return reply, classify(ctx, db, err)
	}
	base := len(reply)
	reply = abi.AppendReplyOK(reply)
	reply = abi.AppendInt(reply, int64(len(cols)))
	for _, name := range cols {
		reply = abi.AppendString(reply, name)
	}
	w := &s.rw
	w.buf, w.rows, w.mysql = reply, rows, dialect == sqldb.DriverMySQL
	if cap(w.binary) < len(cols) {
		w.binary = make([]int8, len(cols))
	}
	w.binary = w.binary[:len(cols)]
	clear(w.binary)
	for len(s.cells) < len(cols) {
		s.cells = append(s.cells, rowCell{})
		s.dest = append(s.dest, nil)
		// Appending may have moved s.cells: point every dest at the
		// current backing array.
		for i := range s.cells {
			s.dest[i] = &s.cells[i]
		}
	}
	for i := range cols {
		s.cells[i] = rowCell{w: w, i: i}
	}
	dest := s.dest[:len(cols)]
	n := 0
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			if w.err != nil {
				err = w.err
			}
			if errors.Is(err, errUnsupportedValue) {
				return reply[:base], &dbFail{abi.ErrInternal, fmt.Sprintf("database %q: %v", db, err)}
			}
			return reply[:base], classify(ctx, db, err)
		}
		n++
		if len(w.buf)-base > MaxSQLResultBytes {
			return reply[:base], &dbFail{abi.ErrTooLarge, fmt.Sprintf(
				"database %q: result exceeds %d MiB after %d rows; add LIMIT or paginate", db, MaxSQLResultBytes>>20, n)}
		}
	}
	if err := rows.Err(); err != nil {
		return reply[:base], classify(ctx, db, err)
	}
	reply = w.buf
	w.buf = nil
	return reply, nil
}

var errUnsupportedValue = errors.New("unsupported driver value")

// rowWriter encodes driver values straight into the reply: database/sql
// hands a Scanner the driver's value without copying it, so a row costs no
// allocation here.
type rowWriter struct {
	buf    []byte
	rows   *sql.Rows
	mysql  bool
	binary []int8 // per column, mysql only: 0 not yet known, 1 text, 2 binary
	err    error
}

func (w *rowWriter) reset() {
	w.buf, w.rows, w.err = nil, nil, nil
}

type rowCell struct {
	w *rowWriter
	i int
}

// Scan implements sql.Scanner.
func (c *rowCell) Scan(src any) error { return c.w.put(c.i, src) }

func (w *rowWriter) put(col int, src any) error {
	b := w.buf
	switch v := src.(type) {
	case nil:
		b = abi.AppendNull(b)
	case int64:
		b = abi.AppendInt(b, v)
	case uint64:
		if v <= math.MaxInt64 {
			b = abi.AppendInt(b, int64(v))
		} else {
			var at int
			b, at = beginString(b)
			b = endString(strconv.AppendUint(b, v, 10), at)
		}
	case float64:
		b = abi.AppendFloat(b, v)
	case float32:
		// Go through the shortest decimal form, so FLOAT 1.1 arrives as
		// 1.1, not 1.100000023841858.
		var tmp [32]byte
		f, _ := strconv.ParseFloat(string(strconv.AppendFloat(tmp[:0], float64(v), 'g', -1, 32)), 64)
		b = abi.AppendFloat(b, f)
	case bool:
		b = abi.AppendBool(b, v)
	case string:
		b = abi.AppendString(b, v)
	case []byte:
		if w.isBinary(col) {
			b = abi.AppendBytesValue(b, v)
		} else {
			b = abi.AppendStringBytes(b, v)
		}
	case time.Time:
		var at int
		b, at = beginString(b)
		b = endString(v.AppendFormat(b, time.RFC3339Nano), at)
	case int:
		b = abi.AppendInt(b, int64(v))
	case int32:
		b = abi.AppendInt(b, int64(v))
	default:
		w.err = fmt.Errorf("%w %T in column %d", errUnsupportedValue, src, col+1)
		return w.err
	}
	w.buf = b
	return nil
}

// beginString starts a string value whose bytes the caller appends next;
// endString then fills in its length.
func beginString(b []byte) ([]byte, int) {
	b = append(b, byte(abi.KindString), 0, 0, 0, 0)
	return b, len(b)
}

func endString(b []byte, at int) []byte {
	n := uint32(len(b) - at)
	b[at-4], b[at-3], b[at-2], b[at-1] = byte(n), byte(n>>8), byte(n>>16), byte(n>>24)
	return b
}

// isBinary tells a binary column from a text one. SQLite's driver already
// returns text as string and blobs as []byte; MySQL returns both as []byte,
// so the column types are read, once per result, the first time a column
// yields bytes.
func (w *rowWriter) isBinary(col int) bool {
	if !w.mysql {
		return true
	}
	if w.binary[col] == 0 {
		types, err := w.rows.ColumnTypes()
		for i := range w.binary {
			w.binary[i] = 1
			if err == nil && i < len(types) {
				switch types[i].DatabaseTypeName() {
				case "BLOB", "TINYBLOB", "MEDIUMBLOB", "LONGBLOB", "BINARY", "VARBINARY", "BIT", "GEOMETRY":
					w.binary[i] = 2
				}
			}
		}
	}
	return w.binary[col] == 2
}

// Metrics. Counters and observers are resolved once per database, op and
// outcome, so the hot path does not hash label values.

type dbMetrics struct {
	db    string
	dur   [dbOps]atomic.Pointer[prometheus.Observer]
	count [dbOps][dbCodes]atomic.Pointer[prometheus.Counter]
}

const (
	dbOps   = int(abi.OpDBStmtClose-abi.OpDBQuery) + 1
	dbCodes = int(abi.ErrSQL) + 1
)

var dbMetricSets = struct {
	sync.RWMutex
	m map[string]*dbMetrics
}{m: map[string]*dbMetrics{}}

func metricsFor(db string) *dbMetrics {
	dbMetricSets.RLock()
	m := dbMetricSets.m[db]
	dbMetricSets.RUnlock()
	if m != nil {
		return m
	}
	dbMetricSets.Lock()
	defer dbMetricSets.Unlock()
	if m = dbMetricSets.m[db]; m == nil {
		m = &dbMetrics{db: db}
		dbMetricSets.m[db] = m
	}
	return m
}

func observe(db string, op abi.Op, start time.Time) {
	i := int(op - abi.OpDBQuery)
	m := metricsFor(db)
	p := m.dur[i].Load()
	if p == nil {
		o := metrics.DBOpDuration.WithLabelValues(db, op.String())
		p = &o
		m.dur[i].Store(p)
	}
	(*p).Observe(time.Since(start).Seconds())
}

// dbReply counts the outcome of op and, for a failure, replaces whatever
// was appended with the error reply.
func dbReply(reply []byte, db string, op abi.Op, f *dbFail) []byte {
	code := abi.OK
	if f != nil {
		code = f.code
	}
	i := int(op - abi.OpDBQuery)
	if int(code) < dbCodes {
		m := metricsFor(db)
		p := m.count[i][code].Load()
		if p == nil {
			ctr := metrics.DBOps.WithLabelValues(db, op.String(), code.String())
			p = &ctr
			m.count[i][code].Store(p)
		}
		(*p).Inc()
	}
	if f == nil {
		return reply
	}
	return abi.AppendReplyError(reply[:0], f.code, f.msg)
}
