// Command jobs is a job producer and consumer, the wasmcorn version of a
// web app with a celery worker and celery beat:
//
//	POST /jobs/signup        {"email": "ann@example.com"} -> 202 {"job_id": "..."}
//	                         queues a welcome email on "emails" (?delay_ms=N
//	                         delays it)
//	GET  /jobs/sent          the welcome emails "sent" so far, newest first
//	GET  /jobs/digests       the digests written by the periodic job
//
// The same plugin consumes "emails" (a job handler per queue, registered
// with wasmcorn.HandleJob) and "maintenance", where the manifest's periodic
// job "digest" submits a job every minute. Sending is simulated by a row in
// the table sent_emails of the database "default"; the row is keyed by the
// job id, so a job that runs twice (delivery is at least once) sends once.
// An address without "@" fails permanently (dead-lettered at once); one
// starting with "flaky" fails its first two attempts, to show retries with
// backoff. The manifest is plugins/jobs.toml.
package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/wasmcorn/wasmcorn/abi"
	wasmcorn "github.com/wasmcorn/wasmcorn/sdk-go"
	_ "github.com/wasmcorn/wasmcorn/sdk-go/db"
	"github.com/wasmcorn/wasmcorn/sdk-go/queue"
)

// Welcome is the payload of an "emails" job.
type Welcome struct {
	Email string `json:"email"`
}

// Task is the payload of a "maintenance" job.
type Task struct {
	Task string `json:"task"`
}

// Sent is one row of sent_emails.
type Sent struct {
	JobID   string    `json:"job_id"`
	Email   string    `json:"email"`
	Attempt int       `json:"attempt"`
	SentAt  time.Time `json:"sent_at"`
}

// Digest is one row of digests.
type Digest struct {
	JobID string    `json:"job_id"`
	Total int64     `json:"total"`
	At    time.Time `json:"at"`
}

var store, _ = sql.Open("wasmcorn", "default")

// The DDL is portable between SQLite and MySQL/MariaDB: no autoincrement,
// times as Unix milliseconds.
var ddl = []string{
	`CREATE TABLE IF NOT EXISTS sent_emails (
		job_id VARCHAR(64) NOT NULL PRIMARY KEY,
		email VARCHAR(320) NOT NULL,
		attempt INT NOT NULL,
		sent_at BIGINT NOT NULL)`,
	`CREATE TABLE IF NOT EXISTS digests (
		job_id VARCHAR(64) NOT NULL PRIMARY KEY,
		total BIGINT NOT NULL,
		at BIGINT NOT NULL)`,
}

var schema struct {
	sync.Mutex
	ready bool
}

// ensureSchema creates the tables on first use (host calls are not
// available during initialization); a failure is retried next time.
func ensureSchema(ctx context.Context) error {
	schema.Lock()
	defer schema.Unlock()
	if schema.ready {
		return nil
	}
	for _, q := range ddl {
		if _, err := store.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("create tables: %w", err)
		}
	}
	schema.ready = true
	return nil
}

func init() {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /jobs/signup", signup)
	mux.HandleFunc("GET /jobs/sent", listSent)
	mux.HandleFunc("GET /jobs/digests", listDigests)
	wasmcorn.Serve(mux)

	wasmcorn.HandleJob("emails", queue.JSONHandler(sendWelcome))
	wasmcorn.HandleJob("maintenance", queue.JSONHandler(maintain))
}

func main() {}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func fail(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

// signup queues a welcome email.
func signup(w http.ResponseWriter, r *http.Request) {
	var in Welcome
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
		fail(w, http.StatusBadRequest, "invalid JSON body: "+err.Error())
		return
	}
	var delay time.Duration
	if s := r.URL.Query().Get("delay_ms"); s != "" {
		ms, err := strconv.ParseInt(s, 10, 64)
		if err != nil || ms < 0 {
			fail(w, http.StatusBadRequest, "delay_ms must be a non-negative integer")
			return
		}
		delay = time.Duration(ms) * time.Millisecond
	}
	id, err := queue.SubmitJSON("emails", in, delay)
	if err != nil {
		status := http.StatusInternalServerError
		var re *abi.ReplyError
		if errors.As(err, &re) && (re.Code == abi.ErrUnavailable || re.Code == abi.ErrTimeout) {
			status = http.StatusServiceUnavailable
			w.Header().Set("Retry-After", "1")
		}
		fail(w, status, "could not queue the email: "+err.Error())
		return
	}
	writeJSON(w, http.StatusAccepted, map[string]string{"job_id": id})
}

