// Package sqlitequeue is the embedded, durable job queue: a jobs.Backend
// stored in a SQLite file (modernc.org/sqlite, no cgo) in WAL mode.
//
// Every job is a row. A claim sets the row's lease end (visible_at) and
// bumps its claim generation; a row whose lease ran out is claimable again,
// which is how jobs of a dead worker come back. Ack deletes the row and
// counts it; dead letters stay in the table (state 2) for inspection.
// Periodic slots are rows of their own whose primary key (name, slot) makes
// a second submission of the same slot a no-op, also across processes
// sharing the file.
//
// Writes go through one goroutine that groups whatever operations are
// pending into one transaction (group commit): under load a single COMMIT
// covers many submits, claims and acks, which is what makes thousands of
// jobs per second possible on one SQLite file. Each caller still returns
// only after its own operation committed. With synchronous=NORMAL (the
// default) a commit survives a crash of the process; Options.FullSync also
// makes it survive a power loss, at the cost of an fsync per commit.
//
// Claim waits for work on a channel woken by this process's submits and
// polls the file every Options.PollInterval for jobs submitted by other
// processes and for delayed jobs coming due.
package sqlitequeue

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver

	"github.com/wasmcorn/wasmcorn/host/jobs"
)

// schemaVersion is stored in wasmcorn_queue_meta; a file with a newer
// version is refused.
const schemaVersion = 1

// Options configure a Queue. The zero value of each field selects its
// default.
type Options struct {
	// Path is the SQLite file; created with its directory's existing
	// permissions if absent. Required.
	Path string
	// PollInterval is how often an idle Claim looks for jobs this process
	// was not told about: jobs submitted by other processes, delayed jobs
	// coming due, leases running out. Default 250ms.
	PollInterval time.Duration
	// MaxBatch bounds the operations grouped into one write transaction.
	// Default 512.
	MaxBatch int
	// BusyTimeout is how long a write waits for another process holding
	// the file's write lock. Default 10s.
	BusyTimeout time.Duration
	// FullSync fsyncs every commit (synchronous=FULL): jobs survive a power
	// loss too, not only a process crash. Default off.
	FullSync bool
	// Logger receives background errors. Default slog.Default().
	Logger *slog.Logger
}

// Queue is a jobs.Backend in a SQLite file. It also satisfies host.Queue.
// Open one per process and file; several processes may share a file. All
// methods are safe for concurrent use.
type Queue struct {
	opts Options
	log  *slog.Logger
	wdb  *sql.DB // the writer's single connection
	rdb  *sql.DB // readers: stats and idle polls
	conn *sql.Conn
	st   stmts
	read struct {
		ready, stats, completed, dead *sql.Stmt
	}

	ops        chan *op
	closeMu    sync.RWMutex
	closed     bool
	closing    chan struct{}
	writerDone chan struct{}

	wake waker
}

type stmts struct {
	insert, claim, del, count, retry, dead, release, slot, pruneSlots *sql.Stmt
}

// Open opens (creating if needed) the queue file at opts.Path and starts
// its writer. Close it when done.
func Open(ctx context.Context, opts Options) (*Queue, error) {
	if opts.Path == "" {
		return nil, errors.New("sqlitequeue: open: no path")
	}
	if strings.ContainsAny(opts.Path, "?#") {
		return nil, fmt.Errorf("sqlitequeue: open %s: the path may not contain '?' or '#'", opts.Path)
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = 250 * time.Millisecond
	}
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = 512
	}
	if opts.BusyTimeout <= 0 {
		opts.BusyTimeout = 10 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	syncMode := "NORMAL"
	if opts.FullSync {
		syncMode = "FULL"
	}
	dsn := fmt.Sprintf("%s?_pragma=busy_timeout(%d)&_pragma=journal_mode(WAL)&_pragma=synchronous(%s)",
		opts.Path, opts.BusyTimeout.Milliseconds(), syncMode)
	q := &Queue{
		opts:       opts,
		log:        opts.Logger,
		ops:        make(chan *op, opts.MaxBatch),
		closing:    make(chan struct{}),
		writerDone: make(chan struct{}),
	}
	var err error
	if q.wdb, err = sql.Open("sqlite", dsn); err != nil {
		return nil, fmt.Errorf("sqlitequeue: open %s: %w", opts.Path, err)
	}
	q.wdb.SetMaxOpenConns(1)
	q.wdb.SetMaxIdleConns(1)
	q.wdb.SetConnMaxLifetime(0)
	q.wdb.SetConnMaxIdleTime(0)
	if q.rdb, err = sql.Open("sqlite", dsn+"&_pragma=query_only(1)"); err != nil {
		q.wdb.Close()
		return nil, fmt.Errorf("sqlitequeue: open %s: %w", opts.Path, err)
	}
	q.rdb.SetMaxOpenConns(4)
	q.rdb.SetMaxIdleConns(4)
	if err := q.init(ctx); err != nil {
		q.closeDBs()
		return nil, fmt.Errorf("sqlitequeue: open %s: %w", opts.Path, err)
	}
	go q.writer()
	return q, nil
}

