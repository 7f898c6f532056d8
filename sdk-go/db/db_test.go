package db

import (
	"bytes"
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wasmcorn/wasmcorn/abi"
	"github.com/wasmcorn/wasmcorn/sdk-go/internal/testhost"
)

// fakeHost records every db call and answers from a script: a function of
// the op and decoded arguments returning a complete reply.
type fakeHost struct {
	mu     sync.Mutex
	calls  []fakeCall
	answer func(op abi.Op, args []abi.Value) []byte
}

type fakeCall struct {
	op   abi.Op
	args []abi.Value
}

func (h *fakeHost) serve(op abi.Op, in []byte) []byte {
	vals, err := abi.DecodeValues(nil, in)
	if err != nil {
		return abi.AppendReplyError(nil, abi.ErrInvalid, err.Error())
	}
	for i := range vals {
		vals[i].B = bytes.Clone(vals[i].B)
	}
	h.mu.Lock()
	h.calls = append(h.calls, fakeCall{op, vals})
	h.mu.Unlock()
	return h.answer(op, vals)
}

func (h *fakeHost) take() []fakeCall {
	h.mu.Lock()
	defer h.mu.Unlock()
	c := h.calls
	h.calls = nil
	return c
}

func install(t *testing.T, answer func(op abi.Op, args []abi.Value) []byte) (*fakeHost, *sql.DB) {
	t.Helper()
	h := &fakeHost{answer: answer}
	t.Cleanup(testhost.Set(h.serve))
	db, err := sql.Open(DriverName, "main")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return h, db
}

// rowsReply builds a db.query reply.
func rowsReply(cols []string, vals ...abi.Value) []byte {
	b := abi.AppendReplyOK(nil)
	b = abi.AppendInt(b, int64(len(cols)))
	for _, c := range cols {
		b = abi.AppendString(b, c)
	}
	for _, v := range vals {
		b = abi.AppendValue(b, v)
	}
	return b
}

func execReply(affected, lastID int64) []byte {
	return abi.AppendInt(abi.AppendInt(abi.AppendReplyOK(nil), affected), lastID)
}

func str(s string) abi.Value  { return abi.Value{Kind: abi.KindString, B: []byte(s)} }
func blob(b []byte) abi.Value { return abi.Value{Kind: abi.KindBytes, B: b} }
func i64(i int64) abi.Value   { return abi.Value{Kind: abi.KindInt, I: i} }
func f64(f float64) abi.Value { return abi.Value{Kind: abi.KindFloat, F: f} }
func boolean(v bool) abi.Value {
	return abi.Value{Kind: abi.KindBool, I: map[bool]int64{false: 0, true: 1}[v]}
}

var null = abi.Value{Kind: abi.KindNull}

func sameValue(a, b abi.Value) bool {
	return a.Kind == b.Kind && a.I == b.I && (a.F == b.F || (math.IsNaN(a.F) && math.IsNaN(b.F))) && bytes.Equal(a.B, b.B)
}

func wantArgs(t *testing.T, c fakeCall, op abi.Op, want ...abi.Value) {
	t.Helper()
	if c.op != op {
		t.Fatalf("op %s, want %s", c.op, op)
	}
	if len(c.args) != len(want) {
		t.Fatalf("%s: %d args %+v, want %d %+v", op, len(c.args), c.args, len(want), want)
	}
	for i := range want {
		if !sameValue(c.args[i], want[i]) {
			t.Fatalf("%s arg %d: %+v, want %+v", op, i, c.args[i], want[i])
		}
	}
}

