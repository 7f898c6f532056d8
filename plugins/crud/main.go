// Command crud is a JSON CRUD API on the table items of the database
// "default", written with plain database/sql over the wasmcorn driver:
//
//	GET    /crud/items              list, oldest first (?limit= 1..500, default 50;
//	                                ?after=ID continues after that id)
//	POST   /crud/items              create {"name": "...", "price": 1.5} -> 201
//	GET    /crud/items/{id}         one item
//	PUT    /crud/items/{id}         update {"name"?, "price"?}
//	DELETE /crud/items/{id}         delete -> 204
//
// The table is created on first use, in the SQLite or the MySQL/MariaDB
// dialect, whichever the database accepts. The manifest (plugins/crud.toml)
// grants the database "default".
package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/wasmcorn/wasmcorn/abi"
	wasmcorn "github.com/wasmcorn/wasmcorn/sdk-go"
	_ "github.com/wasmcorn/wasmcorn/sdk-go/db"
)

// Item is one row of items.
type Item struct {
	ID        int64      `json:"id"`
	Name      string     `json:"name"`
	Price     float64    `json:"price"`
	CreatedAt time.Time  `json:"created_at"`
	UpdatedAt *time.Time `json:"updated_at"`
}

// store is opened once per instance; the real connections are the host's.
var store, _ = sql.Open("wasmcorn", "default")

// schemas are tried in order until one is accepted: SQLite's
// autoincrement spelling is a syntax error in MySQL and vice versa.
var schemas = []string{
	`CREATE TABLE IF NOT EXISTS items (
		id INTEGER PRIMARY KEY AUTOINCREMENT,
		name VARCHAR(200) NOT NULL,
		price DOUBLE NOT NULL DEFAULT 0,
		created_at DATETIME NOT NULL,
		updated_at DATETIME NULL)`,
	`CREATE TABLE IF NOT EXISTS items (
		id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
		name VARCHAR(200) NOT NULL,
		price DOUBLE NOT NULL DEFAULT 0,
		created_at DATETIME(6) NOT NULL,
		updated_at DATETIME(6) NULL)`,
}

var schema struct {
	sync.Mutex
	ready bool
}

// ensureSchema creates the table on the first request of the instance (host
// calls are not available during initialization). A failure is retried by
// the next request.
func ensureSchema(ctx context.Context) error {
	schema.Lock()
	defer schema.Unlock()
	if schema.ready {
		return nil
	}
	var errs []error
	for _, ddl := range schemas {
		_, err := store.ExecContext(ctx, ddl)
		if err == nil {
			schema.ready = true
			return nil
		}
		var re *abi.ReplyError
		if !errors.As(err, &re) || re.Code != abi.ErrSQL {
			return fmt.Errorf("create table items: %w", err)
		}
		errs = append(errs, err)
	}
	return fmt.Errorf("create table items: no dialect accepted: %w", errors.Join(errs...))
}

const selectItem = "SELECT id, name, price, created_at, updated_at FROM items"

func scanItem(sc interface{ Scan(...any) error }) (Item, error) {
	var it Item
	var updated sql.NullTime
	if err := sc.Scan(&it.ID, &it.Name, &it.Price, &it.CreatedAt, &updated); err != nil {
		return it, err
	}
	if updated.Valid {
		it.UpdatedAt = &updated.Time
	}
	return it, nil
}

// input is the body of POST and PUT; nil fields were absent.
type input struct {
	Name  *string  `json:"name"`
	Price *float64 `json:"price"`
}

// httpError is an error with the status to answer it with.
type httpError struct {
	status int
	msg    string
}

func (e *httpError) Error() string { return e.msg }

func badRequest(status int, format string, args ...any) error {
	return &httpError{status, fmt.Sprintf(format, args...)}
}

func readInput(r *http.Request, create bool) (input, error) {
	var in input
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		return in, badRequest(http.StatusBadRequest, "invalid JSON body: %v", err)
	}
	if in.Name != nil {
		n := strings.TrimSpace(*in.Name)
		if n == "" || len(n) > 200 {
			return in, badRequest(http.StatusUnprocessableEntity, "name must be 1 to 200 characters")
		}
		in.Name = &n
	} else if create {
		return in, badRequest(http.StatusUnprocessableEntity, "name is required")
	}
	if in.Price != nil && !(*in.Price >= 0) {
		return in, badRequest(http.StatusUnprocessableEntity, "price must be a number >= 0")
	}
	return in, nil
}

func pathID(r *http.Request) (int64, error) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		return 0, badRequest(http.StatusNotFound, "no item %q", r.PathValue("id"))
	}
	return id, nil
}

