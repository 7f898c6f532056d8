package db

import (
	"database/sql/driver"
	"fmt"
	"time"

	"github.com/wasmcorn/wasmcorn/abi"
)

// paramTimeFormat is how a time.Time parameter is sent: UTC, no zone,
// microseconds at most, which MySQL (DATETIME, TIMESTAMP) and SQLite (its
// date functions, and modernc.org/sqlite's DATETIME parsing) all read.
const paramTimeFormat = "2006-01-02 15:04:05.999999"

// appendArgs appends the parameters, already converted by database/sql to
// driver values (nil, int64, float64, bool, []byte, string, time.Time).
func appendArgs(b []byte, args []driver.NamedValue) ([]byte, error) {
	for i := range args {
		if args[i].Name != "" {
			return b, fmt.Errorf("wasmcorn db: named parameter %q: only positional parameters are supported", args[i].Name)
		}
		var err error
		if b, err = appendValue(b, args[i].Value); err != nil {
			return b, fmt.Errorf("wasmcorn db: parameter %d: %w", args[i].Ordinal, err)
		}
	}
	return b, nil
}

func appendValue(b []byte, v driver.Value) ([]byte, error) {
	switch x := v.(type) {
	case nil:
		return abi.AppendNull(b), nil
	case int64:
		return abi.AppendInt(b, x), nil
	case float64:
		return abi.AppendFloat(b, x), nil
	case bool:
		return abi.AppendBool(b, x), nil
	case string:
		return abi.AppendString(b, x), nil
	case []byte:
		return abi.AppendBytesValue(b, x), nil
	case time.Time:
		return appendTime(b, x), nil
	}
	return b, fmt.Errorf("unsupported type %T", v)
}

// appendTime appends t as a string value in paramTimeFormat without an
// intermediate string.
func appendTime(b []byte, t time.Time) []byte {
	b = append(b, byte(abi.KindString), 0, 0, 0, 0)
	at := len(b)
	b = t.UTC().AppendFormat(b, paramTimeFormat)
	n := uint32(len(b) - at)
	b[at-4], b[at-3], b[at-2], b[at-1] = byte(n), byte(n>>8), byte(n>>16), byte(n>>24)
	return b
}

// toDriver converts a reply value to the driver value database/sql scans.
func toDriver(v abi.Value) driver.Value {
	switch v.Kind {
	case abi.KindInt:
		return v.I
	case abi.KindFloat:
		return v.F
	case abi.KindBool:
		return v.I != 0
	case abi.KindString:
		if t, ok := parseTimestamp(v.B); ok {
			return t
		}
		return string(v.B)
	case abi.KindBytes:
		return v.B
	}
	return nil
}

// parseTimestamp reports whether b is exactly the RFC 3339 text the host
// writes for a date/time column (time.RFC3339Nano, e.g.
// "2024-05-06T07:08:09.123456Z"), and returns it parsed. Text that parses
// but would not format back identically (extra zeros, lowercase t) is not
// a timestamp the host wrote and stays a string.
func parseTimestamp(b []byte) (time.Time, bool) {
	// Cheap shape test first: most strings are not timestamps.
	if len(b) < len("2006-01-02T15:04:05Z") || len(b) > len("2006-01-02T15:04:05.999999999-07:00") ||
		b[4] != '-' || b[7] != '-' || b[10] != 'T' || b[13] != ':' || b[16] != ':' {
		return time.Time{}, false
	}
	s := string(b)
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, false
	}
	var tmp [40]byte
	if string(t.AppendFormat(tmp[:0], time.RFC3339Nano)) != s {
		return time.Time{}, false
	}
	return t, true
}
