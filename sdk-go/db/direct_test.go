package db

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/wasmcorn/wasmcorn/abi"
	"github.com/wasmcorn/wasmcorn/sdk-go/internal/testhost"
)

func TestDirectQuery(t *testing.T) {
	h, _ := install(t, func(op abi.Op, args []abi.Value) []byte {
		return rowsReply([]string{"id", "name", "score", "data", "price", "note", "ok"},
			i64(1), str("héllo"), f64(2.5), blob([]byte{0, 1, 2}), str("12.50"), null, boolean(true),
			i64(2), str("second"), i64(3), null, str("7"), str("n"), i64(0))
	})
	at := time.Date(2024, 5, 6, 7, 8, 9, 123456000, time.FixedZone("x", 3600))
	rows, err := Query("main", "SELECT * FROM items WHERE a = ?",
		Int(42), String("x"), Null(), Float(1.5), Bool(true), Bool(false), Bytes([]byte{9}), Time(at))
	if err != nil {
		t.Fatal(err)
	}
	calls := h.take()
	if len(calls) != 1 {
		t.Fatalf("%d host calls, want 1", len(calls))
	}
	wantArgs(t, calls[0], abi.OpDBQuery, str("main"), str("SELECT * FROM items WHERE a = ?"),
		i64(42), str("x"), null, f64(1.5), boolean(true), boolean(false), blob([]byte{9}), str("2024-05-06 06:08:09.123456"))
	if rows.NumColumns() != 7 || string(rows.ColumnName(1)) != "name" {
		t.Fatalf("columns: %d, %q", rows.NumColumns(), rows.ColumnName(1))
	}
	if !rows.Next() {
		t.Fatal("no first row")
	}
	if rows.Int(0) != 1 || rows.String(1) != "héllo" || rows.Float(2) != 2.5 || !bytes.Equal(rows.Bytes(3), []byte{0, 1, 2}) ||
		rows.Float(4) != 12.5 || !rows.IsNull(5) || rows.Bytes(5) != nil || rows.String(5) != "" || rows.Int(6) != 1 || rows.IsNull(0) {
		t.Fatalf("row 1 read wrong (err %v)", rows.Err())
	}
	if !rows.Next() {
		t.Fatal("no second row")
	}
	if rows.Int(0) != 2 || rows.Float(2) != 3 || rows.String(2) != "3" || rows.Int(4) != 7 || rows.String(6) != "0" {
		t.Fatalf("row 2 read wrong (err %v)", rows.Err())
	}
	if rows.Err() != nil {
		t.Fatal(rows.Err())
	}
	// Wrong kinds and indexes: the zero value, and Err reports the first.
	if rows.Int(5) != 0 || rows.Bytes(0) != nil || rows.Int(99) != 0 {
		t.Fatal("mismatches returned values")
	}
	if err := rows.Err(); err == nil || !strings.Contains(err.Error(), "column 5 (note) is string, not an integer") {
		t.Fatalf("mismatch error %v", err)
	}
	if rows.Next() {
		t.Fatal("a row after an error")
	}
	rows.Close()
}

func TestDirectQueryEnd(t *testing.T) {
	install(t, func(abi.Op, []abi.Value) []byte { return rowsReply([]string{"a"}, i64(1)) })
	rows, err := Query("main", "SELECT a")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for rows.Next() {
		n++
	}
	if n != 1 || rows.Err() != nil {
		t.Fatalf("%d rows, err %v", n, rows.Err())
	}
	rows.Close()
	install(t, func(abi.Op, []abi.Value) []byte { return rowsReply([]string{"a", "b"}) })
	if rows, err = Query("main", "SELECT a, b"); err != nil || rows.Next() || rows.Err() != nil {
		t.Fatalf("empty result: %v %v", err, rows.Err())
	}
	rows.Close()
}

func TestDirectExec(t *testing.T) {
	h, _ := install(t, func(abi.Op, []abi.Value) []byte { return execReply(3, 77) })
	res, err := Exec("main", "UPDATE items SET n = ? WHERE id > ?", Int(1), Int(5))
	if err != nil || res != (Result{RowsAffected: 3, LastInsertID: 77}) {
		t.Fatalf("exec: %+v %v", res, err)
	}
	wantArgs(t, h.take()[0], abi.OpDBExec, str("main"), str("UPDATE items SET n = ? WHERE id > ?"), i64(1), i64(5))
}

func TestDirectErrors(t *testing.T) {
	install(t, func(abi.Op, []abi.Value) []byte { return abi.AppendReplyError(nil, abi.ErrSQL, "syntax error") })
	var re *abi.ReplyError
	if _, err := Query("main", "SELEC"); !errors.As(err, &re) || re.Code != abi.ErrSQL || re.Msg != "syntax error" {
		t.Fatalf("query: %v", err)
	}
	if _, err := Exec("main", "INSER"); !errors.As(err, &re) || re.Code != abi.ErrSQL {
		t.Fatalf("exec: %v", err)
	}
	for name, reply := range map[string][]byte{
		"no column count":      abi.AppendReplyOK(nil),
		"huge column count":    abi.AppendInt(abi.AppendReplyOK(nil), 1000),
		"values, no columns":   abi.AppendInt(abi.AppendInt(abi.AppendReplyOK(nil), 0), 1),
		"column name not text": abi.AppendInt(abi.AppendInt(abi.AppendReplyOK(nil), 1), 5),
	} {
		install(t, func(abi.Op, []abi.Value) []byte { return reply })
		if _, err := Query("main", "SELECT"); err == nil || !strings.Contains(err.Error(), "query reply") {
			t.Errorf("%s: %v", name, err)
		}
	}
	// A truncated row stops Next with an error.
	install(t, func(abi.Op, []abi.Value) []byte {
		b := rowsReply([]string{"a", "b"}, i64(1))
		return b
	})
	rows, err := Query("main", "SELECT a, b")
	if err != nil {
		t.Fatal(err)
	}
	if rows.Next() || rows.Err() == nil {
		t.Fatalf("truncated row: err %v", rows.Err())
	}
	rows.Close()
}

// TestDirectAllocs pins the point of the direct API: a query by primary
// key and reading its row allocate nothing once warm (a count, not a
// timing).
func TestDirectAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under the race detector (make test runs this without it)")
	}
	reply := rowsReply([]string{"id", "n"}, i64(7), i64(49))
	t.Cleanup(testhost.Set(func(op abi.Op, args []byte) []byte { return reply })) // a host that allocates nothing
	var sum int64
	query := func() {
		rows, err := Query("bench", "SELECT id, n FROM world WHERE id = ?", Int(7))
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			sum += rows.Int(0) + rows.Int(1)
		}
		rows.Close()
	}
	query()
	if n := testing.AllocsPerRun(100, query); n != 0 {
		t.Fatalf("%.0f allocations per query", n)
	}
	if sum != 56*102 { // the warm-up call, AllocsPerRun's own warm-up and its 100 runs
		t.Fatalf("sum %d", sum)
	}
}
