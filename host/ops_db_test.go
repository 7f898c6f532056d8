package host

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/wasmcorn/wasmcorn/abi"
	"github.com/wasmcorn/wasmcorn/host/backend/sqldb"
	"github.com/wasmcorn/wasmcorn/internal/metrics"
	"github.com/wasmcorn/wasmcorn/internal/testplugins"
	"github.com/wasmcorn/wasmcorn/internal/testsvc"
)

// dbArgs encodes Go values as an argument message.
func dbArgs(vals ...any) []byte {
	var b []byte
	for _, v := range vals {
		switch v := v.(type) {
		case nil:
			b = abi.AppendNull(b)
		case int:
			b = abi.AppendInt(b, int64(v))
		case int64:
			b = abi.AppendInt(b, v)
		case float64:
			b = abi.AppendFloat(b, v)
		case string:
			b = abi.AppendString(b, v)
		case []byte:
			b = abi.AppendBytesValue(b, v)
		case bool:
			b = abi.AppendBool(b, v)
		default:
			panic(fmt.Sprintf("dbArgs: %T", v))
		}
	}
	return b
}

// dbCall runs op through the dispatcher, as the engine would.
func dbCall(c *Call, op abi.Op, vals ...any) (abi.Values, error) {
	return abi.DecodeReply(op, dispatch(c, uint32(op), dbArgs(vals...), nil))
}

type dbRows struct {
	cols []string
	rows [][]abi.Value
}

func decodeRows(vs abi.Values) (dbRows, error) {
	var r dbRows
	n, err := vs.Int("ncols")
	if err != nil {
		return r, err
	}
	for range n {
		name, err := vs.Bytes("column name")
		if err != nil {
			return r, err
		}
		r.cols = append(r.cols, string(name))
	}
	for vs.More() {
		row := make([]abi.Value, n)
		for i := range row {
			if row[i], err = vs.Next(); err != nil {
				return r, err
			}
			// Copy: the reply buffer is not ours to keep.
			row[i].B = bytes.Clone(row[i].B)
		}
		r.rows = append(r.rows, row)
	}
	return r, nil
}

func dbQuery(c *Call, op abi.Op, target any, rest ...any) (dbRows, error) {
	vs, err := dbCall(c, op, append([]any{target}, rest...)...)
	if err != nil {
		return dbRows{}, err
	}
	return decodeRows(vs)
}

func mustQuery(t testing.TB, c *Call, target any, q string, params ...any) dbRows {
	t.Helper()
	r, err := dbQuery(c, abi.OpDBQuery, target, append([]any{q}, params...)...)
	if err != nil {
		t.Fatalf("db.query %q: %v", q, err)
	}
	return r
}

func dbExec(c *Call, op abi.Op, target any, rest ...any) (affected, lastID int64, err error) {
	vs, err := dbCall(c, op, append([]any{target}, rest...)...)
	if err != nil {
		return 0, 0, err
	}
	if affected, err = vs.Int("affected"); err != nil {
		return
	}
	lastID, err = vs.Int("last id")
	return
}

func mustExec(t testing.TB, c *Call, target any, q string, params ...any) (affected, lastID int64) {
	t.Helper()
	a, id, err := dbExec(c, abi.OpDBExec, target, append([]any{q}, params...)...)
	if err != nil {
		t.Fatalf("db.exec %q: %v", q, err)
	}
	return a, id
}

func mustHandle(t testing.TB, c *Call, op abi.Op, vals ...any) int64 {
	t.Helper()
	vs, err := dbCall(c, op, vals...)
	if err != nil {
		t.Fatalf("%s: %v", op, err)
	}
	id, err := vs.Int("handle")
	if err != nil {
		t.Fatalf("%s reply: %v", op, err)
	}
	return id
}

// wantCode fails unless err is a reply error with code and a message
// containing every one of parts.
func wantCode(t testing.TB, err error, code abi.Code, parts ...string) {
	t.Helper()
	var re *abi.ReplyError
	if !errors.As(err, &re) {
		t.Fatalf("want %s reply, got %v", code, err)
	}
	if re.Code != code {
		t.Fatalf("want %s reply, got %s: %s", code, re.Code, re.Msg)
	}
	for _, p := range parts {
		if !strings.Contains(re.Msg, p) {
			t.Fatalf("%s message %q does not contain %q", code, re.Msg, p)
		}
	}
}

func newDBCall(sql SQL, grants ...string) *Call {
	return &Call{
		Ctx:      context.Background(),
		Plugin:   "testplugin",
		Grants:   &Grants{Databases: grants},
		Services: &Services{SQL: sql},
		Log:      slog.Default(),
	}
}

// dbBackend is one database engine the shared tests run against.
type dbBackend struct {
	name    string
	set     *sqldb.Set
	mariadb *testsvc.MariaDB // nil for SQLite
	ddl     string           // CREATE TABLE items for this dialect
}

const (
	sqliteItems = `CREATE TABLE items (id INTEGER PRIMARY KEY AUTOINCREMENT, i INTEGER, f REAL, s TEXT,
		b BLOB, t DATETIME, ok BOOLEAN)`
	mysqlItems = `CREATE TABLE items (id BIGINT AUTO_INCREMENT PRIMARY KEY, i BIGINT, f DOUBLE, s MEDIUMTEXT,
		b LONGBLOB, t DATETIME(6), ok BOOLEAN)`
)

func openSet(t testing.TB, dataDir string, cfgs map[string]sqldb.Config) *sqldb.Set {
	t.Helper()
	s, err := sqldb.Open(dataDir, cfgs)
	if err != nil {
		t.Fatalf("sqldb.Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func sqliteBackend(t testing.TB) dbBackend {
	return dbBackend{name: "sqlite", set: openSet(t, t.TempDir(), map[string]sqldb.Config{"main": {}}), ddl: sqliteItems}
}

func mariadbBackend(t testing.TB, m *testsvc.MariaDB, db string) dbBackend {
	m.Exec("CREATE DATABASE IF NOT EXISTS " + db)
	set := openSet(t, "", map[string]sqldb.Config{"main": {Driver: sqldb.DriverMySQL, DSN: m.DSN(db)}})
	return dbBackend{name: "mariadb", set: set, mariadb: m, ddl: mysqlItems}
}

// dbSuite runs every case of cases against SQLite and, unless -short, one
// throwaway MariaDB server shared by the cases (each case gets its own
// database on it). extra runs MariaDB-only cases on the same server.
func dbSuite(t *testing.T, cases []dbCase, mariadbOnly ...dbCase) {
	t.Run("sqlite", func(t *testing.T) {
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) { tc.f(t, sqliteBackend(t)) })
		}
	})
	t.Run("mariadb", func(t *testing.T) {
		if testing.Short() {
			t.Skip("starts MariaDB")
		}
		m := testsvc.StartMariaDB(t)
		n := 0
		for _, tc := range append(cases, mariadbOnly...) {
			n++
			db := fmt.Sprintf("case%d", n)
			t.Run(tc.name, func(t *testing.T) { tc.f(t, mariadbBackend(t, m, db)) })
		}
	})
}

type dbCase struct {
	name string
	f    func(t *testing.T, b dbBackend)
}