// sendWelcome "sends" one welcome email: it records it once per job id.
func sendWelcome(ctx context.Context, job wasmcorn.Job, in Welcome) error {
	if !strings.Contains(in.Email, "@") {
		return wasmcorn.Permanent(fmt.Errorf("not an email address: %q", in.Email))
	}
	if strings.HasPrefix(in.Email, "flaky") && job.Attempt < 3 {
		return fmt.Errorf("smtp server unavailable (attempt %d)", job.Attempt)
	}
	if err := ensureSchema(ctx); err != nil {
		return err
	}
	res, err := store.ExecContext(ctx, `INSERT INTO sent_emails (job_id, email, attempt, sent_at)
		SELECT ?, ?, ?, ? WHERE NOT EXISTS (SELECT 1 FROM sent_emails WHERE job_id = ?)`,
		job.ID, in.Email, job.Attempt, time.Now().UnixMilli(), job.ID)
	if err != nil {
		return fmt.Errorf("record email to %s: %w", in.Email, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		slog.Info("welcome email already sent; duplicate delivery ignored", "job", job.ID, "email", in.Email)
		return nil
	}
	slog.Info("welcome email sent", "job", job.ID, "email", in.Email, "attempt", job.Attempt)
	return nil
}

// maintain runs a maintenance task; "digest" counts the emails sent.
func maintain(ctx context.Context, job wasmcorn.Job, t Task) error {
	if t.Task != "digest" {
		return wasmcorn.Permanent(fmt.Errorf("unknown maintenance task %q", t.Task))
	}
	if err := ensureSchema(ctx); err != nil {
		return err
	}
	var total int64
	if err := store.QueryRowContext(ctx, `SELECT COUNT(*) FROM sent_emails`).Scan(&total); err != nil {
		return fmt.Errorf("count sent emails: %w", err)
	}
	_, err := store.ExecContext(ctx, `INSERT INTO digests (job_id, total, at)
		SELECT ?, ?, ? WHERE NOT EXISTS (SELECT 1 FROM digests WHERE job_id = ?)`,
		job.ID, total, time.Now().UnixMilli(), job.ID)
	if err != nil {
		return fmt.Errorf("write digest: %w", err)
	}
	slog.Info("digest written", "job", job.ID, "emails_sent", total)
	return nil
}

func listSent(w http.ResponseWriter, r *http.Request) {
	if err := ensureSchema(r.Context()); err != nil {
		fail(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	rows, err := store.QueryContext(r.Context(), `SELECT job_id, email, attempt, sent_at FROM sent_emails ORDER BY sent_at DESC, job_id LIMIT 100`)
	if err != nil {
		fail(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	defer rows.Close()
	out := []Sent{}
	for rows.Next() {
		var s Sent
		var at int64
		if err := rows.Scan(&s.JobID, &s.Email, &s.Attempt, &at); err != nil {
			fail(w, http.StatusInternalServerError, err.Error())
			return
		}
		s.SentAt = time.UnixMilli(at).UTC()
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		fail(w, http.StatusInternalServerError, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"count": len(out), "sent": out})
}

func listDigests(w http.ResponseWriter, r *http.Request) {
	if err := ensureSchema(r.Context()); err != nil {
		fail(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	rows, err := store.QueryContext(r.Context(), `SELECT job_id, total, at FROM digests ORDER BY at DESC, job_id LIMIT 100`)
	if err != nil {
		fail(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	defer rows.Close()
	out := []Digest{}
	for rows.Next() {
		var d Digest
		var at int64
		if err := rows.Scan(&d.JobID, &d.Total, &at); err != nil {
			fail(w, http.StatusInternalServerError, err.Error())
			return
		}
		d.At = time.UnixMilli(at).UTC()
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		fail(w, http.StatusInternalServerError, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"count": len(out), "digests": out})
}