const schema = `
CREATE TABLE IF NOT EXISTS wasmcorn_queue_meta (
	key TEXT PRIMARY KEY,
	value INTEGER NOT NULL
) WITHOUT ROWID;
-- state: 0 waiting (ready once visible_at has passed), 1 leased to a worker
-- until visible_at, 2 dead-lettered. attempt counts deliveries; claims
-- counts claims and identifies the current lease (it never goes down).
CREATE TABLE IF NOT EXISTS wasmcorn_jobs (
	id INTEGER PRIMARY KEY AUTOINCREMENT,
	queue TEXT NOT NULL,
	state INTEGER NOT NULL,
	attempt INTEGER NOT NULL DEFAULT 0,
	claims INTEGER NOT NULL DEFAULT 0,
	visible_at INTEGER NOT NULL,
	created_at INTEGER NOT NULL,
	payload BLOB NOT NULL,
	last_error TEXT
);
CREATE INDEX IF NOT EXISTS wasmcorn_jobs_visible
	ON wasmcorn_jobs (queue, visible_at, state, attempt) WHERE state < 2;
CREATE INDEX IF NOT EXISTS wasmcorn_jobs_dead
	ON wasmcorn_jobs (queue) WHERE state = 2;
CREATE TABLE IF NOT EXISTS wasmcorn_job_counters (
	queue TEXT PRIMARY KEY,
	completed INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS wasmcorn_periodic_slots (
	name TEXT NOT NULL,
	slot INTEGER NOT NULL,
	expires_at INTEGER NOT NULL,
	PRIMARY KEY (name, slot)
) WITHOUT ROWID;
`