func TestDB(t *testing.T) {
	dbSuite(t, []dbCase{
		{"exec_and_query", testDBExecAndQuery},
		{"types", testDBTypes},
		{"tx_commit", testDBTxCommit},
		{"tx_rollback", testDBTxRollback},
		{"tx_rolled_back_at_call_end", testDBTxEnd},
		{"prepared", testDBPrepared},
		{"prepared_in_tx", testDBPreparedInTx},
		{"denied", testDBDenied},
		{"too_large", testDBTooLarge},
		{"sql_error", testDBSQLError},
		{"invalid_args", testDBInvalidArgs},
		{"timeout", testDBTimeout},
		{"concurrent_writers", testDBConcurrentWriters},
		{"statement_beside_open_tx", testDBBesideTx},
	},
		dbCase{"mysql_types", testDBMySQLTypes},
		dbCase{"replica_routing", testDBReplicaRouting},
		dbCase{"connections_bounded", testDBConnectionsBounded},
		dbCase{"timestamp_in_utc", testDBTimestampUTC},
	)
}

func setupItems(t *testing.T, b dbBackend) *Call {
	c := newDBCall(b.set, "main")
	mustExec(t, c, "main", b.ddl)
	return c
}

func testDBExecAndQuery(t *testing.T, b dbBackend) {
	c := setupItems(t, b)
	var lastID int64
	for i, s := range []string{"a", "b", "c"} {
		affected, id := mustExec(t, c, "main", "INSERT INTO items (i, s) VALUES (?, ?)", i*10, s)
		if affected != 1 {
			t.Fatalf("insert %q: affected %d, want 1", s, affected)
		}
		if id <= lastID {
			t.Fatalf("insert %q: last insert id %d not above previous %d", s, id, lastID)
		}
		lastID = id
	}
	r := mustQuery(t, c, "main", "SELECT i, s FROM items WHERE i >= ? ORDER BY i", 10)
	if want := []string{"i", "s"}; fmt.Sprint(r.cols) != fmt.Sprint(want) {
		t.Fatalf("columns %v, want %v", r.cols, want)
	}
	if len(r.rows) != 2 || r.rows[0][0].I != 10 || r.rows[0][1].Str() != "b" || r.rows[1][0].I != 20 || r.rows[1][1].Str() != "c" {
		t.Fatalf("rows %+v", r.rows)
	}
	affected, _ := mustExec(t, c, "main", "UPDATE items SET s = ? WHERE i < ?", "z", 15)
	if affected != 2 {
		t.Fatalf("update affected %d, want 2", affected)
	}
	// An empty result still names its columns.
	r = mustQuery(t, c, "main", "SELECT id, s FROM items WHERE s = ?", "nothing")
	if len(r.cols) != 2 || len(r.rows) != 0 {
		t.Fatalf("empty result: %+v", r)
	}
}

func testDBTypes(t *testing.T, b dbBackend) {
	c := setupItems(t, b)
	blob := make([]byte, 4<<20)
	for i := range blob {
		blob[i] = byte(i * 7)
	}
	small := []byte{0, 1, 0xff, 0}
	rows := []struct {
		name    string
		i       any
		f       any
		s       any
		b       any
		t       any
		ok      any
		wantT   string
		wantOK  int64
		allNull bool
	}{
		{name: "values", i: int64(math.MaxInt64), f: 3.25, s: "héllo 👋 'quoted' \\ back", b: small,
			t: "2024-05-06 07:08:09.123456", ok: true, wantT: "2024-05-06T07:08:09.123456Z", wantOK: 1},
		{name: "negative", i: int64(math.MinInt64), f: -1e-300, s: "", b: []byte{}, t: "1999-12-31 23:59:59",
			ok: false, wantT: "1999-12-31T23:59:59Z", wantOK: 0},
		{name: "large blob", i: int64(1), f: 0.0, s: strings.Repeat("x", 100000), b: blob, t: "2000-01-01 00:00:00",
			ok: true, wantT: "2000-01-01T00:00:00Z", wantOK: 1},
		{name: "nulls", allNull: true},
	}
	for _, r := range rows {
		mustExec(t, c, "main", "INSERT INTO items (i, f, s, b, t, ok) VALUES (?, ?, ?, ?, ?, ?)", r.i, r.f, r.s, r.b, r.t, r.ok)
	}
	const sel = "SELECT i, f, s, b, t, ok FROM items ORDER BY id"
	got := mustQuery(t, c, "main", sel)
	if len(got.rows) != len(rows) {
		t.Fatalf("%d rows, want %d", len(got.rows), len(rows))
	}
	// The second and third runs go through the statement cache (a prepared
	// statement; MySQL's binary protocol): the values must not change.
	for run := 2; run <= 3; run++ {
		again := mustQuery(t, c, "main", sel)
		if fmt.Sprint(again) != fmt.Sprint(got) {
			t.Fatalf("run %d differs from the first (unprepared) run", run)
		}
	}
	for n, r := range rows {
		t.Run(r.name, func(t *testing.T) {
			g := got.rows[n]
			if r.allNull {
				for i, v := range g {
					if v.Kind != abi.KindNull {
						t.Errorf("column %s: %s, want null", got.cols[i], v.Kind)
					}
				}
				return
			}
			check := func(col int, kind abi.Kind, ok bool, desc string) {
				t.Helper()
				if g[col].Kind != kind || !ok {
					t.Errorf("column %s: got %s %v / %q, want %s %s", got.cols[col], g[col].Kind, g[col].I, trunc(g[col].B), kind, desc)
				}
			}
			check(0, abi.KindInt, g[0].I == r.i.(int64), fmt.Sprint(r.i))
			check(1, abi.KindFloat, g[1].F == r.f.(float64), fmt.Sprint(r.f))
			check(2, abi.KindString, string(g[2].B) == r.s.(string), trunc([]byte(r.s.(string))))
			check(3, abi.KindBytes, bytes.Equal(g[3].B, r.b.([]byte)), fmt.Sprintf("%d bytes", len(r.b.([]byte))))
			check(4, abi.KindString, string(g[4].B) == r.wantT, r.wantT)
			// Neither engine has a boolean column type: a bool is stored
			// and read back as the integer 0 or 1.
			check(5, abi.KindInt, g[5].I == r.wantOK, fmt.Sprint(r.wantOK))
		})
	}
}

func trunc(b []byte) string {
	if len(b) > 40 {
		return string(b[:40]) + "..."
	}
	return string(b)
}

func testDBTxCommit(t *testing.T, b dbBackend) {
	c := setupItems(t, b)
	tx := mustHandle(t, c, abi.OpDBBegin, "main")
	if _, id := mustExec(t, c, tx, "INSERT INTO items (s) VALUES (?)", "in tx"); id == 0 {
		t.Fatal("insert in tx: last insert id 0")
	}
	if r := mustQuery(t, c, tx, "SELECT s FROM items"); len(r.rows) != 1 || r.rows[0][0].Str() != "in tx" {
		t.Fatalf("the transaction does not see its own insert: %+v", r.rows)
	}
	// Another call (another request) does not see uncommitted rows.
	other := newDBCall(b.set, "main")
	if r := mustQuery(t, other, "main", "SELECT s FROM items"); len(r.rows) != 0 {
		t.Fatalf("uncommitted row visible outside the transaction: %+v", r.rows)
	}
	if _, err := dbCall(c, abi.OpDBCommit, tx); err != nil {
		t.Fatalf("commit: %v", err)
	}
	if r := mustQuery(t, other, "main", "SELECT s FROM items"); len(r.rows) != 1 {
		t.Fatalf("committed row not visible: %+v", r.rows)
	}
	_, err := dbCall(c, abi.OpDBCommit, tx)
	wantCode(t, err, abi.ErrInvalid, "not an open transaction")
	_, _, err = dbExec(c, abi.OpDBExec, tx, "INSERT INTO items (s) VALUES ('late')")
	wantCode(t, err, abi.ErrInvalid)
	c.End()
	other.End()
}