func TestQueryParamsAndScan(t *testing.T) {
	created := time.Date(2024, 5, 6, 7, 8, 9, 123456000, time.UTC)
	h, db := install(t, func(op abi.Op, args []abi.Value) []byte {
		return rowsReply([]string{"id", "name", "score", "data", "created", "note", "ok"},
			i64(1), str("héllo"), f64(2.5), blob([]byte{0, 1, 2}), str("2024-05-06T07:08:09.123456Z"), null, i64(1),
			i64(2), str("second"), null, null, str("2024-05-06T07:08:09.100Z"), null, i64(0))
	})
	rows, err := db.QueryContext(context.Background(), "SELECT * FROM items WHERE a = ? AND b = ?",
		int64(42), "x", nil, 1.5, true, []byte{9}, created, uint8(7), sql.NullString{}, int32(-3))
	if err != nil {
		t.Fatal(err)
	}
	calls := h.take()
	if len(calls) != 1 {
		t.Fatalf("%d host calls, want 1", len(calls))
	}
	wantArgs(t, calls[0], abi.OpDBQuery, str("main"), str("SELECT * FROM items WHERE a = ? AND b = ?"),
		i64(42), str("x"), null, f64(1.5), boolean(true), blob([]byte{9}), str("2024-05-06 07:08:09.123456"), i64(7), null, i64(-3))

	cols, _ := rows.Columns()
	if strings.Join(cols, ",") != "id,name,score,data,created,note,ok" {
		t.Fatalf("columns %v", cols)
	}
	type row struct {
		id      int64
		name    string
		score   sql.NullFloat64
		data    []byte
		created any
		note    sql.NullString
		ok      bool
	}
	var got []row
	for rows.Next() {
		var r row
		if err := rows.Scan(&r.id, &r.name, &r.score, &r.data, &r.created, &r.note, &r.ok); err != nil {
			t.Fatal(err)
		}
		got = append(got, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	rows.Close()
	if len(got) != 2 {
		t.Fatalf("%d rows", len(got))
	}
	r := got[0]
	if r.id != 1 || r.name != "héllo" || !r.score.Valid || r.score.Float64 != 2.5 || !bytes.Equal(r.data, []byte{0, 1, 2}) || r.note.Valid || !r.ok {
		t.Fatalf("row 1: %+v", r)
	}
	if ct, ok := r.created.(time.Time); !ok || !ct.Equal(created) {
		t.Fatalf("canonical RFC 3339 column scanned into any: %#v, want time.Time %v", r.created, created)
	}
	r = got[1]
	if r.score.Valid || r.data != nil || r.ok {
		t.Fatalf("row 2 NULLs: %+v", r)
	}
	// ".100Z" is not how the host writes a timestamp: it stays text.
	if s, ok := r.created.(string); !ok || s != "2024-05-06T07:08:09.100Z" {
		t.Fatalf("non-canonical timestamp: %#v", r.created)
	}
}

func TestScanTimeAndString(t *testing.T) {
	_, db := install(t, func(op abi.Op, args []abi.Value) []byte {
		return rowsReply([]string{"t"}, str("2024-02-29T23:59:59+02:00"))
	})
	var tm time.Time
	if err := db.QueryRow("SELECT t").Scan(&tm); err != nil {
		t.Fatal(err)
	}
	if want := time.Date(2024, 2, 29, 21, 59, 59, 0, time.UTC); !tm.Equal(want) {
		t.Fatalf("time %v, want %v", tm, want)
	}
	var s string
	if err := db.QueryRow("SELECT t").Scan(&s); err != nil {
		t.Fatal(err)
	}
	if s != "2024-02-29T23:59:59+02:00" {
		t.Fatalf("timestamp scanned into a string changed: %q", s)
	}
}

func TestExec(t *testing.T) {
	h, db := install(t, func(op abi.Op, args []abi.Value) []byte { return execReply(3, 99) })
	res, err := db.Exec("UPDATE items SET a = ?", "v")
	if err != nil {
		t.Fatal(err)
	}
	n, _ := res.RowsAffected()
	id, _ := res.LastInsertId()
	if n != 3 || id != 99 {
		t.Fatalf("affected %d, last id %d", n, id)
	}
	wantArgs(t, h.take()[0], abi.OpDBExec, str("main"), str("UPDATE items SET a = ?"), str("v"))
}

func TestTransaction(t *testing.T) {
	h, db := install(t, func(op abi.Op, args []abi.Value) []byte {
		switch op {
		case abi.OpDBBegin:
			return abi.AppendInt(abi.AppendReplyOK(nil), 7)
		case abi.OpDBExec:
			return execReply(1, 5)
		case abi.OpDBQuery:
			return rowsReply([]string{"n"}, i64(1))
		}
		return abi.AppendReplyOK(nil)
	})
	ctx := context.Background()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.ExecContext(ctx, "INSERT INTO items (s) VALUES (?)", "a"); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := tx.QueryRowContext(ctx, "SELECT count(*) FROM items").Scan(&n); err != nil || n != 1 {
		t.Fatalf("query in tx: %d, %v", n, err)
	}
	// A statement prepared on the DB and used in the transaction runs
	// in the transaction.
	st, err := db.Prepare("INSERT INTO items (s) VALUES (?)")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Stmt(st).Exec("b"); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	calls := h.take()
	if len(calls) != 5 {
		t.Fatalf("%d calls: %+v", len(calls), calls)
	}
	wantArgs(t, calls[0], abi.OpDBBegin, str("main"))
	wantArgs(t, calls[1], abi.OpDBExec, i64(7), str("INSERT INTO items (s) VALUES (?)"), str("a"))
	wantArgs(t, calls[2], abi.OpDBQuery, i64(7), str("SELECT count(*) FROM items"))
	wantArgs(t, calls[3], abi.OpDBExec, i64(7), str("INSERT INTO items (s) VALUES (?)"), str("b"))
	wantArgs(t, calls[4], abi.OpDBCommit, i64(7))

	// After the commit the connection is back to the database name, and
	// the same statement runs outside any transaction.
	if _, err := st.Exec("c"); err != nil {
		t.Fatal(err)
	}
	wantArgs(t, h.take()[0], abi.OpDBExec, str("main"), str("INSERT INTO items (s) VALUES (?)"), str("c"))

	tx, _ = db.Begin()
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	calls = h.take()
	wantArgs(t, calls[len(calls)-1], abi.OpDBRollback, i64(7))

	if _, err := db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelSerializable}); !errors.Is(err, ErrTxOptions) {
		t.Fatalf("serializable: %v", err)
	}
	if _, err := db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true}); !errors.Is(err, ErrTxOptions) {
		t.Fatalf("read-only: %v", err)
	}
}