func (q *Queue) init(ctx context.Context) error {
	var err error
	if q.conn, err = q.wdb.Conn(ctx); err != nil {
		return err
	}
	if _, err := q.conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		return fmt.Errorf("create schema: %w", err)
	}
	if _, err := q.conn.ExecContext(ctx, schema); err != nil {
		q.conn.ExecContext(context.Background(), "ROLLBACK")
		return fmt.Errorf("create schema: %w", err)
	}
	var v int
	err = q.conn.QueryRowContext(ctx, `SELECT value FROM wasmcorn_queue_meta WHERE key = 'schema_version'`).Scan(&v)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		_, err = q.conn.ExecContext(ctx, `INSERT INTO wasmcorn_queue_meta (key, value) VALUES ('schema_version', ?)`, schemaVersion)
	case err == nil && v > schemaVersion:
		err = fmt.Errorf("queue schema version %d is newer than this wasmcorn's %d", v, schemaVersion)
	}
	if err != nil {
		q.conn.ExecContext(context.Background(), "ROLLBACK")
		return err
	}
	if _, err := q.conn.ExecContext(ctx, "COMMIT"); err != nil {
		return fmt.Errorf("create schema: %w", err)
	}

	prep := func(dst **sql.Stmt, db interface {
		PrepareContext(context.Context, string) (*sql.Stmt, error)
	}, query string) {
		if err != nil {
			return
		}
		*dst, err = db.PrepareContext(ctx, query)
	}
	prep(&q.st.insert, q.conn, `INSERT INTO wasmcorn_jobs (queue, state, visible_at, created_at, payload) VALUES (?, 0, ?, ?, ?)`)
	prep(&q.st.claim, q.conn, `UPDATE wasmcorn_jobs SET state = 1, attempt = attempt + 1, claims = claims + 1, visible_at = ?
		WHERE id IN (SELECT id FROM wasmcorn_jobs WHERE queue = ? AND state < 2 AND visible_at <= ? ORDER BY visible_at LIMIT ?)
		RETURNING id, attempt, claims, created_at, payload`)
	prep(&q.st.del, q.conn, `DELETE FROM wasmcorn_jobs WHERE id = ? AND state < 2`)
	prep(&q.st.count, q.conn, `INSERT INTO wasmcorn_job_counters (queue, completed) VALUES (?, ?)
		ON CONFLICT (queue) DO UPDATE SET completed = completed + excluded.completed`)
	prep(&q.st.retry, q.conn, `UPDATE wasmcorn_jobs SET state = 0, visible_at = ?, last_error = ? WHERE id = ? AND state = 1 AND claims = ?`)
	prep(&q.st.dead, q.conn, `UPDATE wasmcorn_jobs SET state = 2, visible_at = ?, last_error = ? WHERE id = ? AND state = 1 AND claims = ?`)
	prep(&q.st.release, q.conn, `UPDATE wasmcorn_jobs SET state = 0, visible_at = ?, attempt = attempt - 1 WHERE id = ? AND state = 1 AND claims = ?`)
	prep(&q.st.slot, q.conn, `INSERT INTO wasmcorn_periodic_slots (name, slot, expires_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING`)
	prep(&q.st.pruneSlots, q.conn, `DELETE FROM wasmcorn_periodic_slots WHERE name = ? AND expires_at < ?`)
	prep(&q.read.ready, q.rdb, `SELECT 1 FROM wasmcorn_jobs WHERE queue = ? AND state < 2 AND visible_at <= ? LIMIT 1`)
	prep(&q.read.stats, q.rdb, `SELECT
		(SELECT count(*) FROM wasmcorn_jobs WHERE queue = ?1 AND state < 2 AND visible_at <= ?2 AND state = 0),
		(SELECT count(*) FROM wasmcorn_jobs WHERE queue = ?1 AND state < 2 AND visible_at > ?2 AND state = 0 AND attempt = 0),
		(SELECT count(*) FROM wasmcorn_jobs WHERE queue = ?1 AND state < 2 AND state = 1),
		(SELECT count(*) FROM wasmcorn_jobs WHERE queue = ?1 AND state < 2 AND visible_at > ?2 AND state = 0 AND attempt > 0),
		(SELECT count(*) FROM wasmcorn_jobs WHERE queue = ?1 AND state = 2)`)
	prep(&q.read.completed, q.rdb, `SELECT completed FROM wasmcorn_job_counters WHERE queue = ?`)
	prep(&q.read.dead, q.rdb, `SELECT id, attempt, created_at, payload, coalesce(last_error, ''), visible_at
		FROM wasmcorn_jobs WHERE queue = ? AND state = 2 ORDER BY visible_at DESC, id DESC LIMIT ?`)
	if err != nil {
		return fmt.Errorf("prepare statements: %w", err)
	}
	return nil
}

// opKind says what an op does.
type opKind uint8

const (
	opSubmit opKind = iota
	opClaim
	opAck
	opRetry
	opDead
	opRelease
	opPeriodic
	opAdmin // fn, for dead-letter management
)

// op is one operation queued for the writer. The caller fills the inputs,
// the writer the outputs, then signals done.
type op struct {
	kind    opKind
	queue   string
	payload []byte
	delay   time.Duration // submit delay, retry delay, claim lease, slot keep
	max     int
	job     *jobs.Job
	reason  string
	name    string
	slot    int64
	fn      func(ctx context.Context, now int64) (int64, error)

	id   int64
	jobs []*jobs.Job
	ok   bool
	err  error
	done chan struct{}
}

var opPool = sync.Pool{New: func() any { return &op{done: make(chan struct{}, 1)} }}