func testDBTxRollback(t *testing.T, b dbBackend) {
	c := setupItems(t, b)
	tx := mustHandle(t, c, abi.OpDBBegin, "main")
	mustExec(t, c, tx, "INSERT INTO items (s) VALUES (?)", "rolled back")
	if _, err := dbCall(c, abi.OpDBRollback, tx); err != nil {
		t.Fatalf("rollback: %v", err)
	}
	if r := mustQuery(t, c, "main", "SELECT s FROM items"); len(r.rows) != 0 {
		t.Fatalf("rolled back row visible: %+v", r.rows)
	}
	_, err := dbCall(c, abi.OpDBRollback, tx)
	wantCode(t, err, abi.ErrInvalid)
}

func testDBTxEnd(t *testing.T, b dbBackend) {
	c := setupItems(t, b)
	primary, _, _ := b.set.Pools("main")
	tx := mustHandle(t, c, abi.OpDBBegin, "main")
	mustExec(t, c, tx, "INSERT INTO items (s) VALUES (?)", "never committed")
	if n := primary.Stats().InUse; n != 1 {
		t.Fatalf("open transaction: %d primary connections in use, want 1", n)
	}
	c.End() // the guest returned without committing
	if n := primary.Stats().InUse; n != 0 {
		t.Fatalf("after End: %d primary connections still in use", n)
	}
	c.Ctx = context.Background()
	if r := mustQuery(t, c, "main", "SELECT s FROM items"); len(r.rows) != 0 {
		t.Fatalf("uncommitted row survived the end of the call: %+v", r.rows)
	}
	// The old handle number means nothing in the next call.
	_, err := dbCall(c, abi.OpDBCommit, tx)
	wantCode(t, err, abi.ErrInvalid)
	// The writer is free again: a new transaction can commit.
	tx = mustHandle(t, c, abi.OpDBBegin, "main")
	mustExec(t, c, tx, "INSERT INTO items (s) VALUES (?)", "second")
	if _, err := dbCall(c, abi.OpDBCommit, tx); err != nil {
		t.Fatal(err)
	}
	c.End()
}

func testDBPrepared(t *testing.T, b dbBackend) {
	c := setupItems(t, b)
	ins := mustHandle(t, c, abi.OpDBPrepare, "main", "INSERT INTO items (i, s) VALUES (?, ?)")
	for i := range 3 {
		affected, _, err := dbExec(c, abi.OpDBStmtExec, ins, i, fmt.Sprint("row", i))
		if err != nil || affected != 1 {
			t.Fatalf("stmt_exec %d: affected %d, %v", i, affected, err)
		}
	}
	sel := mustHandle(t, c, abi.OpDBPrepare, "main", "SELECT s FROM items WHERE i >= ? ORDER BY i")
	for _, tc := range []struct {
		min  int
		want string
	}{{0, "[row0 row1 row2]"}, {2, "[row2]"}, {5, "[]"}} {
		r, err := dbQuery(c, abi.OpDBStmtQuery, sel, tc.min)
		if err != nil {
			t.Fatalf("stmt_query %d: %v", tc.min, err)
		}
		var got []string
		for _, row := range r.rows {
			got = append(got, row[0].Str())
		}
		if fmt.Sprint(got) != tc.want && !(tc.want == "[]" && got == nil) {
			t.Fatalf("stmt_query i >= %d: %v, want %s", tc.min, got, tc.want)
		}
	}
	if _, err := dbCall(c, abi.OpDBStmtClose, ins); err != nil {
		t.Fatalf("stmt_close: %v", err)
	}
	_, _, err := dbExec(c, abi.OpDBStmtExec, ins, 9, "closed")
	wantCode(t, err, abi.ErrInvalid, "not an open statement")
	_, err = dbCall(c, abi.OpDBStmtClose, ins)
	wantCode(t, err, abi.ErrInvalid)
	// A transaction handle is not a statement handle and vice versa.
	tx := mustHandle(t, c, abi.OpDBBegin, "main")
	_, err = dbQuery(c, abi.OpDBStmtQuery, tx)
	wantCode(t, err, abi.ErrInvalid, "not an open statement")
	_, err = dbCall(c, abi.OpDBCommit, sel)
	wantCode(t, err, abi.ErrInvalid, "not an open transaction")
	c.End() // closes sel, rolls back tx
	_, err = dbQuery(c, abi.OpDBStmtQuery, sel, 0)
	wantCode(t, err, abi.ErrInvalid)
	_, err = dbCall(c, abi.OpDBPrepare, "main", "SELECT * FROM no_such_table")
	wantCode(t, err, abi.ErrSQL)
}

func testDBPreparedInTx(t *testing.T, b dbBackend) {
	c := setupItems(t, b)
	tx := mustHandle(t, c, abi.OpDBBegin, "main")
	st := mustHandle(t, c, abi.OpDBPrepare, tx, "INSERT INTO items (s) VALUES (?)")
	if _, _, err := dbExec(c, abi.OpDBStmtExec, st, "via stmt in tx"); err != nil {
		t.Fatal(err)
	}
	if _, err := dbCall(c, abi.OpDBCommit, tx); err != nil {
		t.Fatal(err)
	}
	_, _, err := dbExec(c, abi.OpDBStmtExec, st, "after commit")
	wantCode(t, err, abi.ErrInvalid, "transaction that already ended")
	if r := mustQuery(t, c, "main", "SELECT s FROM items"); len(r.rows) != 1 || r.rows[0][0].Str() != "via stmt in tx" {
		t.Fatalf("rows %+v", r.rows)
	}
	c.End()
}

func testDBDenied(t *testing.T, b dbBackend) {
	c := newDBCall(b.set, "other")
	want := `plugin "testplugin" has no grant for database "main" (add it to [grants] databases)`
	_, err := dbQuery(c, abi.OpDBQuery, "main", "SELECT 1")
	wantCode(t, err, abi.ErrDenied, want)
	_, _, err = dbExec(c, abi.OpDBExec, "main", "DELETE FROM items")
	wantCode(t, err, abi.ErrDenied, want)
	_, err = dbCall(c, abi.OpDBBegin, "main")
	wantCode(t, err, abi.ErrDenied, want)
	_, err = dbCall(c, abi.OpDBPrepare, "main", "SELECT 1")
	wantCode(t, err, abi.ErrDenied, want)
	// Granted but not configured.
	_, err = dbQuery(c, abi.OpDBQuery, "other", "SELECT 1")
	wantCode(t, err, abi.ErrUnavailable, `database "other" is granted`, "not configured")
	// No SQL backend at all.
	c = newDBCall(nil, "main")
	c.Services = &Services{}
	_, err = dbQuery(c, abi.OpDBQuery, "main", "SELECT 1")
	wantCode(t, err, abi.ErrUnavailable, "no SQL databases are configured")
}