func TestHostErrors(t *testing.T) {
	cases := []struct {
		code abi.Code
		msg  string
	}{
		{abi.ErrSQL, "Error 1062 (23000): Duplicate entry '1' for key 'PRIMARY'"},
		{abi.ErrDenied, `plugin "x" has no grant for database "main"`},
		{abi.ErrUnavailable, `database "main" unavailable: dial tcp: connection refused`},
		{abi.ErrTimeout, "context deadline exceeded"},
	}
	for _, tc := range cases {
		t.Run(tc.code.String(), func(t *testing.T) {
			_, db := install(t, func(abi.Op, []abi.Value) []byte { return abi.AppendReplyError(nil, tc.code, tc.msg) })
			for _, run := range []func() error{
				func() error { _, err := db.Exec("INSERT"); return err },
				func() error { return db.QueryRow("SELECT").Scan(new(int)) },
				func() error { _, err := db.Begin(); return err },
				db.Ping,
			} {
				err := run()
				var re *abi.ReplyError
				if !errors.As(err, &re) || re.Code != tc.code || re.Msg != tc.msg {
					t.Fatalf("error %v, want a %s reply with the host's message", err, tc.code)
				}
			}
		})
	}
}

func TestNoRowsAndEmptyResult(t *testing.T) {
	_, db := install(t, func(abi.Op, []abi.Value) []byte { return rowsReply([]string{"a", "b"}) })
	if err := db.QueryRow("SELECT a, b").Scan(new(int), new(int)); !errors.Is(err, sql.ErrNoRows) {
		t.Fatalf("empty result: %v, want sql.ErrNoRows", err)
	}
}

func TestLargeReply(t *testing.T) {
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	_, db := install(t, func(abi.Op, []abi.Value) []byte {
		return rowsReply([]string{"b"}, blob(big), blob(big[:10]))
	})
	rows, err := db.Query("SELECT b")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got [][]byte
	for rows.Next() {
		var b []byte
		if err := rows.Scan(&b); err != nil {
			t.Fatal(err)
		}
		got = append(got, b)
	}
	if len(got) != 2 || !bytes.Equal(got[0], big) || !bytes.Equal(got[1], big[:10]) {
		t.Fatalf("large reply: %d rows", len(got))
	}
}