func getOp(kind opKind) *op {
	o := opPool.Get().(*op)
	o.kind = kind
	return o
}

func putOp(o *op) {
	done := o.done
	*o = op{done: done}
	opPool.Put(o)
}

// do hands o to the writer and waits for it to commit. Once queued an op
// is not abandoned when ctx ends: it is short, and abandoning a claim would
// strand the jobs it leased.
func (q *Queue) do(ctx context.Context, o *op) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("sqlitequeue: %s: %w", o.describe(), err)
	}
	q.closeMu.RLock()
	if q.closed {
		q.closeMu.RUnlock()
		return fmt.Errorf("sqlitequeue: %s: %w", o.describe(), jobs.ErrClosed)
	}
	q.ops <- o
	q.closeMu.RUnlock()
	<-o.done
	return o.err
}

// describe names o for errors.
func (o *op) describe() string {
	switch o.kind {
	case opSubmit:
		return fmt.Sprintf("submit to queue %q", o.queue)
	case opClaim:
		return fmt.Sprintf("claim from queue %q", o.queue)
	case opPeriodic:
		return fmt.Sprintf("submit periodic job %q to queue %q", o.name, o.queue)
	case opAdmin:
		return fmt.Sprintf("%s dead letters of queue %q", o.name, o.queue)
	case opAck:
		return fmt.Sprintf("ack job %s of queue %q", o.job.ID, o.job.Queue)
	case opRetry:
		return fmt.Sprintf("retry job %s of queue %q", o.job.ID, o.job.Queue)
	case opDead:
		return fmt.Sprintf("dead-letter job %s of queue %q", o.job.ID, o.job.Queue)
	default:
		return fmt.Sprintf("release job %s of queue %q", o.job.ID, o.job.Queue)
	}
}

// writer executes queued ops in batches, one transaction per batch.
func (q *Queue) writer() {
	defer close(q.writerDone)
	batch := make([]*op, 0, q.opts.MaxBatch)
	woken := make(map[string]struct{})
	for {
		o, ok := <-q.ops
		if !ok {
			return
		}
		batch = append(batch[:0], o)
		// Callers woken by the last commit are runnable but may not have
		// queued their next op yet: yield to them before draining, as
		// long as that makes the batch grow. This is what turns
		// concurrent callers into one commit instead of one each.
		for len(batch) < q.opts.MaxBatch {
			runtime.Gosched()
			n := len(batch)
			batch = q.drain(batch)
			if len(batch) == n {
				break
			}
		}
		q.execBatch(batch)
		for _, o := range batch {
			if o.err == nil && o.wakes() {
				woken[o.queue] = struct{}{}
			}
		}
		for _, o := range batch {
			o.done <- struct{}{}
		}
		for name := range woken {
			q.wake.wake(name)
			delete(woken, name)
		}
	}
}

// drain appends the ops queued now to batch, up to MaxBatch.
func (q *Queue) drain(batch []*op) []*op {
	for len(batch) < q.opts.MaxBatch {
		select {
		case o, ok := <-q.ops:
			if !ok {
				return batch
			}
			batch = append(batch, o)
		default:
			return batch
		}
	}
	return batch
}

// wakes reports whether o made a job ready now, so waiting claims of its
// queue should look again.
func (o *op) wakes() bool {
	switch o.kind {
	case opSubmit, opRetry:
		return o.delay == 0
	case opRelease:
		return true
	case opPeriodic, opAdmin:
		return o.ok
	}
	return false
}

// execBatch runs batch in one transaction. When the transaction fails as a
// whole every op gets its error.
func (q *Queue) execBatch(batch []*op) {
	ctx := context.Background()
	if _, err := q.conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		err = unavailable("begin transaction", err)
		for _, o := range batch {
			o.err = err
		}
		return
	}
	now := time.Now().UnixMilli()
	var completed map[string]int64
	for _, o := range batch {
		o.err = q.exec(ctx, o, now)
		if o.kind == opAck && o.err == nil && o.ok {
			if completed == nil {
				completed = make(map[string]int64, 1)
			}
			completed[o.job.Queue]++
		}
	}
	var err error
	for name, n := range completed {
		if _, err = q.st.count.ExecContext(ctx, name, n); err != nil {
			err = fmt.Errorf("count completed jobs of queue %q: %w", name, err)
			break
		}
	}
	if err == nil {
		if _, err = q.conn.ExecContext(ctx, "COMMIT"); err != nil {
			err = unavailable("commit", err)
		}
	}
	if err != nil {
		q.conn.ExecContext(ctx, "ROLLBACK")
		for _, o := range batch {
			o.err = err
			o.jobs = nil
		}
	}
}