func testDBTooLarge(t *testing.T, b dbBackend) {
	c := newDBCall(b.set, "main")
	blob := "zeroblob(1048576)"
	if b.mariadb != nil {
		blob = "REPEAT('x', 1048576)"
	}
	q := "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n+1 FROM r WHERE n < ?) SELECT n, " + blob + " FROM r"
	// Just under the limit: fine.
	r := mustQuery(t, c, "main", q, 15)
	if len(r.rows) != 15 || len(r.rows[14][1].B) != 1<<20 {
		t.Fatalf("15 x 1 MiB: %d rows", len(r.rows))
	}
	_, err := dbQuery(c, abi.OpDBQuery, "main", q, 40)
	wantCode(t, err, abi.ErrTooLarge, "result exceeds 16 MiB after 16 rows; add LIMIT or paginate")
	// The connection went back to the pool in a usable state.
	if r := mustQuery(t, c, "main", "SELECT 42"); len(r.rows) != 1 || r.rows[0][0].I != 42 {
		t.Fatalf("after too_large: %+v", r.rows)
	}
}

func testDBSQLError(t *testing.T, b dbBackend) {
	c := setupItems(t, b)
	_, err := dbQuery(c, abi.OpDBQuery, "main", "SELEKT 1")
	want := "syntax error"
	if b.mariadb != nil {
		want = "Error 1064 (42000)"
	}
	wantCode(t, err, abi.ErrSQL, want)
	mustExec(t, c, "main", "INSERT INTO items (id, s) VALUES (?, ?)", 1, "first")
	_, _, err = dbExec(c, abi.OpDBExec, "main", "INSERT INTO items (id, s) VALUES (?, ?)", 1, "duplicate")
	want = "UNIQUE constraint failed"
	if b.mariadb != nil {
		want = "Error 1062 (23000): Duplicate entry '1'"
	}
	wantCode(t, err, abi.ErrSQL, want)
	// A failed statement inside a transaction leaves the transaction usable.
	tx := mustHandle(t, c, abi.OpDBBegin, "main")
	_, _, err = dbExec(c, abi.OpDBExec, tx, "INSERT INTO nope VALUES (1)")
	wantCode(t, err, abi.ErrSQL)
	mustExec(t, c, tx, "INSERT INTO items (s) VALUES (?)", "after error")
	if _, err := dbCall(c, abi.OpDBCommit, tx); err != nil {
		t.Fatal(err)
	}
	if r := mustQuery(t, c, "main", "SELECT count(*) FROM items"); r.rows[0][0].I != 2 {
		t.Fatalf("count %v, want 2", r.rows[0][0].I)
	}
}

func testDBInvalidArgs(t *testing.T, b dbBackend) {
	c := setupItems(t, b)
	truncated := abi.AppendString(nil, "main")
	truncated = abi.AppendString(truncated, "SELECT ?")
	truncated = append(truncated, byte(abi.KindInt), 1, 2) // an int cut short
	cases := []struct {
		name string
		op   abi.Op
		msg  []byte
		want string
	}{
		{"query no args", abi.OpDBQuery, nil, "db.query"},
		{"query float target", abi.OpDBQuery, dbArgs(1.5, "SELECT 1"), "database name or a transaction handle"},
		{"query no sql", abi.OpDBQuery, dbArgs("main"), "sql"},
		{"query empty sql", abi.OpDBQuery, dbArgs("main", ""), "empty SQL"},
		{"query sql not a string", abi.OpDBQuery, dbArgs("main", 7), "want string or bytes"},
		{"query unknown tx", abi.OpDBQuery, dbArgs(999, "SELECT 1"), "999 is not an open transaction"},
		{"query truncated param", abi.OpDBQuery, truncated, "parameter 1"},
		{"exec unknown tx", abi.OpDBExec, dbArgs(-1, "SELECT 1"), "not an open transaction"},
		{"begin int", abi.OpDBBegin, dbArgs(1), "database"},
		{"begin trailing", abi.OpDBBegin, dbArgs("main", "extra"), "trailing"},
		{"commit string", abi.OpDBCommit, dbArgs("main"), "transaction"},
		{"rollback nothing", abi.OpDBRollback, nil, "transaction"},
		{"prepare trailing", abi.OpDBPrepare, dbArgs("main", "SELECT 1", 1), "trailing"},
		{"stmt_query none", abi.OpDBStmtQuery, nil, "statement"},
		{"stmt_exec unknown", abi.OpDBStmtExec, dbArgs(12345), "not an open statement"},
		{"stmt_close unknown", abi.OpDBStmtClose, dbArgs(12345), "not an open statement"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := abi.DecodeReply(tc.op, dispatch(c, uint32(tc.op), tc.msg, nil))
			wantCode(t, err, abi.ErrInvalid, tc.want)
		})
	}
}