func list(r *http.Request) (int, any, error) {
	limit, after := 50, int64(0)
	q := r.URL.Query()
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 500 {
			return 0, nil, badRequest(http.StatusBadRequest, "limit must be an integer from 1 to 500")
		}
		limit = n
	}
	if v := q.Get("after"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, nil, badRequest(http.StatusBadRequest, "after must be an item id")
		}
		after = n
	}
	rows, err := store.QueryContext(r.Context(), selectItem+" WHERE id > ? ORDER BY id LIMIT ?", after, limit)
	if err != nil {
		return 0, nil, err
	}
	defer rows.Close()
	items := []Item{}
	for rows.Next() {
		it, err := scanItem(rows)
		if err != nil {
			return 0, nil, err
		}
		items = append(items, it)
	}
	if err := rows.Err(); err != nil {
		return 0, nil, err
	}
	return http.StatusOK, map[string]any{"items": items}, nil
}

func get(r *http.Request) (int, any, error) {
	id, err := pathID(r)
	if err != nil {
		return 0, nil, err
	}
	it, err := scanItem(store.QueryRowContext(r.Context(), selectItem+" WHERE id = ?", id))
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil, badRequest(http.StatusNotFound, "no item %d", id)
	}
	return http.StatusOK, it, err
}

func create(r *http.Request) (int, any, error) {
	in, err := readInput(r, true)
	if err != nil {
		return 0, nil, err
	}
	price := 0.0
	if in.Price != nil {
		price = *in.Price
	}
	// Insert and read back in one transaction: the row returned is the
	// row stored, with the database's own rounding of the timestamp.
	tx, err := store.BeginTx(r.Context(), nil)
	if err != nil {
		return 0, nil, err
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(r.Context(), "INSERT INTO items (name, price, created_at) VALUES (?, ?, ?)",
		*in.Name, price, time.Now())
	if err != nil {
		return 0, nil, err
	}
	id, err := res.LastInsertId()
	if err != nil {
		return 0, nil, err
	}
	it, err := scanItem(tx.QueryRowContext(r.Context(), selectItem+" WHERE id = ?", id))
	if err != nil {
		return 0, nil, err
	}
	return http.StatusCreated, it, tx.Commit()
}

func update(r *http.Request) (int, any, error) {
	id, err := pathID(r)
	if err != nil {
		return 0, nil, err
	}
	in, err := readInput(r, false)
	if err != nil {
		return 0, nil, err
	}
	tx, err := store.BeginTx(r.Context(), nil)
	if err != nil {
		return 0, nil, err
	}
	defer tx.Rollback()
	it, err := scanItem(tx.QueryRowContext(r.Context(), selectItem+" WHERE id = ?", id))
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil, badRequest(http.StatusNotFound, "no item %d", id)
	}
	if err != nil {
		return 0, nil, err
	}
	if in.Name != nil {
		it.Name = *in.Name
	}
	if in.Price != nil {
		it.Price = *in.Price
	}
	if _, err := tx.ExecContext(r.Context(), "UPDATE items SET name = ?, price = ?, updated_at = ? WHERE id = ?",
		it.Name, it.Price, time.Now(), id); err != nil {
		return 0, nil, err
	}
	if it, err = scanItem(tx.QueryRowContext(r.Context(), selectItem+" WHERE id = ?", id)); err != nil {
		return 0, nil, err
	}
	return http.StatusOK, it, tx.Commit()
}

func remove(r *http.Request) (int, any, error) {
	id, err := pathID(r)
	if err != nil {
		return 0, nil, err
	}
	res, err := store.ExecContext(r.Context(), "DELETE FROM items WHERE id = ?", id)
	if err != nil {
		return 0, nil, err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return 0, nil, badRequest(http.StatusNotFound, "no item %d", id)
	}
	return http.StatusNoContent, nil, nil
}

// handle adapts an endpoint: schema first, then JSON out, errors mapped to
// statuses (host errors by their ABI code).
func handle(f func(*http.Request) (int, any, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		status, body, err := 0, any(nil), ensureSchema(r.Context())
		if err == nil {
			status, body, err = f(r)
		}
		if err != nil {
			status, body = errorStatus(err), map[string]string{"error": err.Error()}
			if status >= 500 {
				wasmcorn.Logger().Error("crud", "method", r.Method, "path", r.URL.Path, "err", err)
			}
		}
		if body == nil {
			w.WriteHeader(status)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(body)
	}
}

func errorStatus(err error) int {
	var he *httpError
	if errors.As(err, &he) {
		return he.status
	}
	var re *abi.ReplyError
	if errors.As(err, &re) {
		switch re.Code {
		case abi.ErrUnavailable, abi.ErrConflict:
			return http.StatusServiceUnavailable
		case abi.ErrTimeout:
			return http.StatusGatewayTimeout
		case abi.ErrDenied:
			return http.StatusForbidden
		}
	}
	return http.StatusInternalServerError
}

func init() {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /crud/items", handle(list))
	mux.HandleFunc("POST /crud/items", handle(create))
	mux.HandleFunc("GET /crud/items/{id}", handle(get))
	mux.HandleFunc("PUT /crud/items/{id}", handle(update))
	mux.HandleFunc("DELETE /crud/items/{id}", handle(remove))
	wasmcorn.Serve(mux)
}

func main() {}