// exec runs one op inside the writer's transaction. A failing statement
// is rolled back by SQLite on its own; the transaction goes on.
func (q *Queue) exec(ctx context.Context, o *op, now int64) error {
	switch o.kind {
	case opSubmit:
		res, err := q.st.insert.ExecContext(ctx, o.queue, now+o.delay.Milliseconds(), now, o.payload)
		if err != nil {
			return fmt.Errorf("sqlitequeue: submit to queue %q: %w", o.queue, err)
		}
		o.id, err = res.LastInsertId()
		return err
	case opClaim:
		return q.execClaim(ctx, o, now)
	case opAck:
		id, _, err := parseJob(o.job)
		if err != nil {
			return err
		}
		res, err := q.st.del.ExecContext(ctx, id)
		if err != nil {
			return fmt.Errorf("sqlitequeue: ack job %s of queue %q: %w", o.job.ID, o.job.Queue, err)
		}
		n, _ := res.RowsAffected()
		o.ok = n == 1
		return nil
	case opRetry, opDead, opRelease:
		id, claims, err := parseJob(o.job)
		if err != nil {
			return err
		}
		var res sql.Result
		switch o.kind {
		case opRetry:
			res, err = q.st.retry.ExecContext(ctx, now+o.delay.Milliseconds(), o.reason, id, claims)
		case opDead:
			res, err = q.st.dead.ExecContext(ctx, now, o.reason, id, claims)
		default:
			res, err = q.st.release.ExecContext(ctx, now, id, claims)
		}
		if err != nil {
			return fmt.Errorf("sqlitequeue: update job %s of queue %q: %w", o.job.ID, o.job.Queue, err)
		}
		n, _ := res.RowsAffected()
		o.ok = n == 1
		return nil
	case opPeriodic:
		res, err := q.st.slot.ExecContext(ctx, o.name, o.slot, now+o.delay.Milliseconds())
		if err != nil {
			return fmt.Errorf("sqlitequeue: claim slot %d of periodic job %q: %w", o.slot, o.name, err)
		}
		if n, _ := res.RowsAffected(); n == 1 {
			res, err := q.st.insert.ExecContext(ctx, o.queue, now, now, o.payload)
			if err != nil {
				return fmt.Errorf("sqlitequeue: submit periodic job %q to queue %q: %w", o.name, o.queue, err)
			}
			if o.id, err = res.LastInsertId(); err != nil {
				return err
			}
			o.ok = true
		}
		if _, err := q.st.pruneSlots.ExecContext(ctx, o.name, now); err != nil {
			return fmt.Errorf("sqlitequeue: prune slots of periodic job %q: %w", o.name, err)
		}
		return nil
	case opAdmin:
		n, err := o.fn(ctx, now)
		if err != nil {
			return fmt.Errorf("sqlitequeue: %s dead letters of queue %q: %w", o.name, o.queue, err)
		}
		o.id, o.ok = n, n > 0
		return nil
	}
	return fmt.Errorf("sqlitequeue: unknown op %d", o.kind)
}