func testDBTimeout(t *testing.T, b dbBackend) {
	c := newDBCall(b.set, "main")
	q := "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n+1 FROM r) SELECT count(*) FROM r"
	if b.mariadb != nil {
		q = "SELECT SLEEP(30)"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	c.Ctx = ctx
	start := time.Now()
	_, err := dbQuery(c, abi.OpDBQuery, "main", q)
	wantCode(t, err, abi.ErrTimeout, `database "main"`, "deadline exceeded")
	// Not a performance bound: it shows the op returned at the deadline
	// instead of waiting for a 30-second (or endless) statement.
	if d := time.Since(start); d > 15*time.Second {
		t.Fatalf("op returned after %s, long after its deadline", d)
	}
	// The pool is usable afterwards.
	c.Ctx = context.Background()
	if r := mustQuery(t, c, "main", "SELECT 1"); len(r.rows) != 1 {
		t.Fatal("no row after timeout")
	}
}

func testDBConcurrentWriters(t *testing.T, b dbBackend) {
	c := setupItems(t, b)
	const writers, perWriter = 8, 40
	var wg sync.WaitGroup
	errs := make(chan error, writers*perWriter)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			wc := newDBCall(b.set, "main")
			for i := range perWriter {
				wc.Ctx = ctx
				err := func() error {
					defer wc.End()
					vs, err := dbCall(wc, abi.OpDBBegin, "main")
					if err != nil {
						return err
					}
					tx, _ := vs.Int("tx")
					// Read then write in one transaction: the pattern that
					// fails with SQLITE_BUSY under deferred locking.
					if _, err := dbQuery(wc, abi.OpDBQuery, tx, "SELECT count(*) FROM items WHERE i = ?", w); err != nil {
						return err
					}
					if _, _, err := dbExec(wc, abi.OpDBExec, tx, "INSERT INTO items (i, s) VALUES (?, ?)", w, fmt.Sprint(i)); err != nil {
						return err
					}
					_, err = dbCall(wc, abi.OpDBCommit, tx)
					return err
				}()
				if err != nil {
					errs <- fmt.Errorf("writer %d, tx %d: %w", w, i, err)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if r := mustQuery(t, c, "main", "SELECT count(*) FROM items"); r.rows[0][0].I != writers*perWriter {
		t.Fatalf("%d rows, want %d", r.rows[0][0].I, writers*perWriter)
	}
}

func testDBMySQLTypes(t *testing.T, b dbBackend) {
	c := newDBCall(b.set, "main")
	mustExec(t, c, "main", `CREATE TABLE typed (d DECIMAL(10,2), u BIGINT UNSIGNED, fl FLOAT, vb VARBINARY(8),
		j JSON, dt DATE, tm TIME, e ENUM('x','y'), tiny TINYINT, txt VARCHAR(20))`)
	mustExec(t, c, "main", "INSERT INTO typed VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
		"12.34", "18446744073709551615", 1.1, []byte{0, 0xfe}, `{"a": 1}`, "2024-05-06", "12:34:56", "y", -3, "text")
	r := mustQuery(t, c, "main", "SELECT * FROM typed")
	if len(r.rows) != 1 {
		t.Fatalf("rows %+v", r.rows)
	}
	want := []struct {
		kind abi.Kind
		str  string
	}{
		{abi.KindString, "12.34"},                // DECIMAL: exact, as text
		{abi.KindString, "18446744073709551615"}, // beyond int64
		{abi.KindFloat, "1.1"},
		{abi.KindBytes, "\x00\xfe"},
		{abi.KindString, `{"a": 1}`},
		{abi.KindString, "2024-05-06T00:00:00Z"},
		{abi.KindString, "12:34:56"},
		{abi.KindString, "y"},
		{abi.KindInt, "-3"},
		{abi.KindString, "text"},
	}
	for i, w := range want {
		v := r.rows[0][i]
		var got string
		switch v.Kind {
		case abi.KindInt:
			got = fmt.Sprint(v.I)
		case abi.KindFloat:
			got = fmt.Sprint(v.F)
		default:
			got = string(v.B)
		}
		if v.Kind != w.kind || got != w.str {
			t.Errorf("column %s: %s %q, want %s %q", r.cols[i], v.Kind, got, w.kind, w.str)
		}
	}
	// The same through a prepared statement (binary protocol).
	st := mustHandle(t, c, abi.OpDBPrepare, "main", "SELECT d, u, fl, vb, dt FROM typed WHERE tiny = ?")
	r2, err := dbQuery(c, abi.OpDBStmtQuery, st, -3)
	if err != nil {
		t.Fatal(err)
	}
	for i, col := range []int{0, 1, 2, 3, 5} {
		a, b := r2.rows[0][i], r.rows[0][col]
		if a.Kind != b.Kind || a.I != b.I || a.F != b.F || !bytes.Equal(a.B, b.B) {
			t.Errorf("binary protocol column %s: %+v, text protocol %+v", r2.cols[i], a, b)
		}
	}
	c.End()
}

func testDBReplicaRouting(t *testing.T, b dbBackend) {
	m := b.mariadb
	for _, db := range []string{"rt_primary", "rt_replica1", "rt_replica2"} {
		m.Exec("CREATE DATABASE " + db)
		m.Exec("CREATE TABLE " + db + ".who (name VARCHAR(20))")
		m.Exec("INSERT INTO "+db+".who VALUES (?)", db)
	}
	set := openSet(t, "", map[string]sqldb.Config{"main": {
		Driver:   sqldb.DriverMySQL,
		DSN:      m.DSN("rt_primary"),
		Replicas: []string{m.DSN("rt_replica1"), m.DSN("rt_replica2")},
	}})
	c := newDBCall(set, "main")
	// Plain reads rotate over the replicas.
	seen := map[string]int{}
	for range 6 {
		r := mustQuery(t, c, "main", "SELECT name FROM who")
		seen[r.rows[0][0].Str()]++
	}
	if seen["rt_replica1"] != 3 || seen["rt_replica2"] != 3 {
		t.Fatalf("plain reads went to %v, want 3 on each replica", seen)
	}
	// Writes go to the primary.
	mustExec(t, c, "main", "INSERT INTO who VALUES (?)", "written")
	var n int64
	if err := m.DB("rt_primary").QueryRow("SELECT count(*) FROM who WHERE name = 'written'").Scan(&n); err != nil || n != 1 {
		t.Fatalf("write did not reach the primary: %d, %v", n, err)
	}
	// Reads in a transaction and through prepared statements use the primary.
	tx := mustHandle(t, c, abi.OpDBBegin, "main")
	if r := mustQuery(t, c, tx, "SELECT name FROM who ORDER BY name"); r.rows[0][0].Str() != "rt_primary" {
		t.Fatalf("read in transaction went to %q", r.rows[0][0].Str())
	}
	st := mustHandle(t, c, abi.OpDBPrepare, "main", "SELECT name FROM who ORDER BY name")
	if r, err := dbQuery(c, abi.OpDBStmtQuery, st); err != nil || r.rows[0][0].Str() != "rt_primary" {
		t.Fatalf("prepared read: %+v, %v", r.rows, err)
	}
	c.End()
}

func testDBConnectionsBounded(t *testing.T, b dbBackend) {
	m := b.mariadb
	const poolSize = 4
	set := openSet(t, "", map[string]sqldb.Config{"main": {Driver: sqldb.DriverMySQL, DSN: m.DSN("test"), MaxOpenConns: poolSize}})
	before := m.GlobalStatus("Connections")
	var wg sync.WaitGroup
	var failures sync.Map
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := newDBCall(set, "main")
			for i := range 50 {
				if _, err := dbQuery(c, abi.OpDBQuery, "main", "SELECT ?", g*1000+i); err != nil {
					failures.Store(g, err)
				}
			}
		}()
	}
	wg.Wait()
	failures.Range(func(k, v any) bool { t.Errorf("goroutine %v: %v", k, v); return true })
	// Connections counts every connection attempt since the server
	// started; the status query itself may open one more.
	opened := m.GlobalStatus("Connections") - before
	if opened > poolSize+1 {
		t.Fatalf("%d new MySQL connections for 800 queries, want at most the pool size %d (+1 for the status query)", opened, poolSize)
	}
	primary, _, _ := set.Pools("main")
	if s := primary.Stats(); s.OpenConnections > poolSize {
		t.Fatalf("pool has %d open connections, max %d", s.OpenConnections, poolSize)
	}
}

func TestDBMariaDBOutageAndRecovery(t *testing.T) {
	if testing.Short() {
		t.Skip("starts, kills and restarts MariaDB")
	}
	m := testsvc.StartMariaDB(t)
	set := openSet(t, "", map[string]sqldb.Config{"main": {Driver: sqldb.DriverMySQL, DSN: m.DSN("test")}})
	c := newDBCall(set, "main")
	mustExec(t, c, "main", "CREATE TABLE kv (k INT PRIMARY KEY, v TEXT)")
	mustExec(t, c, "main", "INSERT INTO kv VALUES (?, ?)", 1, "before")

	m.Kill()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c.Ctx = ctx
	ops := []struct {
		name string
		run  func() error
	}{
		{"query", func() error {
			_, err := dbQuery(c, abi.OpDBQuery, "main", "SELECT v FROM kv WHERE k = ?", 1)
			return err
		}},
		{"exec", func() error { _, _, err := dbExec(c, abi.OpDBExec, "main", "UPDATE kv SET v = ?", "x"); return err }},
		{"begin", func() error { _, err := dbCall(c, abi.OpDBBegin, "main"); return err }},
		{"prepare", func() error { _, err := dbCall(c, abi.OpDBPrepare, "main", "SELECT 1"); return err }},
	}
	for _, op := range ops {
		err := op.run()
		wantCode(t, err, abi.ErrUnavailable, `database "main" unavailable: `, "connection refused")
		// Bounded: the op failed on the refused connection, not on the
		// request deadline.
		if ctx.Err() != nil {
			t.Fatalf("%s: the op ran into its deadline instead of failing fast", op.name)
		}
	}

	m.Start()
	c.Ctx = context.Background()
	// The same pools, never reopened, work again.
	r := mustQuery(t, c, "main", "SELECT v FROM kv WHERE k = ?", 1)
	if len(r.rows) != 1 || r.rows[0][0].Str() != "before" {
		t.Fatalf("after restart: %+v", r.rows)
	}
	mustExec(t, c, "main", "UPDATE kv SET v = ? WHERE k = ?", "after", 1)
	tx := mustHandle(t, c, abi.OpDBBegin, "main")
	if _, err := dbCall(c, abi.OpDBCommit, tx); err != nil {
		t.Fatal(err)
	}

	// A transaction whose server dies mid-way reports unavailable and
	// leaves nothing behind.
	tx = mustHandle(t, c, abi.OpDBBegin, "main")
	mustExec(t, c, tx, "UPDATE kv SET v = ? WHERE k = ?", "lost", 1)
	m.Kill()
	c.Ctx = ctx
	_, err := dbCall(c, abi.OpDBCommit, tx)
	wantCode(t, err, abi.ErrUnavailable, `database "main" unavailable`)
	c.End()
	m.Start()
	c.Ctx = context.Background()
	if r := mustQuery(t, c, "main", "SELECT v FROM kv WHERE k = ?", 1); r.rows[0][0].Str() != "after" {
		t.Fatalf("uncommitted update survived the crash: %q", r.rows[0][0].Str())
	}
}

func TestDBQueryTimeoutConfig(t *testing.T) {
	set := openSet(t, t.TempDir(), map[string]sqldb.Config{"main": {QueryTimeout: 100 * time.Millisecond}})
	c := newDBCall(set, "main") // no deadline on the call itself
	_, err := dbQuery(c, abi.OpDBQuery, "main", "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n+1 FROM r) SELECT count(*) FROM r")
	wantCode(t, err, abi.ErrTimeout, "deadline exceeded")
	if r := mustQuery(t, c, "main", "SELECT 7"); r.rows[0][0].I != 7 {
		t.Fatal("pool unusable after a statement timeout")
	}
}

func TestDBMemoryDatabase(t *testing.T) {
	set := openSet(t, "", map[string]sqldb.Config{"mem": {DSN: ":memory:"}})
	c := newDBCall(set, "mem")
	mustExec(t, c, "mem", "CREATE TABLE t (x)")
	mustExec(t, c, "mem", "INSERT INTO t VALUES (?)", "kept")
	// Reads and writes share the single connection that holds the data.
	if r := mustQuery(t, c, "mem", "SELECT x FROM t"); len(r.rows) != 1 || r.rows[0][0].Str() != "kept" {
		t.Fatalf("in-memory data: %+v", r.rows)
	}
}

func TestDBMetrics(t *testing.T) {
	set := openSet(t, t.TempDir(), map[string]sqldb.Config{"metered": {}})
	c := newDBCall(set, "metered")
	okBefore := testutil.ToFloat64(metrics.DBOps.WithLabelValues("metered", "db.query", "ok"))
	sqlBefore := testutil.ToFloat64(metrics.DBOps.WithLabelValues("metered", "db.query", "sql"))
	mustQuery(t, c, "metered", "SELECT 1")
	mustQuery(t, c, "metered", "SELECT 2")
	_, err := dbQuery(c, abi.OpDBQuery, "metered", "SELEKT")
	wantCode(t, err, abi.ErrSQL)
	if d := testutil.ToFloat64(metrics.DBOps.WithLabelValues("metered", "db.query", "ok")) - okBefore; d != 2 {
		t.Errorf("ok queries counted %v, want 2", d)
	}
	if d := testutil.ToFloat64(metrics.DBOps.WithLabelValues("metered", "db.query", "sql")) - sqlBefore; d != 1 {
		t.Errorf("failed queries counted %v, want 1", d)
	}
	if n := testutil.CollectAndCount(metrics.DBOpDuration, "wasmcorn_db_operation_duration_seconds"); n == 0 {
		t.Error("no duration histogram")
	}
}

// FuzzDBOps feeds arbitrary argument messages to every db op: replies must
// be well-formed and the host must never panic.
func FuzzDBOps(f *testing.F) {
	f.Add(uint8(0), dbArgs("main", "SELECT ?", 1))
	f.Add(uint8(1), dbArgs("main", "INSERT INTO t VALUES (?)", "x"))
	f.Add(uint8(2), dbArgs("main"))
	f.Add(uint8(3), dbArgs(1))
	f.Add(uint8(5), dbArgs("main", "SELECT * FROM t"))
	f.Add(uint8(6), dbArgs(2, nil, 1.5, true, []byte{1}))
	f.Add(uint8(0), []byte{3, 255, 255, 255, 255})
	set, err := sqldb.Open("", map[string]sqldb.Config{"main": {DSN: ":memory:"}})
	if err != nil {
		f.Fatal(err)
	}
	defer set.Close()
	setup := newDBCall(set, "main")
	if _, _, err := dbExec(setup, abi.OpDBExec, "main", "CREATE TABLE t (x)"); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, op uint8, msg []byte) {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		c := newDBCall(set, "main")
		c.Ctx = ctx
		defer c.End()
		// Handles 1 (a statement) and 2 (a transaction) exist.
		dbCall(c, abi.OpDBPrepare, "main", "SELECT x FROM t")
		dbCall(c, abi.OpDBBegin, "main")
		o := abi.OpDBQuery + abi.Op(op%uint8(dbOps))
		reply := dispatch(c, uint32(o), msg, nil)
		if len(reply) == 0 {
			t.Fatal("empty reply")
		}
		if _, err := abi.DecodeReply(o, reply); err != nil {
			var re *abi.ReplyError
			if !errors.As(err, &re) {
				t.Fatalf("malformed reply: %v", err)
			}
		}
	})
}

