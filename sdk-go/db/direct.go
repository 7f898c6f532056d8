package db

import (
	"fmt"
	"strconv"
	"sync"
	"time"
	"unsafe"

	"github.com/wasmcorn/wasmcorn/abi"
	"github.com/wasmcorn/wasmcorn/sdk-go/hostcall"
)

// The direct API: Query and Exec send one statement to the host without
// database/sql, and Rows reads the reply in place. Inside a Go Wasm guest
// database/sql's machinery (connection bookkeeping, driver.Value boxing,
// reflection in Scan) costs more than the host's own work for a query by
// primary key; the direct API allocates nothing per query once warm. Use it
// on hot paths; use database/sql for everything else, and for
// transactions, which the direct API does not open.

// Arg is one positional parameter of Query or Exec; make it with Int,
// Float, Bool, String, Bytes, Time or Null.
type Arg struct {
	kind abi.Kind
	i    int64
	f    float64
	s    string
	b    []byte
	t    time.Time
}

// Int is an integer parameter.
func Int(v int64) Arg { return Arg{kind: abi.KindInt, i: v} }

// Float is a floating-point parameter.
func Float(v float64) Arg { return Arg{kind: abi.KindFloat, f: v} }

// Bool is a boolean parameter.
func Bool(v bool) Arg {
	a := Arg{kind: abi.KindBool}
	if v {
		a.i = 1
	}
	return a
}

// String is a text parameter.
func String(v string) Arg { return Arg{kind: abi.KindString, s: v} }

// Bytes is a blob parameter.
func Bytes(v []byte) Arg { return Arg{kind: abi.KindBytes, b: v} }

// Time is a time parameter, sent like a time.Time through database/sql
// (see Values in the package documentation).
func Time(v time.Time) Arg { return Arg{kind: kindTime, t: v} }

// Null is a NULL parameter.
func Null() Arg { return Arg{kind: abi.KindNull} }

// kindTime marks a Time argument; it never reaches the wire.
const kindTime abi.Kind = 0xff

func appendArg(b []byte, a *Arg) []byte {
	switch a.kind {
	case abi.KindInt:
		return abi.AppendInt(b, a.i)
	case abi.KindFloat:
		return abi.AppendFloat(b, a.f)
	case abi.KindBool:
		return abi.AppendBool(b, a.i != 0)
	case abi.KindString:
		return abi.AppendString(b, a.s)
	case abi.KindBytes:
		return abi.AppendBytesValue(b, a.b)
	case kindTime:
		return appendTime(b, a.t)
	}
	return abi.AppendNull(b)
}

// statement returns the arguments of a db.query or db.exec call.
func statement(database, query string, args []Arg) *hostcall.Args {
	a := hostcall.AcquireArgs()
	a.B = abi.AppendString(a.B, database)
	a.B = abi.AppendString(a.B, query)
	for i := range args {
		a.B = appendArg(a.B, &args[i])
	}
	return a
}

// Rows is the result of Query: iterate with Next, read the current row's
// columns with the typed getters, check Err after the loop, and Close
// (which returns the Rows and its buffer for reuse; do not use it after).
//
// A getter given a column index out of range, or a value of a kind it
// cannot return, records an error that Err reports and returns the zero
// value. Byte slices from Bytes and ColumnName alias the reply and are
// valid until Close.
type Rows struct {
	vs   abi.Values
	buf  *[]byte
	cols [][]byte
	row  []abi.Value
	err  error
}

var rowsPool = sync.Pool{New: func() any { return new(Rows) }}

// Query runs query with args on database (a name the manifest grants) and
// returns its rows. The whole result arrives in one reply, bounded by the
// host (ABI.md, db.query).
func Query(database, query string, args ...Arg) (*Rows, error) {
	a := statement(database, query, args)
	defer a.Release()
	vs, bufp, err := callQuery(a.B)
	if err != nil {
		return nil, err
	}
	r := rowsPool.Get().(*Rows)
	r.buf, r.row, r.err = bufp, r.row[:0], nil
	if r.cols, err = readColumns(&vs, r.cols[:0]); err != nil {
		r.Close()
		return nil, err
	}
	r.vs = vs
	return r, nil
}

// NumColumns returns the number of result columns.
func (r *Rows) NumColumns() int { return len(r.cols) }

// ColumnName returns the name of column i.
func (r *Rows) ColumnName(i int) []byte {
	if i < 0 || i >= len(r.cols) {
		r.fail(fmt.Errorf("wasmcorn db: column %d of %d", i, len(r.cols)))
		return nil
	}
	return r.cols[i]
}

