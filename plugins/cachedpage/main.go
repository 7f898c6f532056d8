// Command cachedpage serves article pages rendered from database rows and
// kept in the host cache (cache-aside):
//
//	GET    /cachedpage/{id}   the article as HTML; X-Cache: hit or miss
//	PUT    /cachedpage/{id}   create or replace it from {"title": "...", "body": "..."}
//	                          -> 201 created or 200 replaced; drops the cached page
//	DELETE /cachedpage/{id}   delete it and its cached page -> 204
//
// A GET looks up "page:{id}" in the cache; on a miss it reads the row,
// renders the page, stores it for the TTL and answers it with X-Cache:
// miss; later GETs answer the stored bytes with X-Cache: hit without
// touching the database. Writes delete the cached page after committing,
// so the next GET renders the new row. (As with any cache-aside scheme, a
// GET that read the row just before a concurrent write may store the old
// page; the TTL bounds how long it lives.) A cache that is down makes every
// GET a miss served from the database: slower, never failed.
//
// The table cachedpage_articles is created on first use, with DDL that
// SQLite and MySQL/MariaDB both accept. Manifest config (plugins/cachedpage.toml):
// "database" (default "default", which the manifest must grant) and "ttl" (a
// Go duration, default "60s").
package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/wasmcorn/wasmcorn/abi"
	wasmcorn "github.com/wasmcorn/wasmcorn/sdk-go"
	"github.com/wasmcorn/wasmcorn/sdk-go/cache"
	_ "github.com/wasmcorn/wasmcorn/sdk-go/db"
)

const ddl = `CREATE TABLE IF NOT EXISTS cachedpage_articles (
	id BIGINT NOT NULL PRIMARY KEY,
	title VARCHAR(200) NOT NULL,
	body TEXT NOT NULL,
	updated_at BIGINT NOT NULL)`

// setup is the per-instance state made on the first request: host calls
// (config, SQL) are not available during initialization.
var setup struct {
	sync.Mutex
	ready bool
	db    *sql.DB
	ttl   time.Duration
}

func ready(ctx context.Context) (*sql.DB, time.Duration, error) {
	setup.Lock()
	defer setup.Unlock()
	if setup.ready {
		return setup.db, setup.ttl, nil
	}
	name, ok := wasmcorn.Config("database")
	if !ok {
		name = "default"
	}
	ttl := 60 * time.Second
	if s, ok := wasmcorn.Config("ttl"); ok {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			return nil, 0, fmt.Errorf("config ttl %q is not a positive duration", s)
		}
		ttl = d
	}
	db, err := sql.Open("wasmcorn", name)
	if err != nil {
		return nil, 0, err
	}
	if _, err := db.ExecContext(ctx, ddl); err != nil {
		db.Close()
		return nil, 0, fmt.Errorf("create table cachedpage_articles in %q: %w", name, err)
	}
	setup.db, setup.ttl, setup.ready = db, ttl, true
	return db, ttl, nil
}

func pageKey(id int64) string { return "page:" + strconv.FormatInt(id, 10) }

func pathID(w http.ResponseWriter, r *http.Request) (int64, bool) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		http.Error(w, "article id must be a positive integer", http.StatusNotFound)
		return 0, false
	}
	return id, true
}

// fail answers err: host failures by their code, anything else 500.
func fail(w http.ResponseWriter, r *http.Request, what string, err error) {
	status := http.StatusInternalServerError
	var re *abi.ReplyError
	if errors.As(err, &re) {
		switch re.Code {
		case abi.ErrUnavailable, abi.ErrConflict:
			status = http.StatusServiceUnavailable
		case abi.ErrTimeout:
			status = http.StatusGatewayTimeout
		}
	}
	wasmcorn.Logger().Error(what, "path", r.URL.Path, "error", err)
	http.Error(w, what+" failed", status)
}

// writePage answers a page. It sets no Cache-Control: a page may change at
// any PUT, and only this plugin knows when.
func writePage(w http.ResponseWriter, r *http.Request, page []byte, state string) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("X-Cache", state)
	if r.Method != http.MethodHead {
		w.Write(page)
	}
}