// A statement outside the call's own open transaction: MySQL runs it on
// another connection; SQLite refuses at once (the transaction holds the
// only writer and could never finish while the guest waits).
func testDBBesideTx(t *testing.T, b dbBackend) {
	c := setupItems(t, b)
	tx := mustHandle(t, c, abi.OpDBBegin, "main")
	mustExec(t, c, tx, "INSERT INTO items (s) VALUES (?)", "in tx")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c.Ctx = ctx
	_, _, err := dbExec(c, abi.OpDBExec, "main", "INSERT INTO items (s) VALUES (?)", "outside")
	if b.mariadb == nil {
		wantCode(t, err, abi.ErrConflict, "open transaction", "holds the SQLite writer")
		_, err = dbCall(c, abi.OpDBBegin, "main")
		wantCode(t, err, abi.ErrConflict)
		_, err = dbCall(c, abi.OpDBPrepare, "main", "SELECT 1")
		wantCode(t, err, abi.ErrConflict)
	} else if err != nil {
		t.Fatalf("mysql: statement beside a transaction: %v", err)
	}
	// Plain reads never need the writer.
	if _, err := dbQuery(c, abi.OpDBQuery, "main", "SELECT count(*) FROM items"); err != nil {
		t.Fatalf("read beside a transaction: %v", err)
	}
	if _, err := dbCall(c, abi.OpDBCommit, tx); err != nil {
		t.Fatal(err)
	}
	mustExec(t, c, "main", "INSERT INTO items (s) VALUES (?)", "after commit")
	c.End()
}

