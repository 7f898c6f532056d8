// Command benchfast is bench/plugins/benchapp's /db and /cached on the Go
// SDK's zero-allocation APIs: wasmcorn.ServeFast instead of net/http,
// db.Query instead of database/sql, cache.AppendGet instead of cache.Get,
// and JSON appended by hand instead of encoding/json. The answers are the
// same; the bench suite's db-fast and cached-fast scenarios compare the
// two plugins, which shows what the SDK's conveniences cost inside a Go
// Wasm guest.
//
//	GET /db?id=N      row N of table world (database "bench") by primary
//	                  key + one cache GET of "world:N"
//	GET /cached?id=N  row N as JSON from the cache, loaded from the
//	                  database and cached for 5 minutes on a miss
package main

import (
	"net/http"
	"strconv"
	"time"

	wasmcorn "github.com/wasmcorn/wasmcorn/sdk-go"
	"github.com/wasmcorn/wasmcorn/sdk-go/cache"
	"github.com/wasmcorn/wasmcorn/sdk-go/db"
)

const (
	database = "bench"
	rows     = 1000
	cacheTTL = 5 * time.Minute
	query    = "SELECT id, randomnumber FROM world WHERE id = ?"
)

// Per-instance scratch buffers: an instance serves one request at a time.
var (
	key, val, out []byte
)

// id parses the id query parameter, answering 400 when it is not 1..rows.
func id(c *wasmcorn.Ctx) (int, bool) {
	v, _ := c.QueryArg("id")
	n, err := strconv.Atoi(string(v)) // no allocation: the conversion does not escape
	if err != nil || n < 1 || n > rows {
		c.Error("id must be 1.."+strconv.Itoa(rows), http.StatusBadRequest)
		return 0, false
	}
	return n, true
}

func fail(c *wasmcorn.Ctx, what string, err error) {
	wasmcorn.Logger().Error("benchfast: "+what, "err", err)
	c.Error(what+": "+err.Error(), http.StatusServiceUnavailable)
}

// appendRow appends row n of world as JSON, with cached when not nil, the
// shape benchapp's encoding/json produces.
func appendRow(b []byte, n int, cached []byte) ([]byte, error) {
	rs, err := db.Query(database, query, db.Int(int64(n)))
	if err != nil {
		return b, err
	}
	defer rs.Close()
	if !rs.Next() {
		if err := rs.Err(); err != nil {
			return b, err
		}
		return b, errNoRow
	}
	b = append(b, `{"id":`...)
	b = strconv.AppendInt(b, rs.Int(0), 10)
	b = append(b, `,"randomNumber":`...)
	b = strconv.AppendInt(b, rs.Int(1), 10)
	if len(cached) > 0 {
		b = append(b, `,"cached":`...)
		b = appendJSONString(b, cached)
	}
	b = append(b, '}')
	return b, rs.Err()
}

type noRowError struct{}

func (noRowError) Error() string { return "no such row" }

var errNoRow error = noRowError{}

func dbRow(c *wasmcorn.Ctx) {
	n, ok := id(c)
	if !ok {
		return
	}
	key = strconv.AppendInt(append(key[:0], "world:"...), int64(n), 10)
	var err error
	if val, _, err = cache.AppendGet(val[:0], string(key)); err != nil {
		fail(c, "cache get", err)
		return
	}
	if out, err = appendRow(out[:0], n, val); err != nil {
		fail(c, "query world", err)
		return
	}
	c.SetHeader("Content-Type", "application/json")
	c.Write(append(out, '\n'))
}

func cached(c *wasmcorn.Ctx) {
	n, ok := id(c)
	if !ok {
		return
	}
	key = strconv.AppendInt(append(key[:0], "row:"...), int64(n), 10)
	body, hit, err := cache.AppendGet(out[:0], string(key))
	if err != nil {
		fail(c, "cache get", err)
		return
	}
	if !hit {
		if body, err = appendRow(body, n, nil); err != nil {
			fail(c, "query world", err)
			return
		}
		if err := cache.Set(string(key), body, cacheTTL); err != nil {
			wasmcorn.Logger().Warn("benchfast: cache set", "key", string(key), "err", err)
		}
	}
	out = body
	c.SetHeader("Content-Type", "application/json")
	c.Write(body)
}

// appendJSONString appends s as a JSON string: quotes, backslashes, control
// and HTML characters escaped as encoding/json escapes them. (The values
// here are ASCII; encoding/json would also replace invalid UTF-8.)
func appendJSONString(b, s []byte) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for _, ch := range s {
		switch {
		case ch == '"' || ch == '\\':
			b = append(b, '\\', ch)
		case ch < 0x20 || ch == '<' || ch == '>' || ch == '&':
			b = append(b, '\\', 'u', '0', '0', hex[ch>>4], hex[ch&0xf])
		default:
			b = append(b, ch)
		}
	}
	return append(b, '"')
}

func main() {}

func init() {
	wasmcorn.ServeFast(func(c *wasmcorn.Ctx) {
		switch string(c.Path()) {
		case "/db":
			dbRow(c)
		case "/cached":
			cached(c)
		default:
			c.Error("404 page not found", http.StatusNotFound)
		}
	})
}
