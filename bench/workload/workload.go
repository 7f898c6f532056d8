// Package workload defines the work every benchmark target does, once, so
// that the native server, the wasmcorn plugins and the classic Django
// project are held to the same requests and the same answers: the paths,
// the database schema and its 1,000 rows, the cache keys, the JSON shapes,
// and cheap response checks the load generator runs on every response.
//
// Endpoints (every target serves them under the same paths):
//
//	GET  /json            {"message":"hello, world"}
//	GET  /jsonstruct      Items(): 10 items built and encoded per request
//	GET  /jsonbig         ItemsN(BigItems): 100 items, the guest-compute-heavy
//	                      variant (not on the classic stacks)
//	GET  /db?id=N         row N of table world by primary key + one cache GET
//	                      of WorldKey(N); {"id":N,"randomNumber":R,"cached":"..."}
//	GET  /cached?id=N     row N as JSON from the cache (loaded from the
//	                      database and stored with CacheTTL on a miss)
//	POST /queue           submit one small job (the request body) to queue
//	                      QueueName; {"queued":true}
//	GET  /static/10k.bin  a StaticSize-byte file
package workload

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Rows is the number of rows in table world, ids 1..Rows.
const Rows = 1000

// CreateTable creates table world (MariaDB/MySQL dialect).
const CreateTable = `CREATE TABLE IF NOT EXISTS world (
  id INT NOT NULL PRIMARY KEY,
  randomnumber INT NOT NULL
) ENGINE=InnoDB`

// SelectWorld reads one row by primary key.
const SelectWorld = "SELECT id, randomnumber FROM world WHERE id = ?"

// RandomNumber is row id's deterministic randomnumber column.
func RandomNumber(id int) int { return (id*7919)%10000 + 1 }

// WorldKey is the cache key read by /db for row id; its value is
// WorldValue(id). Targets with namespaced caches add their prefix.
func WorldKey(id int) string { return "world:" + strconv.Itoa(id) }

// WorldValue is the cached value stored under WorldKey(id).
func WorldValue(id int) string { return "w" + strconv.Itoa(RandomNumber(id)) }

// RowKey is the cache key /cached uses for row id.
func RowKey(id int) string { return "row:" + strconv.Itoa(id) }

// CacheTTL is how long /cached keeps a row.
const CacheTTL = 5 * time.Minute

// QueueName is the queue /queue submits to.
const QueueName = "bench"

// JobPayload is the body POSTed to /queue.
const JobPayload = `{"task":"noop","n":1}`

// StaticSize is the size of the file served at /static/10k.bin.
const StaticSize = 10 * 1024

// StaticName is that file's name under the static directory.
const StaticName = "10k.bin"

// StaticContent returns the static file's bytes (printable, deterministic).
func StaticContent() []byte {
	b := make([]byte, StaticSize)
	for i := range b {
		b[i] = 'a' + byte(i%26)
	}
	return b
}

// HelloJSON is the /json body.
const HelloJSON = `{"message":"hello, world"}`

// Item is one element of the /jsonstruct answer. Item, ItemList and Items
// mirror plugins/jsonapi (the wasmcorn side of this scenario) line for line,
// so the native server does exactly the plugin's work.
type Item struct {
	ID        int       `json:"id"`
	Name      string    `json:"name"`
	Price     float64   `json:"price"`
	Tags      []string  `json:"tags"`
	InStock   bool      `json:"in_stock"`
	CreatedAt time.Time `json:"created_at"`
}

// ItemList is the /jsonstruct answer.
type ItemList struct {
	Count int    `json:"count"`
	Items []Item `json:"items"`
}

var (
	itemEpoch = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	itemTags  = []string{"red", "green", "blue", "small", "large", "sale"}
)

func item(id int) Item {
	h := uint32(id) * 2654435761
	return Item{
		ID:        id,
		Name:      fmt.Sprintf("item-%05d", id),
		Price:     float64(h%100000) / 100,
		Tags:      []string{itemTags[h%6], itemTags[(h>>8)%6]},
		InStock:   h%3 != 0,
		CreatedAt: itemEpoch.Add(time.Duration(id) * time.Hour),
	}
}

// Items builds the 10-item list /jsonstruct encodes on every request.
func Items() ItemList { return ItemsN(10) }

// BigItems is the number of items /jsonbig encodes.
const BigItems = 100

// ItemsN builds a list of n items, ids 1..n (plugins/jsonapi's
// /jsonapi/items?n=N).
func ItemsN(n int) ItemList {
	l := ItemList{Count: n, Items: make([]Item, n)}
	for i := range l.Items {
		l.Items[i] = item(i + 1)
	}
	return l
}

// World is a row of table world as /db and /cached answer it.
type World struct {
	ID           int    `json:"id"`
	RandomNumber int    `json:"randomNumber"`
	Cached       string `json:"cached,omitempty"`
}

// Seed creates table world in db and fills it with Rows rows (idempotent).
func Seed(ctx context.Context, db *sql.DB) error {
	if _, err := db.ExecContext(ctx, CreateTable); err != nil {
		return fmt.Errorf("create table world: %w", err)
	}
	var sb strings.Builder
	sb.WriteString("REPLACE INTO world (id, randomnumber) VALUES ")
	for id := 1; id <= Rows; id++ {
		if id > 1 {
			sb.WriteByte(',')
		}
		fmt.Fprintf(&sb, "(%d,%d)", id, RandomNumber(id))
	}
	if _, err := db.ExecContext(ctx, sb.String()); err != nil {
		return fmt.Errorf("seed table world: %w", err)
	}
	return nil
}

// IDPaths returns path?id=1 .. path?id=Rows, for spreading requests over
// every row.
func IDPaths(path string) []string {
	p := make([]string, Rows)
	for i := range p {
		p[i] = path + "?id=" + strconv.Itoa(i+1)
	}
	return p
}

// Checks the load generator applies to every 2xx response. They look for a
// marker, not parse: the generator shares the CPU with the server.
var (
	markHello  = []byte(`"message":"hello, world"`)
	markItem10 = []byte(`"id":10,`)
	markItemN  = []byte(`"id":` + strconv.Itoa(BigItems) + `,`)
	markRandom = []byte(`"randomNumber":`)
	markCached = []byte(`"cached":"w`)
	markQueued = []byte(`"queued":true`)
)

// Check returns the response check for scenario path ("/json", "/db", ...),
// nil for unknown paths.
func Check(path string) func(status int, body []byte) error {
	switch path {
	case "/json":
		return contains(markHello)
	case "/jsonstruct":
		return contains(markItem10)
	case "/jsonbig":
		return contains(markItemN)
	case "/db":
		return func(_ int, b []byte) error {
			if !bytes.Contains(b, markRandom) || !bytes.Contains(b, markCached) {
				return fmt.Errorf("db answer %.80q lacks the row or the cached value", b)
			}
			return nil
		}
	case "/cached":
		return contains(markRandom)
	case "/queue":
		return contains(markQueued)
	case "/static/" + StaticName:
		return func(_ int, b []byte) error {
			if len(b) != StaticSize {
				return fmt.Errorf("static file of %d bytes, want %d", len(b), StaticSize)
			}
			return nil
		}
	}
	return nil
}

func contains(mark []byte) func(int, []byte) error {
	return func(_ int, b []byte) error {
		if !bytes.Contains(b, mark) {
			return fmt.Errorf("answer %.80q lacks %s", b, mark)
		}
		return nil
	}
}