// BenchmarkDBQueryPK compares a one-row primary-key lookup through the
// db.query host op (argument decoding, pooled query, reply encoding) with
// the same query through database/sql directly, on the same pool: the
// "native" baseline a Go handler would get. Run in parallel like a server.
func BenchmarkDBQueryPK(b *testing.B) {
	const q = "SELECT id, name, email, created FROM users WHERE id = ?"
	setup := func(b *testing.B, set *sqldb.Set, ddl string) {
		c := newDBCall(set, "main")
		mustExec(b, c, "main", ddl)
		tx := mustHandle(b, c, abi.OpDBBegin, "main")
		for i := 1; i <= 1000; i++ {
			mustExec(b, c, tx, "INSERT INTO users VALUES (?, ?, ?, ?)", i, fmt.Sprint("user", i), fmt.Sprint("u", i, "@example.com"), "2024-05-06 07:08:09")
		}
		if _, err := dbCall(c, abi.OpDBCommit, tx); err != nil {
			b.Fatal(err)
		}
	}
	bench := func(b *testing.B, set *sqldb.Set) {
		b.Run("hostop", func(b *testing.B) {
			var n atomic.Int64
			b.ReportAllocs()
			b.SetParallelism(4)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				c := newDBCall(set, "main")
				var args, reply []byte
				for pb.Next() {
					args = abi.AppendString(args[:0], "main")
					args = abi.AppendString(args, q)
					args = abi.AppendInt(args, n.Add(1)%1000+1)
					reply = dispatch(c, uint32(abi.OpDBQuery), args, reply)
					if reply[0] != byte(abi.OK) {
						_, err := abi.DecodeReply(abi.OpDBQuery, reply)
						b.Error(err)
						return
					}
				}
			})
		})
		b.Run("native", func(b *testing.B) {
			_, read, _ := set.Pools("main")
			var n atomic.Int64
			b.ReportAllocs()
			b.SetParallelism(4)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				ctx := context.Background()
				for pb.Next() {
					var id int64
					var name, email string
					var created time.Time
					if err := read.QueryRowContext(ctx, q, n.Add(1)%1000+1).Scan(&id, &name, &email, &created); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
		b.Run("native_prepared", func(b *testing.B) {
			_, read, _ := set.Pools("main")
			st, err := read.Prepare(q)
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			var n atomic.Int64
			b.ReportAllocs()
			b.SetParallelism(4)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				ctx := context.Background()
				for pb.Next() {
					var id int64
					var name, email string
					var created time.Time
					if err := st.QueryRowContext(ctx, n.Add(1)%1000+1).Scan(&id, &name, &email, &created); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
	b.Run("sqlite", func(b *testing.B) {
		set := openSet(b, b.TempDir(), map[string]sqldb.Config{"main": {}})
		setup(b, set, "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT, email TEXT, created DATETIME)")
		bench(b, set)
	})
	b.Run("mariadb", func(b *testing.B) {
		if testing.Short() {
			b.Skip("starts MariaDB")
		}
		m := testsvc.StartMariaDB(b)
		set := openSet(b, "", map[string]sqldb.Config{"main": {Driver: sqldb.DriverMySQL, DSN: m.DSN("test")}})
		setup(b, set, "CREATE TABLE users (id INT PRIMARY KEY, name VARCHAR(64), email VARCHAR(128), created DATETIME)")
		bench(b, set)
	})
}

// TestCRUDPlugin runs plugins/crud, a Go plugin using database/sql through
// sdk-go/db, in the real runtime against SQLite and MariaDB: the guest
// driver, the host ops and the backends end to end.
func TestCRUDPlugin(t *testing.T) {
	SkipCompilingUnderRace(t)
	if testing.Short() {
		t.Skip("builds and runs a Wasm plugin")
	}
	wasm := testplugins.Bytes(t, "crud")
	run := func(t *testing.T, set *sqldb.Set) {
		cache, err := os.UserCacheDir()
		if err != nil {
			cache = t.TempDir()
		}
		rt, err := NewRuntime(RuntimeOptions{
			CacheDir: filepath.Join(cache, "wasmcorn", "host-test-compiled"),
			Services: &Services{SQL: set},
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { rt.Close(context.Background()) })
		spec := PluginSpec{Name: "crud", Wasm: wasm, Pool: DefaultPoolConfig(), Limits: DefaultLimits(),
			Grants: Grants{Databases: []string{"default"}}}
		spec.Pool.Min, spec.Pool.Max = 1, 2
		p, err := rt.Load(context.Background(), spec)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { p.Drain(context.Background()) })

		do := func(method, path, query, body string) (int, map[string]any) {
			t.Helper()
			req := abi.AppendRequest(nil, &abi.Request{
				Method: []byte(method), Scheme: []byte("http"), Host: []byte("test"), Path: []byte(path),
				RawQuery: []byte(query), RemoteAddr: []byte("127.0.0.1:1"), RequestID: []byte("r1"), Body: []byte(body),
				Headers: []abi.Header{{Name: []byte("Content-Type"), Value: []byte("application/json")}},
			})
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			out, err := p.Handle(ctx, req, nil)
			if err != nil {
				t.Fatalf("%s %s: %v", method, path, err)
			}
			var resp abi.Response
			if err := abi.DecodeResponse(out, &resp); err != nil {
				t.Fatal(err)
			}
			var doc map[string]any
			if len(resp.Body) > 0 {
				if err := json.Unmarshal(resp.Body, &doc); err != nil {
					t.Fatalf("%s %s: %d %q: %v", method, path, resp.Status, resp.Body, err)
				}
			}
			return int(resp.Status), doc
		}

		before := time.Now().Add(-time.Second)
		var ids []float64
		for _, name := range []string{"apple", "pear", "plum"} {
			st, doc := do("POST", "/crud/items", "", fmt.Sprintf(`{"name": %q, "price": 1.25}`, name))
			if st != 201 || doc["name"] != name || doc["price"] != 1.25 || doc["updated_at"] != nil {
				t.Fatalf("create %s: %d %v", name, st, doc)
			}
			created, err := time.Parse(time.RFC3339Nano, doc["created_at"].(string))
			if err != nil || created.Before(before) || created.After(time.Now().Add(time.Second)) {
				t.Fatalf("created_at %v (%v) not the time of the request", doc["created_at"], err)
			}
			ids = append(ids, doc["id"].(float64))
		}
		st, doc := do("GET", "/crud/items", "", "")
		if items, _ := doc["items"].([]any); st != 200 || len(items) != 3 {
			t.Fatalf("list: %d %v", st, doc)
		}
		st, doc = do("GET", "/crud/items", fmt.Sprintf("limit=1&after=%d", int(ids[0])), "")
		if items, _ := doc["items"].([]any); st != 200 || len(items) != 1 || items[0].(map[string]any)["name"] != "pear" {
			t.Fatalf("paginated list: %d %v", st, doc)
		}
		path := fmt.Sprintf("/crud/items/%d", int(ids[1]))
		if st, doc = do("GET", path, "", ""); st != 200 || doc["name"] != "pear" {
			t.Fatalf("get: %d %v", st, doc)
		}
		if st, doc = do("PUT", path, "", `{"price": 9.5}`); st != 200 || doc["name"] != "pear" || doc["price"] != 9.5 || doc["updated_at"] == nil {
			t.Fatalf("update: %d %v", st, doc)
		}
		if st, doc = do("GET", path, "", ""); st != 200 || doc["price"] != 9.5 {
			t.Fatalf("get after update: %d %v", st, doc)
		}
		if st, _ = do("DELETE", path, "", ""); st != 204 {
			t.Fatalf("delete: %d", st)
		}
		for _, tc := range []struct {
			method, path, body string
			status             int
		}{
			{"GET", path, "", 404},
			{"DELETE", path, "", 404},
			{"PUT", path, `{"name": "x"}`, 404},
			{"GET", "/crud/items/abc", "", 404},
			{"POST", "/crud/items", `{"price": 1}`, 422},
			{"POST", "/crud/items", `{"name": "  "}`, 422},
			{"POST", "/crud/items", `{"name": "x", "price": -1}`, 422},
			{"POST", "/crud/items", `not json`, 400},
			{"POST", "/crud/items", `{"name": "x", "color": "red"}`, 400},
		} {
			if st, doc := do(tc.method, tc.path, "", tc.body); st != tc.status || doc["error"] == nil {
				t.Errorf("%s %s %s: %d %v, want %d with an error", tc.method, tc.path, tc.body, st, doc, tc.status)
			}
		}
		st, doc = do("GET", "/crud/items", "", "")
		if items, _ := doc["items"].([]any); st != 200 || len(items) != 2 {
			t.Fatalf("list after delete: %d %v", st, doc)
		}
		// Nothing leaked: no transaction holds a connection after the calls.
		primary, _, _ := set.Pools("default")
		if n := primary.Stats().InUse; n != 0 {
			t.Fatalf("%d primary connections in use after the requests", n)
		}
	}
	t.Run("sqlite", func(t *testing.T) {
		run(t, openSet(t, t.TempDir(), map[string]sqldb.Config{"default": {}}))
	})
	t.Run("mariadb", func(t *testing.T) {
		m := testsvc.StartMariaDB(t)
		run(t, openSet(t, "", map[string]sqldb.Config{"default": {Driver: sqldb.DriverMySQL, DSN: m.DSN("test")}}))
	})
}

// TIMESTAMP values are converted by MySQL between UTC storage and the
// session time zone; sessions are set to UTC, so they round-trip unchanged
// even on a server whose own zone is not UTC.
func testDBTimestampUTC(t *testing.T, b dbBackend) {
	m := b.mariadb
	m.Exec("SET GLOBAL time_zone = '+05:00'")
	defer m.Exec("SET GLOBAL time_zone = 'SYSTEM'")
	set := openSet(t, "", map[string]sqldb.Config{"main": {Driver: sqldb.DriverMySQL, DSN: m.DSN("case_tz")}})
	m.Exec("CREATE DATABASE case_tz")
	c := newDBCall(set, "main")
	mustExec(t, c, "main", "CREATE TABLE ts (at TIMESTAMP(6) NULL)")
	mustExec(t, c, "main", "INSERT INTO ts VALUES (?)", "2024-05-06 07:08:09.5")
	if r := mustQuery(t, c, "main", "SELECT at FROM ts"); r.rows[0][0].Str() != "2024-05-06T07:08:09.5Z" {
		t.Fatalf("TIMESTAMP read back as %q", r.rows[0][0].Str())
	}
	// The stored instant is 07:08:09.5 UTC (UNIX_TIMESTAMP does not depend
	// on the session zone).
	var unix float64
	if err := m.DB("case_tz").QueryRow("SELECT UNIX_TIMESTAMP(at) FROM ts").Scan(&unix); err != nil {
		t.Fatal(err)
	}
	if want := float64(time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC).Unix()) + 0.5; unix != want {
		t.Fatalf("stored instant %v, want %v", unix, want)
	}
}

// A database that hangs (SIGSTOP: connections open, no answers) fails ops
// at the request deadline, does not hold the end of the call hostage with
// a pending rollback, and works again when it resumes.
func TestDBMariaDBHang(t *testing.T) {
	if testing.Short() {
		t.Skip("starts and pauses MariaDB")
	}
	m := testsvc.StartMariaDB(t)
	set := openSet(t, "", map[string]sqldb.Config{"main": {Driver: sqldb.DriverMySQL, DSN: m.DSN("test")}})
	c := newDBCall(set, "main")
	mustExec(t, c, "main", "CREATE TABLE kv (k INT PRIMARY KEY, v TEXT)")
	mustExec(t, c, "main", "INSERT INTO kv VALUES (1, 'a')")
	tx := mustHandle(t, c, abi.OpDBBegin, "main")
	mustExec(t, c, tx, "UPDATE kv SET v = 'b' WHERE k = 1")

	m.Pause()
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	c.Ctx = ctx
	_, err := dbQuery(c, abi.OpDBQuery, "main", "SELECT v FROM kv")
	wantCode(t, err, abi.ErrTimeout, `database "main"`)
	ended := make(chan struct{})
	go func() {
		c.End() // rolls back tx, which cannot get an answer
		close(ended)
	}()
	select {
	case <-ended:
	case <-time.After(time.Minute):
		m.Resume()
		t.Fatal("Call.End blocked on the rollback of a hung database")
	}
	m.Resume()

	c.Ctx = context.Background()
	if r := mustQuery(t, c, "main", "SELECT v FROM kv WHERE k = 1"); r.rows[0][0].Str() != "a" {
		t.Fatalf("after resume: %q, want the uncommitted update rolled back", r.rows[0][0].Str())
	}
}

// TestInitTransactionReleased: a transaction a guest opens in _initialize
// (plugins/testdata/inittx) is rolled back when the instantiation ends,
// whether _initialize returns or traps: SQLite's only writer is free at
// once after the load, and the row the transaction inserted is gone.
func TestInitTransactionReleased(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a Wasm plugin; skipped with -short")
	}
	wasm := testplugins.Bytes(t, "inittx")
	for _, traps := range []bool{false, true} {
		t.Run(fmt.Sprintf("traps=%v", traps), func(t *testing.T) {
			ctx := context.Background()
			set := openSet(t, t.TempDir(), map[string]sqldb.Config{"main": {}})
			writer, _, _ := set.Pools("main")
			if _, err := writer.ExecContext(ctx, "CREATE TABLE t (x INTEGER)"); err != nil {
				t.Fatal(err)
			}
			rt, err := NewRuntime(RuntimeOptions{Services: &Services{SQL: set},
				Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { rt.Close(ctx) })
			spec := PluginSpec{Name: "inittx", Wasm: wasm, Pool: PoolConfig{Min: 1, Max: 1, MaxWait: time.Second},
				Limits: DefaultLimits(), Grants: Grants{Databases: []string{"main"}}}
			if traps {
				spec.Env = map[string]string{"INITTX_PANIC": "1"}
			}
			p, err := rt.Load(ctx, spec)
			if traps != (err != nil) {
				t.Fatalf("load: %v (want an error: %v)", err, traps)
			}
			if p != nil {
				t.Cleanup(func() { p.Drain(ctx) })
			}
			// Without the rollback this write waits for the writer until
			// its context ends.
			wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			if _, err := writer.ExecContext(wctx, "INSERT INTO t (x) VALUES (2)"); err != nil {
				t.Fatalf("write after the load: %v (the init's transaction still holds the writer)", err)
			}
			var n int
			if err := writer.QueryRowContext(wctx, "SELECT count(*) FROM t WHERE x = 1").Scan(&n); err != nil {
				t.Fatal(err)
			}
			if n != 0 {
				t.Fatalf("the init's insert was committed (%d rows), want it rolled back", n)
			}
		})
	}
}
