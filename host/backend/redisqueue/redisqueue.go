// Package redisqueue is the networked job queue: a jobs.Backend over Redis
// Streams with consumer groups (Redis 6.2 or later), standalone, Sentinel or
// Cluster, through go-redis.
//
// Keys of queue Q (P is Config.KeyPrefix; the braces make every key of a
// queue hash to one cluster slot, so scripts may touch them together):
//
//	P q:{Q}:ready     stream of jobs to run, consumer group Config.Group
//	P q:{Q}:delayed   sorted set of delayed jobs, scored by due time (ms)
//	P q:{Q}:retry     sorted set of failed jobs waiting for their backoff
//	P q:{Q}:dead      stream of dead letters (job, reason, time)
//	P q:{Q}:stats     hash: completed
//	P q:{Q}:slot:N:T  periodic slot T of schedule N, SET NX PX
//
// A job is one string, "attempts|enqueued_ms|id|payload", stored in the
// stream entry's field "j" or as a sorted-set member. Claim is XREADGROUP;
// a claimed entry stays in the group's pending list until the runner's
// verdict: Ack, Retry, DeadLetter and Release are Lua scripts that XACK the
// entry and, only if it was still pending, delete it and count it, put the
// job in the retry set, append it to the dead-letter stream, or re-add it.
// Delayed and retried jobs move to the stream when due, by a script every
// claiming process runs. A claim's lease is part of its consumer's name
// ("name@lease_ms"); entries pending on a consumer longer than its lease
// (the worker died) are taken with XCLAIM by any claiming process and
// re-added with the lost delivery counted.
// A periodic slot is claimed and its job added by one script: SET NX PX
// then XADD.
//
// A job reclaimed from a worker that was only slow may run twice; so may a
// job whose Ack reply was lost. Delivery is at least once.
package redisqueue

import (
	"context"
	crand "crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wasmcorn/wasmcorn/host/backend/redisconn"
	"github.com/wasmcorn/wasmcorn/host/jobs"
)

// Modes of Config.Mode.
const (
	ModeStandalone = redisconn.ModeStandalone
	ModeSentinel   = redisconn.ModeSentinel
	ModeCluster    = redisconn.ModeCluster
)

// DefaultTimeout is the default ReadTimeout and WriteTimeout (a blocking
// claim gets its wait on top).
const DefaultTimeout = 2 * time.Second

// Config configures a Queue. The zero value is a standalone server on
// 127.0.0.1:6379 with every default.
type Config struct {
	// Conn says how to reach Redis; ReadTimeout and WriteTimeout default
	// to DefaultTimeout here.
	redisconn.Conn
	// KeyPrefix starts every key. Default "wasmcorn:".
	KeyPrefix string
	// Group is the consumer group of every ready stream. Default
	// "wasmcorn".
	Group string
	// Consumer names this process in the groups. Default
	// "hostname-pid-random", unique per Queue.
	Consumer string
	// PromoteEvery is how often a claiming process looks for delayed and
	// retried jobs that came due, besides the due times it already knows.
	// Default 200ms.
	PromoteEvery time.Duration
	// DeadMaxLen caps each dead-letter stream, approximately (oldest
	// entries go first). Default 100000.
	DeadMaxLen int64
	// Logger receives background errors. Default slog.Default().
	Logger *slog.Logger
}