func get(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r)
	if !ok {
		return
	}
	db, ttl, err := ready(r.Context())
	if err != nil {
		fail(w, r, "setup", err)
		return
	}
	key := pageKey(id)
	page, hit, err := cache.Get(key)
	if err != nil {
		// Not a miss but a failure (a down backend already reads as a
		// miss): serve from the database anyway.
		wasmcorn.Logger().Warn("cache get failed", "key", key, "error", err)
	}
	if hit {
		writePage(w, r, page, "hit")
		return
	}
	var title, body string
	var updated int64
	err = db.QueryRowContext(r.Context(),
		"SELECT title, body, updated_at FROM cachedpage_articles WHERE id = ?", id).Scan(&title, &body, &updated)
	if errors.Is(err, sql.ErrNoRows) {
		http.Error(w, "no article "+strconv.FormatInt(id, 10), http.StatusNotFound)
		return
	}
	if err != nil {
		fail(w, r, "read article", err)
		return
	}
	page = render(id, title, body, time.UnixMilli(updated))
	if err := cache.Set(key, page, ttl); err != nil {
		wasmcorn.Logger().Warn("cache set failed", "key", key, "error", err)
	}
	writePage(w, r, page, "miss")
}

// render builds the article page; every text from the row is escaped.
func render(id int64, title, body string, updated time.Time) []byte {
	var b strings.Builder
	t := html.EscapeString(title)
	b.WriteString("<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>")
	b.WriteString(t)
	b.WriteString("</title></head>\n<body><article id=\"article-")
	b.WriteString(strconv.FormatInt(id, 10))
	b.WriteString("\"><h1>")
	b.WriteString(t)
	b.WriteString("</h1>\n")
	for _, para := range strings.Split(strings.ReplaceAll(body, "\r\n", "\n"), "\n\n") {
		if para = strings.TrimSpace(para); para != "" {
			b.WriteString("<p>")
			b.WriteString(html.EscapeString(para))
			b.WriteString("</p>\n")
		}
	}
	b.WriteString("<footer>updated <time>")
	b.WriteString(updated.UTC().Format(time.RFC3339))
	b.WriteString("</time>; rendered <time>")
	b.WriteString(time.Now().UTC().Format(time.RFC3339Nano))
	b.WriteString("</time></footer></article></body></html>\n")
	return []byte(b.String())
}

// article is the body of PUT.
type article struct {
	Title string `json:"title"`
	Body  string `json:"body"`
}

func put(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r)
	if !ok {
		return
	}
	var in article
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		http.Error(w, "invalid JSON body: "+err.Error(), http.StatusBadRequest)
		return
	}
	if in.Title = strings.TrimSpace(in.Title); in.Title == "" || len(in.Title) > 200 {
		http.Error(w, "title must be 1 to 200 bytes", http.StatusUnprocessableEntity)
		return
	}
	db, _, err := ready(r.Context())
	if err != nil {
		fail(w, r, "setup", err)
		return
	}
	created, err := upsert(r.Context(), db, id, in)
	if err != nil {
		fail(w, r, "write article", err)
		return
	}
	invalidate(id)
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"id": id, "created": created})
}

// upsert writes the row in one transaction and reports whether it was new.
func upsert(ctx context.Context, db *sql.DB, id int64, in article) (created bool, err error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return false, err
	}
	defer tx.Rollback()
	var one int
	err = tx.QueryRowContext(ctx, "SELECT 1 FROM cachedpage_articles WHERE id = ?", id).Scan(&one)
	now := time.Now().UnixMilli()
	switch {
	case errors.Is(err, sql.ErrNoRows):
		created = true
		_, err = tx.ExecContext(ctx, "INSERT INTO cachedpage_articles (id, title, body, updated_at) VALUES (?, ?, ?, ?)",
			id, in.Title, in.Body, now)
	case err == nil:
		_, err = tx.ExecContext(ctx, "UPDATE cachedpage_articles SET title = ?, body = ?, updated_at = ? WHERE id = ?",
			in.Title, in.Body, now, id)
	}
	if err != nil {
		return false, err
	}
	return created, tx.Commit()
}

// invalidate drops the cached page. A failure only delays the new page
// until the TTL runs out, so it is logged, not answered.
func invalidate(id int64) {
	if _, err := cache.Delete(pageKey(id)); err != nil {
		wasmcorn.Logger().Warn("cache delete failed", "key", pageKey(id), "error", err)
	}
}

func remove(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r)
	if !ok {
		return
	}
	db, _, err := ready(r.Context())
	if err != nil {
		fail(w, r, "setup", err)
		return
	}
	res, err := db.ExecContext(r.Context(), "DELETE FROM cachedpage_articles WHERE id = ?", id)
	if err != nil {
		fail(w, r, "delete article", err)
		return
	}
	invalidate(id)
	if n, _ := res.RowsAffected(); n == 0 {
		http.Error(w, "no article "+strconv.FormatInt(id, 10), http.StatusNotFound)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func init() {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /cachedpage/{id}", get) // GET patterns also match HEAD
	mux.HandleFunc("PUT /cachedpage/{id}", put)
	mux.HandleFunc("DELETE /cachedpage/{id}", remove)
	wasmcorn.Serve(mux)
}

func main() {}