func (q *Queue) execClaim(ctx context.Context, o *op, now int64) error {
	rows, err := q.st.claim.QueryContext(ctx, now+o.delay.Milliseconds(), o.queue, now, o.max)
	if err != nil {
		return fmt.Errorf("sqlitequeue: claim from queue %q: %w", o.queue, err)
	}
	defer rows.Close()
	for rows.Next() {
		var id, attempt, claims, created int64
		var payload []byte
		if err := rows.Scan(&id, &attempt, &claims, &created, &payload); err != nil {
			return fmt.Errorf("sqlitequeue: claim from queue %q: %w", o.queue, err)
		}
		if payload == nil {
			payload = []byte{}
		}
		o.jobs = append(o.jobs, &jobs.Job{
			Queue:    o.queue,
			ID:       strconv.FormatInt(id, 10),
			Attempt:  int(attempt),
			Payload:  payload,
			Enqueued: time.UnixMilli(created),
			Receipt:  strconv.FormatInt(claims, 10),
		})
	}
	if err := rows.Err(); err != nil {
		o.jobs = nil
		return fmt.Errorf("sqlitequeue: claim from queue %q: %w", o.queue, err)
	}
	return nil
}

// parseJob recovers the row id and claim generation of a claimed job.
func parseJob(j *jobs.Job) (id, claims int64, err error) {
	id, err1 := strconv.ParseInt(j.ID, 10, 64)
	claims, err2 := strconv.ParseInt(j.Receipt, 10, 64)
	if err1 != nil || err2 != nil {
		return 0, 0, fmt.Errorf("sqlitequeue: job %q (receipt %q) of queue %q was not claimed from this backend: %w", j.ID, j.Receipt, j.Queue, jobs.ErrInvalid)
	}
	return id, claims, nil
}

func unavailable(what string, err error) error {
	return fmt.Errorf("sqlitequeue: %s: %w: %w", what, jobs.ErrUnavailable, err)
}

// Submit implements jobs.Backend and host.Queue.
func (q *Queue) Submit(ctx context.Context, queue string, payload []byte, delay time.Duration) (string, error) {
	if err := jobs.CheckSubmit(queue, payload, delay); err != nil {
		return "", fmt.Errorf("sqlitequeue: %w", err)
	}
	o := getOp(opSubmit)
	defer putOp(o)
	o.queue, o.payload, o.delay = queue, payload, delay
	if payload == nil {
		o.payload = []byte{}
	}
	if err := q.do(ctx, o); err != nil {
		return "", err
	}
	return strconv.FormatInt(o.id, 10), nil
}

// Claim implements jobs.Backend.
func (q *Queue) Claim(ctx context.Context, queue string, max int, lease, wait time.Duration) ([]*jobs.Job, error) {
	if max <= 0 {
		return nil, nil
	}
	if lease <= 0 {
		return nil, fmt.Errorf("sqlitequeue: claim from queue %q: %w: lease %v", queue, jobs.ErrInvalid, lease)
	}
	deadline := time.Now().Add(wait)
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	look := true // whether a claim may find something
	for {
		// Subscribe before looking, so a submit in between is not missed.
		woken := q.wake.wait(queue)
		if look {
			js, err := q.claimOnce(ctx, queue, max, lease)
			if err != nil || len(js) > 0 {
				return js, err
			}
		}
		remaining := time.Until(deadline)
		if remaining <= 0 {
			return nil, nil
		}
		d := min(remaining, q.opts.PollInterval)
		if timer == nil {
			timer = time.NewTimer(d)
		} else {
			timer.Reset(d)
		}
		select {
		case <-woken:
			look = true
		case <-timer.C:
			// Another process may have submitted, or a delay or lease run
			// out: a read says whether a (write) claim is worth it.
			look = q.hasReady(ctx, queue)
		case <-ctx.Done():
			return nil, nil
		case <-q.closing:
			return nil, jobs.ErrClosed
		}
	}
}

func (q *Queue) claimOnce(ctx context.Context, queue string, max int, lease time.Duration) ([]*jobs.Job, error) {
	o := getOp(opClaim)
	defer putOp(o)
	o.queue, o.max, o.delay = queue, max, lease
	err := q.do(ctx, o)
	if ctx.Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
		return nil, nil
	}
	return o.jobs, err
}

func (q *Queue) hasReady(ctx context.Context, queue string) bool {
	var one int
	err := q.read.ready.QueryRowContext(ctx, queue, time.Now().UnixMilli()).Scan(&one)
	if err != nil && !errors.Is(err, sql.ErrNoRows) && ctx.Err() == nil {
		q.log.Warn("sqlitequeue: poll failed", "queue", queue, "error", err)
		return true // let the claim report it
	}
	return err == nil
}