func (c Config) withDefaults() Config {
	c.Conn = c.Conn.WithDefaults(DefaultTimeout)
	if c.KeyPrefix == "" {
		c.KeyPrefix = "wasmcorn:"
	}
	if c.Group == "" {
		c.Group = "wasmcorn"
	}
	if c.Consumer == "" {
		host, _ := os.Hostname()
		c.Consumer = fmt.Sprintf("%s-%d-%s", host, os.Getpid(), crand.Text()[:8])
	}
	if c.PromoteEvery <= 0 {
		c.PromoteEvery = 200 * time.Millisecond
	}
	if c.DeadMaxLen <= 0 {
		c.DeadMaxLen = 100000
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Validate reports the first invalid field of c after defaults.
func (c Config) Validate() error {
	if err := c.withDefaults().Conn.Validate(); err != nil {
		return fmt.Errorf("redisqueue: %w", err)
	}
	return nil
}

// Queue is a jobs.Backend over Redis Streams. It also satisfies host.Queue.
// It is safe for concurrent use; create it with New and Close it when done.
type Queue struct {
	cfg    Config
	rdb    redis.UniversalClient
	log    *slog.Logger
	closed chan struct{}
	once   sync.Once
	ops    chan *pipeOp // for the batchers

	mu     sync.Mutex
	queues map[string]*queueState
}

// pipeOp is one command for the batchers: a script call, or a plain
// command built by plain.
type pipeOp struct {
	script *redis.Script
	keys   []string
	args   []any
	plain  func(ctx context.Context, p redis.Pipeliner) redis.Cmder
	cmd    redis.Cmder
	done   chan struct{}
}

// Pipelining. Submits and verdicts of concurrent callers are grouped into
// one pipeline per round trip by batchers goroutines, each pipeline at
// most maxPipe commands.
const (
	batchers = 2
	maxPipe  = 256
)

// queueState is what this process knows about one queue.
type queueState struct {
	keys keys

	mu          sync.Mutex
	group       bool      // the consumer group exists (as far as we know)
	lastPromote time.Time // last run of the promote script
	nextDue     time.Time // earliest known due time of a delayed or retried job; zero: none
	lastReclaim time.Time
	lastCleanup time.Time
}

type keys struct {
	ready, delayed, retry, dead, stats, slot string
}

// New returns a Queue for cfg. It does not contact the server.
func New(cfg Config) (*Queue, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	q := &Queue{
		cfg:    cfg,
		rdb:    redisconn.NewClient(cfg.Conn),
		log:    cfg.Logger,
		closed: make(chan struct{}),
		ops:    make(chan *pipeOp, maxPipe),
		queues: make(map[string]*queueState),
	}
	for range batchers {
		go q.batcher()
	}
	return q, nil
}

// batcher sends pending ops in pipelines until Close.
func (q *Queue) batcher() {
	batch := make([]*pipeOp, 0, maxPipe)
	for {
		select {
		case op := <-q.ops:
			batch = append(batch[:0], op)
		case <-q.closed:
			return
		}
	drain:
		for len(batch) < maxPipe {
			select {
			case op := <-q.ops:
				batch = append(batch, op)
			default:
				break drain
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), q.cfg.WriteTimeout+q.cfg.ReadTimeout)
		p := q.rdb.Pipeline()
		for _, op := range batch {
			if op.script != nil {
				op.cmd = p.EvalSha(ctx, op.script.Hash(), op.keys, op.args...)
			} else {
				op.cmd = op.plain(ctx, p)
			}
		}
		_, _ = p.Exec(ctx) // errors are read per command
		for _, op := range batch {
			if op.script != nil && op.cmd.Err() != nil && strings.HasPrefix(op.cmd.Err().Error(), "NOSCRIPT") {
				// The server lost its script cache: EVAL loads it again.
				op.cmd = op.script.Run(ctx, q.rdb, op.keys, op.args...)
			}
		}
		cancel()
		for _, op := range batch {
			close(op.done)
		}
	}
}

// do runs op through a batcher and returns its command. Once queued an op
// is not abandoned when ctx ends (the batch's own timeout bounds it), so a
// caller never misses the outcome of a command that ran.
func (q *Queue) do(ctx context.Context, op *pipeOp) (redis.Cmder, error) {
	op.done = make(chan struct{})
	select {
	case q.ops <- op:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-q.closed:
		return nil, jobs.ErrClosed
	}
	select {
	case <-op.done:
		return op.cmd, op.cmd.Err()
	case <-q.closed:
		return nil, jobs.ErrClosed
	}
}

// Ping checks that the server answers.
func (q *Queue) Ping(ctx context.Context) error {
	if err := q.rdb.Ping(ctx).Err(); err != nil {
		return q.wrap(ctx, "ping", "", err)
	}
	return nil
}

// Close closes the connections. Later calls fail with jobs.ErrClosed.
func (q *Queue) Close() error {
	var err error
	q.once.Do(func() {
		close(q.closed)
		err = q.rdb.Close()
	})
	return err
}

func (q *Queue) isClosed() bool {
	select {
	case <-q.closed:
		return true
	default:
		return false
	}
}

func (q *Queue) state(queue string) *queueState {
	q.mu.Lock()
	defer q.mu.Unlock()
	s, ok := q.queues[queue]
	if !ok {
		base := q.cfg.KeyPrefix + "q:{" + queue + "}:"
		s = &queueState{keys: keys{
			ready: base + "ready", delayed: base + "delayed", retry: base + "retry",
			dead: base + "dead", stats: base + "stats", slot: base + "slot:",
		}}
		q.queues[queue] = s
	}
	return s
}

// encode returns the stored form of a job: "attempts|enqueued_ms|id|payload".
func encode(attempts int, enqueued int64, id string, payload []byte) string {
	var b strings.Builder
	b.Grow(len(id) + len(payload) + 24)
	b.WriteString(strconv.Itoa(attempts))
	b.WriteByte('|')
	b.WriteString(strconv.FormatInt(enqueued, 10))
	b.WriteByte('|')
	b.WriteString(id)
	b.WriteByte('|')
	b.Write(payload)
	return b.String()
}

// decode parses encode's output.
func decode(s string) (attempts int, enqueued int64, id string, payload []byte, err error) {
	a, rest, ok1 := strings.Cut(s, "|")
	t, rest, ok2 := strings.Cut(rest, "|")
	id, p, ok3 := strings.Cut(rest, "|")
	if !ok1 || !ok2 || !ok3 || id == "" {
		return 0, 0, "", nil, errors.New("malformed job record")
	}
	if attempts, err = strconv.Atoi(a); err != nil || attempts < 0 {
		return 0, 0, "", nil, errors.New("malformed job record: attempts")
	}
	if enqueued, err = strconv.ParseInt(t, 10, 64); err != nil {
		return 0, 0, "", nil, errors.New("malformed job record: time")
	}
	return attempts, enqueued, id, []byte(p), nil
}

// Scripts. KEYS of one call always belong to one queue (one cluster slot).
var (
	// ack: KEYS ready, stats; ARGV group, entry.
	ackScript = redis.NewScript(`
if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 1 then
	redis.call('XDEL', KEYS[1], ARGV[2])
	redis.call('HINCRBY', KEYS[2], 'completed', 1)
	return 1
end
return 0`)
	// retry: KEYS ready, retry; ARGV group, entry, due_ms, job.
	retryScript = redis.NewScript(`
if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 1 then
	redis.call('XDEL', KEYS[1], ARGV[2])
	redis.call('ZADD', KEYS[2], ARGV[3], ARGV[4])
	return 1
end
return 0`)
	// requeue (release, reclaim): KEYS ready; ARGV group, entry, job.
	requeueScript = redis.NewScript(`
if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 1 then
	redis.call('XDEL', KEYS[1], ARGV[2])
	redis.call('XADD', KEYS[1], '*', 'j', ARGV[3])
	return 1
end
return 0`)
	// dead: KEYS ready, dead; ARGV group, entry, job, reason, at_ms, maxlen.
	deadScript = redis.NewScript(`
if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 1 then
	redis.call('XDEL', KEYS[1], ARGV[2])
	redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[6], '*', 'j', ARGV[3], 'reason', ARGV[4], 'at', ARGV[5])
	return 1
end
return 0`)
	// promote: KEYS ready, delayed, retry; ARGV now_ms, limit. Moves due
	// jobs to the stream; returns {moved, earliest remaining due or -1}.
	promoteScript = redis.NewScript(`
local moved = 0
local nextDue = -1
for i = 2, 3 do
	local due = redis.call('ZRANGEBYSCORE', KEYS[i], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
	for _, job in ipairs(due) do
		redis.call('XADD', KEYS[1], '*', 'j', job)
		redis.call('ZREM', KEYS[i], job)
		moved = moved + 1
	end
	local first = redis.call('ZRANGE', KEYS[i], 0, 0, 'WITHSCORES')
	if first[2] then
		local s = tonumber(first[2])
		if nextDue < 0 or s < nextDue then nextDue = s end
	end
end
return {moved, nextDue}`)
	// requeueDead: KEYS dead, ready; ARGV entry1, job1, entry2, job2...
	// Moves each dead letter still there to the stream; returns how many.
	requeueDeadScript = redis.NewScript(`
local n = 0
for i = 1, #ARGV, 2 do
	if redis.call('XDEL', KEYS[1], ARGV[i]) == 1 then
		redis.call('XADD', KEYS[2], '*', 'j', ARGV[i+1])
		n = n + 1
	end
end
return n`)
	// periodic: KEYS slot, ready; ARGV keep_ms, job.
	periodicScript = redis.NewScript(`
if redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[1]) then
	redis.call('XADD', KEYS[2], '*', 'j', ARGV[2])
	return 1
end
return 0`)
)

// promoteBatch bounds the jobs one promote script moves.
const promoteBatch = 1000

// Submit implements jobs.Backend and host.Queue: XADD for a job ready now,
// ZADD to the delayed set otherwise.
func (q *Queue) Submit(ctx context.Context, queue string, payload []byte, delay time.Duration) (string, error) {
	if err := jobs.CheckSubmit(queue, payload, delay); err != nil {
		return "", fmt.Errorf("redisqueue: %w", err)
	}
	if q.isClosed() {
		return "", fmt.Errorf("redisqueue: submit to queue %q: %w", queue, jobs.ErrClosed)
	}
	s := q.state(queue)
	id := crand.Text()
	now := time.Now()
	job := encode(0, now.UnixMilli(), id, payload)
	op := &pipeOp{}
	due := now.Add(delay)
	if delay > 0 {
		op.plain = func(ctx context.Context, p redis.Pipeliner) redis.Cmder {
			return p.ZAdd(ctx, s.keys.delayed, redis.Z{Score: float64(due.UnixMilli()), Member: job})
		}
	} else {
		op.plain = func(ctx context.Context, p redis.Pipeliner) redis.Cmder {
			return p.XAdd(ctx, &redis.XAddArgs{Stream: s.keys.ready, Values: []any{"j", job}})
		}
	}
	_, err := q.do(ctx, op)
	if err == nil && delay > 0 {
		s.noteDue(due)
	}
	if err != nil {
		return "", q.wrap(ctx, "submit to queue", queue, err)
	}
	return id, nil
}

func (s *queueState) noteDue(t time.Time) {
	s.mu.Lock()
	if s.nextDue.IsZero() || t.Before(s.nextDue) {
		s.nextDue = t
	}
	s.mu.Unlock()
}

// Claim implements jobs.Backend: it first moves due delayed jobs and
// reclaims expired leases (each at most as often as needed), then reads new
// entries with XREADGROUP, blocking up to wait but no longer than the next
// known due time.
func (q *Queue) Claim(ctx context.Context, queue string, max int, lease, wait time.Duration) ([]*jobs.Job, error) {
	if max <= 0 {
		return nil, nil
	}
	if lease <= 0 {
		return nil, fmt.Errorf("redisqueue: claim from queue %q: %w: lease %v", queue, jobs.ErrInvalid, lease)
	}
	if q.isClosed() {
		return nil, fmt.Errorf("redisqueue: claim from queue %q: %w", queue, jobs.ErrClosed)
	}
	if ctx.Err() != nil {
		return nil, nil
	}
	s := q.state(queue)
	deadline := time.Now().Add(wait)
	for {
		js, err := q.claimOnce(ctx, queue, s, max, lease, time.Until(deadline))
		if err != nil && ctx.Err() != nil {
			return nil, nil
		}
		if err != nil || len(js) > 0 || ctx.Err() != nil || !time.Now().Before(deadline) {
			return js, err
		}
	}
}

// claimOnce runs maintenance when due and one XREADGROUP, blocking up to
// wait but not past the next promotion.
func (q *Queue) claimOnce(ctx context.Context, queue string, s *queueState, max int, lease, wait time.Duration) ([]*jobs.Job, error) {
	if err := q.ensureGroup(ctx, queue, s); err != nil {
		return nil, err
	}
	block, err := q.maintain(ctx, queue, s, lease)
	if err != nil {
		return nil, err
	}
	block = min(block, wait)
	if block <= 0 {
		block = -1 // no BLOCK argument: return at once
	} else if block < time.Millisecond {
		block = time.Millisecond // BLOCK 0 would wait forever
	}
	// Not cancelled with ctx: entries read are delivered to this consumer
	// whether or not the reply arrives, so the reply must be read and the
	// jobs handed to the caller (who releases them when stopping).
	res, err := q.rdb.XReadGroup(context.WithoutCancel(ctx), &redis.XReadGroupArgs{
		Group:    q.cfg.Group,
		Consumer: q.consumer(lease),
		Streams:  []string{s.keys.ready, ">"},
		Count:    int64(max),
		Block:    block,
	}).Result()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		if strings.HasPrefix(err.Error(), "NOGROUP") {
			s.mu.Lock()
			s.group = false // the stream was lost (server restarted without persistence)
			s.mu.Unlock()
		}
		return nil, q.wrap(ctx, "claim from queue", queue, err)
	}
	var out []*jobs.Job
	for _, str := range res {
		for _, m := range str.Messages {
			j, err := q.toJob(queue, m)
			if err != nil {
				q.log.Error("redisqueue: dropping a malformed stream entry", "queue", queue, "entry", m.ID, "error", err)
				q.rdb.XAck(ctx, s.keys.ready, q.cfg.Group, m.ID)
				q.rdb.XDel(ctx, s.keys.ready, m.ID)
				continue
			}
			out = append(out, j)
		}
	}
	return out, nil
}

func (q *Queue) toJob(queue string, m redis.XMessage) (*jobs.Job, error) {
	raw, ok := m.Values["j"].(string)
	if !ok {
		return nil, errors.New(`no field "j"`)
	}
	attempts, enq, id, payload, err := decode(raw)
	if err != nil {
		return nil, err
	}
	return &jobs.Job{
		Queue:    queue,
		ID:       id,
		Attempt:  attempts + 1,
		Payload:  payload,
		Enqueued: time.UnixMilli(enq),
		Receipt:  m.ID,
	}, nil
}

// ensureGroup creates queue's stream and consumer group once.
func (q *Queue) ensureGroup(ctx context.Context, queue string, s *queueState) error {
	s.mu.Lock()
	ok := s.group
	s.mu.Unlock()
	if ok {
		return nil
	}
	err := q.rdb.XGroupCreateMkStream(ctx, s.keys.ready, q.cfg.Group, "0").Err()
	if err != nil && !strings.HasPrefix(err.Error(), "BUSYGROUP") {
		return q.wrap(ctx, "create consumer group of queue", queue, err)
	}
	s.mu.Lock()
	s.group = true
	s.mu.Unlock()
	return nil
}

// maintain promotes due jobs and reclaims expired leases of queue when it
// is time to, and returns how long a claim may block before the next
// promotion is due.
func (q *Queue) maintain(ctx context.Context, queue string, s *queueState, lease time.Duration) (time.Duration, error) {
	now := time.Now()
	s.mu.Lock()
	promote := now.Sub(s.lastPromote) >= q.cfg.PromoteEvery || (!s.nextDue.IsZero() && !now.Before(s.nextDue))
	reclaimEvery := min(max(lease/4, 50*time.Millisecond), time.Second)
	reclaim := now.Sub(s.lastReclaim) >= reclaimEvery
	cleanup := now.Sub(s.lastCleanup) >= 10*time.Minute
	if promote {
		s.lastPromote = now
	}
	if reclaim {
		s.lastReclaim = now
	}
	if cleanup {
		s.lastCleanup = now
	}
	s.mu.Unlock()

	if promote {
		for {
			res, err := promoteScript.Run(ctx, q.rdb, []string{s.keys.ready, s.keys.delayed, s.keys.retry},
				now.UnixMilli(), promoteBatch).Int64Slice()
			if err != nil {
				return 0, q.wrap(ctx, "promote due jobs of queue", queue, err)
			}
			s.mu.Lock()
			s.nextDue = time.Time{}
			if len(res) == 2 && res[1] >= 0 {
				s.nextDue = time.UnixMilli(res[1])
			}
			s.mu.Unlock()
			if len(res) == 0 || res[0] < promoteBatch {
				break
			}
		}
	}
	if reclaim {
		if err := q.reclaim(ctx, queue, s, lease); err != nil {
			return 0, err
		}
	}
	if cleanup {
		q.cleanupConsumers(ctx, queue, s)
	}

	s.mu.Lock()
	next := s.lastPromote.Add(q.cfg.PromoteEvery)
	if !s.nextDue.IsZero() && s.nextDue.Before(next) {
		next = s.nextDue
	}
	s.mu.Unlock()
	return time.Until(next), nil
}

// consumer is this process's consumer name for claims with lease. The
// lease is part of the name, so any process can tell when an entry pending
// on a consumer has outlived its lease.
func (q *Queue) consumer(lease time.Duration) string {
	return q.cfg.Consumer + "@" + strconv.FormatInt(lease.Milliseconds(), 10)
}

// leaseOf parses the lease out of a consumer name made by consumer.
func leaseOf(consumer string) (time.Duration, bool) {
	i := strings.LastIndexByte(consumer, '@')
	if i < 0 {
		return 0, false
	}
	ms, err := strconv.ParseInt(consumer[i+1:], 10, 64)
	if err != nil || ms <= 0 {
		return 0, false
	}
	return time.Duration(ms) * time.Millisecond, true
}

// reclaim finds entries pending longer than their consumer's lease (their
// worker is presumed dead), takes them with XCLAIM (whose min-idle check
// makes two reclaimers race safely) and re-adds each with the lost
// delivery counted. A consumer whose name carries no lease is judged by
// this claim's lease.
func (q *Queue) reclaim(ctx context.Context, queue string, s *queueState, lease time.Duration) error {
	cs, err := q.rdb.XInfoConsumers(ctx, s.keys.ready, q.cfg.Group).Result()
	if err != nil {
		return q.wrap(ctx, "list consumers of queue", queue, err)
	}
	me := q.consumer(lease)
	for _, c := range cs {
		if c.Pending == 0 {
			continue
		}
		cl, ok := leaseOf(c.Name)
		if !ok {
			cl = lease
		}
		pend, err := q.rdb.XPendingExt(ctx, &redis.XPendingExtArgs{
			Stream: s.keys.ready, Group: q.cfg.Group, Idle: cl,
			Start: "-", End: "+", Count: 100, Consumer: c.Name,
		}).Result()
		if err != nil {
			return q.wrap(ctx, "list expired jobs of queue", queue, err)
		}
		if len(pend) == 0 {
			continue
		}
		ids := make([]string, len(pend))
		for i, p := range pend {
			ids[i] = p.ID
		}
		msgs, err := q.rdb.XClaim(ctx, &redis.XClaimArgs{
			Stream: s.keys.ready, Group: q.cfg.Group, Consumer: me, MinIdle: cl, Messages: ids,
		}).Result()
		if err != nil && !errors.Is(err, redis.Nil) {
			return q.wrap(ctx, "reclaim expired jobs of queue", queue, err)
		}
		for _, m := range msgs {
			raw, _ := m.Values["j"].(string)
			attempts, enq, id, payload, err := decode(raw)
			if err != nil {
				q.log.Error("redisqueue: dropping a malformed stream entry", "queue", queue, "entry", m.ID, "error", err)
				q.rdb.XAck(ctx, s.keys.ready, q.cfg.Group, m.ID)
				q.rdb.XDel(ctx, s.keys.ready, m.ID)
				continue
			}
			job := encode(attempts+1, enq, id, payload)
			if err := requeueScript.Run(ctx, q.rdb, []string{s.keys.ready}, q.cfg.Group, m.ID, job).Err(); err != nil {
				return q.wrap(ctx, "reclaim job "+id+" of queue", queue, err)
			}
			q.log.Info("redisqueue: reclaimed a job whose lease ran out", "queue", queue, "job", id,
				"consumer", c.Name, "attempt", attempts+1)
		}
	}
	return nil
}

// cleanupConsumers deletes consumers of queue's group (other than this
// one) that own no pending entry and were idle for an hour: the processes
// of earlier runs.
func (q *Queue) cleanupConsumers(ctx context.Context, queue string, s *queueState) {
	cs, err := q.rdb.XInfoConsumers(ctx, s.keys.ready, q.cfg.Group).Result()
	if err != nil {
		return
	}
	for _, c := range cs {
		if c.Pending == 0 && c.Idle > time.Hour && !strings.HasPrefix(c.Name, q.cfg.Consumer+"@") {
			q.rdb.XGroupDelConsumer(ctx, s.keys.ready, q.cfg.Group, c.Name)
		}
	}
}

// verdict runs one of the XACK-guarded scripts for a claimed job.
func (q *Queue) verdict(ctx context.Context, what string, j *jobs.Job, script *redis.Script, keys []string, args ...any) error {
	if q.isClosed() {
		return fmt.Errorf("redisqueue: %s job %s of queue %q: %w", what, j.ID, j.Queue, jobs.ErrClosed)
	}
	if j.Receipt == "" {
		return fmt.Errorf("redisqueue: %s job %s of queue %q: %w: not claimed from this backend", what, j.ID, j.Queue, jobs.ErrInvalid)
	}
	if _, err := q.do(ctx, &pipeOp{script: script, keys: keys, args: args}); err != nil {
		return q.wrap(ctx, what+" job "+j.ID+" of queue", j.Queue, err)
	}
	return nil
}

// Ack implements jobs.Backend. An entry already reclaimed by another
// worker is not counted again (its copy may still run).
func (q *Queue) Ack(ctx context.Context, j *jobs.Job) error {
	s := q.state(j.Queue)
	return q.verdict(ctx, "ack", j, ackScript, []string{s.keys.ready, s.keys.stats}, q.cfg.Group, j.Receipt)
}

// Retry implements jobs.Backend.
func (q *Queue) Retry(ctx context.Context, j *jobs.Job, delay time.Duration, reason string) error {
	s := q.state(j.Queue)
	due := time.Now().Add(max(delay, 0))
	job := encode(j.Attempt, j.Enqueued.UnixMilli(), j.ID, j.Payload)
	err := q.verdict(ctx, "retry", j, retryScript, []string{s.keys.ready, s.keys.retry}, q.cfg.Group, j.Receipt, due.UnixMilli(), job)
	if err == nil {
		s.noteDue(due)
	}
	return err
}

// DeadLetter implements jobs.Backend.
func (q *Queue) DeadLetter(ctx context.Context, j *jobs.Job, reason string) error {
	s := q.state(j.Queue)
	job := encode(j.Attempt, j.Enqueued.UnixMilli(), j.ID, j.Payload)
	return q.verdict(ctx, "dead-letter", j, deadScript, []string{s.keys.ready, s.keys.dead},
		q.cfg.Group, j.Receipt, job, reason, time.Now().UnixMilli(), q.cfg.DeadMaxLen)
}

// Release implements jobs.Backend.
func (q *Queue) Release(ctx context.Context, j *jobs.Job) error {
	s := q.state(j.Queue)
	job := encode(max(j.Attempt-1, 0), j.Enqueued.UnixMilli(), j.ID, j.Payload)
	return q.verdict(ctx, "release", j, requeueScript, []string{s.keys.ready}, q.cfg.Group, j.Receipt, job)
}

// SubmitPeriodic implements jobs.Backend with one script: SET NX PX on the
// slot's key, then XADD.
func (q *Queue) SubmitPeriodic(ctx context.Context, name string, slot time.Time, keep time.Duration, queue string, payload []byte) (string, bool, error) {
	if err := jobs.CheckSubmit(queue, payload, 0); err != nil {
		return "", false, fmt.Errorf("redisqueue: periodic job %q: %w", name, err)
	}
	if q.isClosed() {
		return "", false, fmt.Errorf("redisqueue: periodic job %q: %w", name, jobs.ErrClosed)
	}
	s := q.state(queue)
	id := crand.Text()
	job := encode(0, time.Now().UnixMilli(), id, payload)
	slotKey := s.keys.slot + name + ":" + strconv.FormatInt(slot.UnixMilli(), 10)
	n, err := periodicScript.Run(ctx, q.rdb, []string{slotKey, s.keys.ready}, max(keep.Milliseconds(), 1), job).Int()
	if err != nil {
		return "", false, q.wrap(ctx, "submit periodic job "+name+" to queue", queue, err)
	}
	if n != 1 {
		return "", false, nil
	}
	return id, true, nil
}

// Stats implements jobs.Backend in one pipelined round trip.
func (q *Queue) Stats(ctx context.Context, queue string) (jobs.QueueStats, error) {
	st := jobs.QueueStats{Queue: queue}
	if q.isClosed() {
		return st, fmt.Errorf("redisqueue: stats of queue %q: %w", queue, jobs.ErrClosed)
	}
	s := q.state(queue)
	p := q.rdb.Pipeline()
	xlen := p.XLen(ctx, s.keys.ready)
	pending := p.XPending(ctx, s.keys.ready, q.cfg.Group)
	delayed := p.ZCard(ctx, s.keys.delayed)
	retry := p.ZCard(ctx, s.keys.retry)
	dead := p.XLen(ctx, s.keys.dead)
	completed := p.HGet(ctx, s.keys.stats, "completed")
	_, _ = p.Exec(ctx)
	for _, c := range []redis.Cmder{xlen, delayed, retry, dead} {
		if err := c.Err(); err != nil {
			return st, q.wrap(ctx, "stats of queue", queue, err)
		}
	}
	if err := pending.Err(); err == nil {
		st.InFlight = pending.Val().Count
	} else if !strings.HasPrefix(err.Error(), "NOGROUP") {
		return st, q.wrap(ctx, "stats of queue", queue, err)
	}
	if err := completed.Err(); err == nil {
		st.Completed, _ = completed.Int64()
	} else if !errors.Is(err, redis.Nil) {
		return st, q.wrap(ctx, "stats of queue", queue, err)
	}
	st.Ready = max(xlen.Val()-st.InFlight, 0)
	st.Delayed, st.Retrying, st.Dead = delayed.Val(), retry.Val(), dead.Val()
	return st, nil
}

// DeadLetters implements jobs.DeadLetterReader from the dead-letter stream.
func (q *Queue) DeadLetters(ctx context.Context, queue string, n int) ([]jobs.DeadLetter, error) {
	if n <= 0 {
		return nil, nil
	}
	s := q.state(queue)
	msgs, err := q.rdb.XRevRangeN(ctx, s.keys.dead, "+", "-", int64(n)).Result()
	if err != nil {
		return nil, q.wrap(ctx, "read dead letters of queue", queue, err)
	}
	out := make([]jobs.DeadLetter, 0, len(msgs))
	for _, m := range msgs {
		raw, _ := m.Values["j"].(string)
		attempts, enq, id, payload, err := decode(raw)
		if err != nil {
			continue
		}
		reason, _ := m.Values["reason"].(string)
		at, _ := strconv.ParseInt(fmt.Sprint(m.Values["at"]), 10, 64)
		out = append(out, jobs.DeadLetter{
			Job:    jobs.Job{Queue: queue, ID: id, Attempt: attempts, Payload: payload, Enqueued: time.UnixMilli(enq)},
			Reason: reason,
			At:     time.UnixMilli(at),
		})
	}
	return out, nil
}

// deadPage bounds the dead letters read and moved per round trip.
const deadPage = 500

// RequeueDead implements jobs.DeadLetterManager: each dead letter is moved
// back to the ready stream (deleted from the dead-letter stream and
// re-added in one script) with its attempt count reset.
func (q *Queue) RequeueDead(ctx context.Context, queue string, ids []string) (int, error) {
	s := q.state(queue)
	return q.manageDead(ctx, "requeue", queue, ids, func(entries []redis.XMessage) (int, error) {
		args := make([]any, 0, 2*len(entries))
		for _, m := range entries {
			raw, _ := m.Values["j"].(string)
			_, enq, id, payload, err := decode(raw)
			if err != nil {
				return 0, fmt.Errorf("dead letter %s: %w", m.ID, err)
			}
			args = append(args, m.ID, encode(0, enq, id, payload))
		}
		return requeueDeadScript.Run(ctx, q.rdb, []string{s.keys.dead, s.keys.ready}, args...).Int()
	})
}

// PurgeDead implements jobs.DeadLetterManager with XDEL.
func (q *Queue) PurgeDead(ctx context.Context, queue string, ids []string) (int, error) {
	s := q.state(queue)
	return q.manageDead(ctx, "purge", queue, ids, func(entries []redis.XMessage) (int, error) {
		ents := make([]string, len(entries))
		for i, m := range entries {
			ents[i] = m.ID
		}
		n, err := q.rdb.XDel(ctx, s.keys.dead, ents...).Result()
		return int(n), err
	})
}

// manageDead pages through queue's dead-letter stream, oldest first, and
// applies act to the entries whose job id is in ids (every entry when ids
// is empty).
func (q *Queue) manageDead(ctx context.Context, what, queue string, ids []string, act func([]redis.XMessage) (int, error)) (int, error) {
	if err := jobs.CheckQueueName(queue); err != nil {
		return 0, fmt.Errorf("redisqueue: %s dead letters: %w", what, err)
	}
	if q.isClosed() {
		return 0, fmt.Errorf("redisqueue: %s dead letters of queue %q: %w", what, queue, jobs.ErrClosed)
	}
	want := make(map[string]bool, len(ids))
	for _, id := range ids {
		want[id] = true
	}
	s := q.state(queue)
	total, start := 0, "-"
	for {
		page, err := q.rdb.XRangeN(ctx, s.keys.dead, start, "+", deadPage).Result()
		if err != nil {
			return total, q.wrap(ctx, what+" dead letters of queue", queue, err)
		}
		var sel []redis.XMessage
		for _, m := range page {
			raw, _ := m.Values["j"].(string)
			if _, _, id, _, err := decode(raw); err == nil && (len(want) == 0 || want[id]) {
				sel = append(sel, m)
			}
		}
		if len(sel) > 0 {
			n, err := act(sel)
			total += n
			if err != nil {
				return total, q.wrap(ctx, what+" dead letters of queue", queue, err)
			}
		}
		if len(page) < deadPage {
			return total, nil
		}
		start = "(" + page[len(page)-1].ID
	}
}

// downReplies are server error prefixes that mean "cannot serve now".
var downReplies = []string{"LOADING", "MASTERDOWN", "CLUSTERDOWN", "TRYAGAIN", "READONLY", "BUSY", "NOREPLICAS"}

// wrap classifies err from op on queue: the caller's own context ending
// keeps its cause; a closed client is jobs.ErrClosed; transport failures
// and "cannot serve now" replies wrap jobs.ErrUnavailable; other server
// replies are returned as they are.
func (q *Queue) wrap(ctx context.Context, op, queue string, err error) error {
	if ctx.Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
		return fmt.Errorf("redisqueue: %s %q: %w", op, queue, ctx.Err())
	}
	if errors.Is(err, redis.ErrClosed) || q.isClosed() {
		return fmt.Errorf("redisqueue: %s %q: %w", op, queue, jobs.ErrClosed)
	}
	var re redis.Error
	if errors.As(err, &re) {
		msg := err.Error()
		for _, p := range downReplies {
			if strings.HasPrefix(msg, p) {
				return fmt.Errorf("redisqueue: %s %q: %w: %w", op, queue, jobs.ErrUnavailable, err)
			}
		}
		return fmt.Errorf("redisqueue: %s %q: %w", op, queue, err)
	}
	return fmt.Errorf("redisqueue: %s %q: %w: %w", op, queue, jobs.ErrUnavailable, err)
}
