// Command benchapp is the wasmcorn side of the benchmark's data scenarios
// (bench/workload), written as ordinary Go web code on the SDK:
//
//	GET  /db?id=N      row N of table world (database "bench") by primary
//	                   key + one cache GET of "world:N"
//	GET  /cached?id=N  row N as JSON from the cache, loaded from the
//	                   database and cached for 5 minutes on a miss
//	POST /queue        submit the body as a job to queue "bench"; the
//	                   plugin's job handler consumes the queue
//
// The suite (bench/suite) builds it, writes its manifest (routes, grants
// of database and queue "bench", cache namespace "bench") and serves it.
package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/wasmcorn/wasmcorn/abi"
	wasmcorn "github.com/wasmcorn/wasmcorn/sdk-go"
	"github.com/wasmcorn/wasmcorn/sdk-go/cache"
	_ "github.com/wasmcorn/wasmcorn/sdk-go/db"
	"github.com/wasmcorn/wasmcorn/sdk-go/hostcall"
)

const (
	rows     = 1000
	cacheTTL = 5 * time.Minute
	queue    = "bench"
)

var store, _ = sql.Open("wasmcorn", "bench")

var selectWorld, _ = store.Prepare("SELECT id, randomnumber FROM world WHERE id = ?")

type world struct {
	ID           int    `json:"id"`
	RandomNumber int    `json:"randomNumber"`
	Cached       string `json:"cached,omitempty"`
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

func id(w http.ResponseWriter, r *http.Request) (int, bool) {
	n, err := strconv.Atoi(r.URL.Query().Get("id"))
	if err != nil || n < 1 || n > rows {
		http.Error(w, "id must be 1.."+strconv.Itoa(rows), http.StatusBadRequest)
		return 0, false
	}
	return n, true
}

func fail(w http.ResponseWriter, what string, err error) {
	wasmcorn.Logger().Error("benchapp: "+what, "err", err)
	http.Error(w, what+": "+err.Error(), http.StatusServiceUnavailable)
}

func dbRow(w http.ResponseWriter, r *http.Request) {
	n, ok := id(w, r)
	if !ok {
		return
	}
	var row world
	if err := selectWorld.QueryRowContext(r.Context(), n).Scan(&row.ID, &row.RandomNumber); err != nil {
		fail(w, "query world", err)
		return
	}
	v, _, err := cache.Get("world:" + strconv.Itoa(n))
	if err != nil {
		fail(w, "cache get", err)
		return
	}
	row.Cached = string(v)
	writeJSON(w, row)
}

func cached(w http.ResponseWriter, r *http.Request) {
	n, ok := id(w, r)
	if !ok {
		return
	}
	key := "row:" + strconv.Itoa(n)
	body, hit, err := cache.Get(key)
	if err != nil {
		fail(w, "cache get", err)
		return
	}
	if !hit {
		var row world
		if err := selectWorld.QueryRowContext(r.Context(), n).Scan(&row.ID, &row.RandomNumber); err != nil {
			fail(w, "query world", err)
			return
		}
		if body, err = json.Marshal(row); err != nil {
			fail(w, "encode row", err)
			return
		}
		if err := cache.Set(key, body, cacheTTL); err != nil {
			wasmcorn.Logger().Warn("benchapp: cache set", "key", key, "err", err)
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(body)
}

var queued = []byte(`{"queued":true}`)

func submit(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	payload, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, "read body: "+err.Error(), http.StatusBadRequest)
		return
	}
	if err := submitJob(queue, payload); err != nil {
		fail(w, "queue submit", err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(queued)
}

// submitJob calls the host's queue.submit operation (ABI.md) directly.
func submitJob(q string, payload []byte) error {
	a := hostcall.AcquireArgs()
	defer a.Release()
	a.B = abi.AppendString(a.B, q)
	a.B = abi.AppendBytesValue(a.B, payload)
	a.B = abi.AppendInt(a.B, 0)
	_, err := hostcall.Call(abi.OpQueueSubmit, a.B)
	return err
}

// runJob "executes" a submitted job: it decodes the payload, as a real
// job handler would before doing its work.
func runJob(payload []byte) error {
	var job map[string]any
	if err := json.Unmarshal(payload, &job); err != nil {
		return wasmcorn.Permanent(errors.New("benchapp: job payload is not JSON"))
	}
	return nil
}

func main() {}

func init() {
	wasmcorn.HandleJob(queue, func(_ context.Context, job wasmcorn.Job) error { return runJob(job.Payload) })
	wasmcorn.Serve(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/db":
			dbRow(w, r)
		case "/cached":
			cached(w, r)
		case "/queue":
			submit(w, r)
		default:
			http.NotFound(w, r)
		}
	}))
}