func (q *Queue) update(ctx context.Context, kind opKind, j *jobs.Job, delay time.Duration, reason string) error {
	o := getOp(kind)
	defer putOp(o)
	o.job, o.queue, o.delay, o.reason = j, j.Queue, delay, reason
	return q.do(ctx, o)
}

// Ack implements jobs.Backend.
func (q *Queue) Ack(ctx context.Context, j *jobs.Job) error {
	return q.update(ctx, opAck, j, 0, "")
}

// Retry implements jobs.Backend.
func (q *Queue) Retry(ctx context.Context, j *jobs.Job, delay time.Duration, reason string) error {
	return q.update(ctx, opRetry, j, max(delay, 0), reason)
}

// DeadLetter implements jobs.Backend.
func (q *Queue) DeadLetter(ctx context.Context, j *jobs.Job, reason string) error {
	return q.update(ctx, opDead, j, 0, reason)
}

// Release implements jobs.Backend.
func (q *Queue) Release(ctx context.Context, j *jobs.Job) error {
	return q.update(ctx, opRelease, j, 0, "")
}

// SubmitPeriodic implements jobs.Backend. The slot's row and the job's row
// are written in one transaction.
func (q *Queue) SubmitPeriodic(ctx context.Context, name string, slot time.Time, keep time.Duration, queue string, payload []byte) (string, bool, error) {
	if err := jobs.CheckSubmit(queue, payload, 0); err != nil {
		return "", false, fmt.Errorf("sqlitequeue: periodic job %q: %w", name, err)
	}
	o := getOp(opPeriodic)
	defer putOp(o)
	o.name, o.slot, o.delay, o.queue, o.payload = name, slot.UnixMilli(), max(keep, 0), queue, payload
	if payload == nil {
		o.payload = []byte{}
	}
	if err := q.do(ctx, o); err != nil {
		return "", false, err
	}
	if !o.ok {
		return "", false, nil
	}
	return strconv.FormatInt(o.id, 10), true, nil
}

// Stats implements jobs.Backend.
func (q *Queue) Stats(ctx context.Context, queue string) (jobs.QueueStats, error) {
	s := jobs.QueueStats{Queue: queue}
	err := q.read.stats.QueryRowContext(ctx, queue, time.Now().UnixMilli()).
		Scan(&s.Ready, &s.Delayed, &s.InFlight, &s.Retrying, &s.Dead)
	if err != nil {
		return s, fmt.Errorf("sqlitequeue: stats of queue %q: %w", queue, err)
	}
	err = q.read.completed.QueryRowContext(ctx, queue).Scan(&s.Completed)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return s, fmt.Errorf("sqlitequeue: stats of queue %q: %w", queue, err)
	}
	return s, nil
}

// DeadLetters implements jobs.DeadLetterReader: dead-lettered rows stay in
// the table, in state 2, until deleted by hand.
func (q *Queue) DeadLetters(ctx context.Context, queue string, n int) ([]jobs.DeadLetter, error) {
	if n <= 0 {
		return nil, nil
	}
	rows, err := q.read.dead.QueryContext(ctx, queue, n)
	if err != nil {
		return nil, fmt.Errorf("sqlitequeue: dead letters of queue %q: %w", queue, err)
	}
	defer rows.Close()
	var out []jobs.DeadLetter
	for rows.Next() {
		var id, attempt, created, at int64
		var d jobs.DeadLetter
		if err := rows.Scan(&id, &attempt, &created, &d.Job.Payload, &d.Reason, &at); err != nil {
			return nil, fmt.Errorf("sqlitequeue: dead letters of queue %q: %w", queue, err)
		}
		d.Job.Queue, d.Job.ID, d.Job.Attempt = queue, strconv.FormatInt(id, 10), int(attempt)
		d.Job.Enqueued, d.At = time.UnixMilli(created), time.UnixMilli(at)
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlitequeue: dead letters of queue %q: %w", queue, err)
	}
	return out, nil
}