// Next advances to the next row and reports whether there is one; it
// returns false at the end of the rows and after an error.
func (r *Rows) Next() bool {
	if r.err != nil || len(r.cols) == 0 || !r.vs.More() {
		return false
	}
	r.row = r.row[:0]
	for range r.cols {
		v, err := r.vs.Next()
		if err != nil {
			r.fail(fmt.Errorf("wasmcorn db: query reply row: %w", err))
			return false
		}
		r.row = append(r.row, v)
	}
	return true
}

// Err returns the first error met by Next or a getter.
func (r *Rows) Err() error { return r.err }

// Close releases the rows for reuse by a later Query: call it exactly once,
// and use neither the Rows nor slices it returned afterwards.
func (r *Rows) Close() {
	if r.buf == nil {
		return
	}
	putReplyBuf(r.buf)
	clear(r.cols[:cap(r.cols)])
	clear(r.row[:cap(r.row)])
	*r = Rows{cols: r.cols[:0], row: r.row[:0]}
	rowsPool.Put(r)
}

func (r *Rows) fail(err error) {
	if r.err == nil {
		r.err = err
	}
}

// value returns column i of the current row.
func (r *Rows) value(i int) (abi.Value, bool) {
	if i < 0 || i >= len(r.row) {
		r.fail(fmt.Errorf("wasmcorn db: column %d of a row of %d", i, len(r.row)))
		return abi.Value{}, false
	}
	return r.row[i], true
}

func (r *Rows) mismatch(i int, v abi.Value, want string) {
	r.fail(fmt.Errorf("wasmcorn db: column %d (%s) is %s, not %s", i, r.cols[i], v.Kind, want))
}

// IsNull reports whether column i is NULL.
func (r *Rows) IsNull(i int) bool {
	v, ok := r.value(i)
	return ok && v.Kind == abi.KindNull
}

// Int returns column i as an integer: an integer or boolean column, or a
// text column holding a decimal integer (MySQL sends DECIMAL as text).
// NULL is an error; test IsNull first for nullable columns.
func (r *Rows) Int(i int) int64 {
	v, ok := r.value(i)
	if !ok {
		return 0
	}
	switch v.Kind {
	case abi.KindInt, abi.KindBool:
		return v.I
	case abi.KindString:
		if n, err := strconv.ParseInt(unsafe.String(unsafe.SliceData(v.B), len(v.B)), 10, 64); err == nil {
			return n
		}
	}
	r.mismatch(i, v, "an integer")
	return 0
}

// Float returns column i as a float: a float or integer column, or a text
// column holding a decimal number. NULL is an error.
func (r *Rows) Float(i int) float64 {
	v, ok := r.value(i)
	if !ok {
		return 0
	}
	switch v.Kind {
	case abi.KindFloat:
		return v.F
	case abi.KindInt:
		return float64(v.I)
	case abi.KindString:
		if f, err := strconv.ParseFloat(unsafe.String(unsafe.SliceData(v.B), len(v.B)), 64); err == nil {
			return f
		}
	}
	r.mismatch(i, v, "a number")
	return 0
}

// Bytes returns column i of a text or blob column without copying (valid
// until Close); NULL is nil. Other kinds are an error.
func (r *Rows) Bytes(i int) []byte {
	v, ok := r.value(i)
	if !ok {
		return nil
	}
	switch v.Kind {
	case abi.KindString, abi.KindBytes:
		return v.B
	case abi.KindNull:
		return nil
	}
	r.mismatch(i, v, "text or a blob")
	return nil
}

// String returns column i as a string (a copy): text and blobs as they
// are, integers and floats formatted, NULL as "".
func (r *Rows) String(i int) string {
	v, ok := r.value(i)
	if !ok {
		return ""
	}
	switch v.Kind {
	case abi.KindString, abi.KindBytes:
		return string(v.B)
	case abi.KindInt:
		return strconv.FormatInt(v.I, 10)
	case abi.KindFloat:
		return strconv.FormatFloat(v.F, 'g', -1, 64)
	case abi.KindBool:
		return strconv.FormatBool(v.I != 0)
	}
	return ""
}

// Result is what Exec reports.
type Result struct {
	RowsAffected int64
	LastInsertID int64
}

// Exec runs statement query with args on database and reports the rows it
// affected and the last inserted id.
func Exec(database, query string, args ...Arg) (Result, error) {
	a := statement(database, query, args)
	defer a.Release()
	vs, err := hostcall.Call(abi.OpDBExec, a.B)
	if err != nil {
		return Result{}, err
	}
	affected, err := vs.Int("rows affected")
	if err != nil {
		return Result{}, fmt.Errorf("wasmcorn db: exec reply: %w", err)
	}
	last, err := vs.Int("last insert id")
	if err != nil {
		return Result{}, fmt.Errorf("wasmcorn db: exec reply: %w", err)
	}
	return Result{RowsAffected: affected, LastInsertID: last}, nil
}