func TestArgumentErrors(t *testing.T) {
	h, db := install(t, func(abi.Op, []abi.Value) []byte { return execReply(0, 0) })
	if _, err := db.Exec("SELECT ?", sql.Named("a", 1)); err == nil || !strings.Contains(err.Error(), "named parameter") {
		t.Fatalf("named parameter: %v", err)
	}
	if _, err := db.Exec("SELECT ?", uint64(math.MaxUint64)); err == nil {
		t.Fatal("uint64 above MaxInt64 accepted")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := db.ExecContext(ctx, "SELECT 1"); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled context: %v", err)
	}
	if n := len(h.take()); n != 0 {
		t.Fatalf("%d host calls for refused arguments", n)
	}
}

func TestMalformedReplies(t *testing.T) {
	cases := map[string][]byte{
		"no column count":  abi.AppendReplyOK(nil),
		"short names":      abi.AppendInt(abi.AppendReplyOK(nil), 3),
		"values no cols":   abi.AppendInt(abi.AppendInt(abi.AppendReplyOK(nil), 0), 1),
		"negative columns": abi.AppendInt(abi.AppendReplyOK(nil), -1),
		"truncated row":    append(rowsReply([]string{"a"}), byte(abi.KindInt), 1),
	}
	for name, reply := range cases {
		t.Run(name, func(t *testing.T) {
			_, db := install(t, func(abi.Op, []abi.Value) []byte { return reply })
			rows, err := db.Query("SELECT")
			if err == nil {
				for rows.Next() {
				}
				err = rows.Err()
				rows.Close()
			}
			if err == nil {
				t.Fatal("malformed reply accepted")
			}
		})
	}
}

func TestParseTimestamp(t *testing.T) {
	cases := []struct {
		in   string
		want bool
	}{
		{"2024-05-06T07:08:09Z", true},
		{"2024-05-06T07:08:09.123456789Z", true},
		{"2024-05-06T07:08:09.5+05:30", true},
		{"2024-05-06T07:08:09.500Z", false}, // not canonical
		{"2024-05-06 07:08:09", false},
		{"2024-05-06T07:08:09z", false},
		{"2024-13-06T07:08:09Z", false},
		{"hello, world, this is", false},
		{"", false},
	}
	for _, tc := range cases {
		if _, ok := parseTimestamp([]byte(tc.in)); ok != tc.want {
			t.Errorf("parseTimestamp(%q) = %v, want %v", tc.in, ok, tc.want)
		}
	}
}

func TestParamTime(t *testing.T) {
	zone := time.FixedZone("x", -3*3600)
	cases := map[time.Time]string{
		time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC):         "2024-01-02 03:04:05",
		time.Date(2024, 1, 2, 3, 4, 5, 120000000, time.UTC): "2024-01-02 03:04:05.12",
		time.Date(2024, 1, 2, 3, 4, 5, 123456789, time.UTC): "2024-01-02 03:04:05.123456",
		time.Date(2024, 1, 2, 23, 0, 0, 0, zone):            "2024-01-03 02:00:00",
	}
	for in, want := range cases {
		vs := abi.NewValues(appendTime(nil, in))
		b, err := vs.Bytes("t")
		if err != nil || string(b) != want || vs.More() {
			t.Errorf("%v: %q, %v, want %q", in, b, err, want)
		}
	}
}

// FuzzRows feeds arbitrary reply bytes to the rows decoder: it must fail
// cleanly, never panic.
func FuzzRows(f *testing.F) {
	f.Add(rowsReply([]string{"a", "b"}, i64(1), str("x")))
	f.Add(rowsReply([]string{"a"}, null, blob([]byte{1}), f64(1)))
	f.Add([]byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, reply []byte) {
		vs, err := abi.DecodeReply(abi.OpDBQuery, reply)
		if err != nil {
			return
		}
		buf := make([]byte, 0)
		r, err := newRows(vs, &buf)
		if err != nil {
			return
		}
		dest := make([]driver.Value, len(r.cols))
		for i := 0; i < 1000; i++ {
			if err := r.Next(dest); err != nil {
				break
			}
		}
		r.Close()
	})
}