// RequeueDead implements jobs.DeadLetterManager: the rows go back to state
// 0 with their attempt count reset, ready now.
func (q *Queue) RequeueDead(ctx context.Context, queue string, ids []string) (int, error) {
	return q.manageDead(ctx, "requeue", queue, ids,
		`UPDATE wasmcorn_jobs SET state = 0, attempt = 0, visible_at = ?, last_error = NULL WHERE queue = ? AND state = 2`, true)
}

// PurgeDead implements jobs.DeadLetterManager.
func (q *Queue) PurgeDead(ctx context.Context, queue string, ids []string) (int, error) {
	return q.manageDead(ctx, "purge", queue, ids, `DELETE FROM wasmcorn_jobs WHERE queue = ? AND state = 2`, false)
}

// maxIDsPerStatement keeps an id list within SQLite's bound variables.
const maxIDsPerStatement = 500

// manageDead runs stmt (whose first arguments are [now,] queue) over the
// dead letters of queue with ids, or all of them when ids is empty, in one
// write transaction. Ids that are not numbers match nothing.
func (q *Queue) manageDead(ctx context.Context, what, queue string, ids []string, stmt string, withNow bool) (int, error) {
	if err := jobs.CheckQueueName(queue); err != nil {
		return 0, fmt.Errorf("sqlitequeue: %s dead letters: %w", what, err)
	}
	var nums []any
	for _, id := range ids {
		if n, err := strconv.ParseInt(id, 10, 64); err == nil {
			nums = append(nums, n)
		}
	}
	if len(ids) > 0 && len(nums) == 0 {
		return 0, nil
	}
	o := getOp(opAdmin)
	defer putOp(o)
	o.name, o.queue = what, queue
	o.fn = func(ctx context.Context, now int64) (int64, error) {
		args := []any{queue}
		if withNow {
			args = []any{now, queue}
		}
		if len(nums) == 0 {
			res, err := q.conn.ExecContext(ctx, stmt, args...)
			if err != nil {
				return 0, err
			}
			return res.RowsAffected()
		}
		var total int64
		for chunk := range slices.Chunk(nums, maxIDsPerStatement) {
			in := strings.Repeat(",?", len(chunk))[1:]
			res, err := q.conn.ExecContext(ctx, stmt+" AND id IN ("+in+")", append(slices.Clone(args), chunk...)...)
			if err != nil {
				return 0, err
			}
			n, _ := res.RowsAffected()
			total += n
		}
		return total, nil
	}
	if err := q.do(ctx, o); err != nil {
		return 0, err
	}
	return int(o.id), nil
}

// Close stops the writer after the operations already queued and closes
// the database. Claims waiting for work return ErrClosed.
func (q *Queue) Close() error {
	q.closeMu.Lock()
	if q.closed {
		q.closeMu.Unlock()
		return nil
	}
	q.closed = true
	close(q.closing)
	close(q.ops)
	q.closeMu.Unlock()
	<-q.writerDone
	return q.closeDBs()
}

func (q *Queue) closeDBs() error {
	for _, s := range []*sql.Stmt{q.st.insert, q.st.claim, q.st.del, q.st.count, q.st.retry,
		q.st.dead, q.st.release, q.st.slot, q.st.pruneSlots, q.read.ready, q.read.stats, q.read.completed, q.read.dead} {
		if s != nil {
			s.Close()
		}
	}
	var errs []error
	if q.conn != nil {
		errs = append(errs, q.conn.Close())
	}
	errs = append(errs, q.wdb.Close(), q.rdb.Close())
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("sqlitequeue: close %s: %w", q.opts.Path, err)
	}
	return nil
}

// waker lets claims wait for submits of this process to their queue.
type waker struct {
	mu sync.Mutex
	ch map[string]chan struct{}
}

// wait returns a channel closed at the next wake of queue.
func (w *waker) wait(queue string) <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ch == nil {
		w.ch = make(map[string]chan struct{})
	}
	c, ok := w.ch[queue]
	if !ok {
		c = make(chan struct{})
		w.ch[queue] = c
	}
	return c
}

func (w *waker) wake(queue string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if c, ok := w.ch[queue]; ok {
		close(c)
		delete(w.ch, queue)
	}
}
