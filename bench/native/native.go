// Package native is the benchmark's ceiling: a plain Go fasthttp server that
// does the work of bench/workload directly, with the drivers wasmcorn's
// backends use (go-sql-driver/mysql, go-redis v9) and the same pool
// settings, and no Wasm. The suite runs it as its own process so that its
// CPU time and memory are measured apart from the load generator's.
package native

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"hash/maphash"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/redis/go-redis/v9"
	"github.com/valyala/fasthttp"

	"github.com/wasmcorn/wasmcorn/bench/workload"
)

// Pool defaults, the same as wasmcorn's MySQL backend (host/backend/sqldb)
// and the go-redis client defaults its Redis backend keeps.
const (
	DefaultDBMaxOpenConns   = 32
	DefaultDBConnMaxLife    = 30 * time.Minute
	DefaultDBConnMaxIdle    = 5 * time.Minute
	DefaultDBDialTimeout    = 5 * time.Second
	DefaultRedisPoolSize    = 0 // go-redis default: 10 per GOMAXPROCS
	DefaultRequestTimeout   = 30 * time.Second
	queueGroup              = "workers"
	queueStreamMaxLen       = 100_000
	queueReadCount          = 256
	defaultMemoryCacheSlots = 64
)

// Config configures a Server. Only Addr is required; endpoints whose backend
// is not configured answer 503.
type Config struct {
	// Addr to listen on, e.g. "127.0.0.1:0".
	Addr string
	// MySQLDSN is a go-sql-driver DSN of the database holding table world.
	MySQLDSN string
	// RedisAddr is host:port of the Redis used by /db, /cached?cache=redis
	// and /queue.
	RedisAddr string
	// StaticDir is served under /static/.
	StaticDir string
	// Cache is where /cached keeps rows: "memory" (default) or "redis".
	Cache string
	// DBMaxOpenConns caps the MySQL pool (idle cap is the same); default
	// DefaultDBMaxOpenConns.
	DBMaxOpenConns int
	// RedisPoolSize caps the Redis pool; 0 is go-redis' default.
	RedisPoolSize int
}

// Server serves the workload endpoints. Create with New, run with Serve,
// stop with Close.
type Server struct {
	cfg    Config
	db     *sql.DB
	world  *sql.Stmt // workload.SelectWorld, prepared once (re-prepared per connection by database/sql)
	rdb    *redis.Client
	mem    *memCache
	static fasthttp.RequestHandler
	srv    *fasthttp.Server
	log    *slog.Logger

	jobsDone   atomic.Int64
	stopWorker context.CancelFunc
	workerDone chan struct{}
}

// New opens the configured backends, prepares the row query (so the
// database must be up), and starts the queue worker.
func New(cfg Config, log *slog.Logger) (*Server, error) {
	if cfg.Cache == "" {
		cfg.Cache = "memory"
	}
	if cfg.Cache != "memory" && cfg.Cache != "redis" {
		return nil, fmt.Errorf("native: cache %q: want memory or redis", cfg.Cache)
	}
	if cfg.DBMaxOpenConns <= 0 {
		cfg.DBMaxOpenConns = DefaultDBMaxOpenConns
	}
	s := &Server{cfg: cfg, mem: newMemCache(defaultMemoryCacheSlots), log: log}
	if cfg.MySQLDSN != "" {
		mc, err := mysql.ParseDSN(cfg.MySQLDSN)
		if err != nil {
			return nil, fmt.Errorf("native: mysql dsn: %w", err)
		}
		mc.ParseTime = true
		if mc.Timeout == 0 {
			mc.Timeout = DefaultDBDialTimeout
		}
		conn, err := mysql.NewConnector(mc)
		if err != nil {
			return nil, fmt.Errorf("native: mysql connector: %w", err)
		}
		s.db = sql.OpenDB(conn)
		s.db.SetMaxOpenConns(cfg.DBMaxOpenConns)
		s.db.SetMaxIdleConns(cfg.DBMaxOpenConns)
		s.db.SetConnMaxLifetime(DefaultDBConnMaxLife)
		s.db.SetConnMaxIdleTime(DefaultDBConnMaxIdle)
		// A prepared statement, as Go services do for hot queries (and as
		// wasmcorn's host does by itself for repeated SQL): one round trip
		// per query instead of prepare, execute, close.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		s.world, err = s.db.PrepareContext(ctx, workload.SelectWorld)
		cancel()
		if err != nil {
			s.db.Close()
			return nil, fmt.Errorf("native: prepare %q: %w", workload.SelectWorld, err)
		}
	}
	if cfg.RedisAddr != "" {
		s.rdb = redis.NewClient(&redis.Options{Addr: cfg.RedisAddr, PoolSize: cfg.RedisPoolSize})
		ctx, cancel := context.WithCancel(context.Background())
		s.stopWorker = cancel
		s.workerDone = make(chan struct{})
		go s.worker(ctx)
	}
	if cfg.StaticDir != "" {
		fs := &fasthttp.FS{Root: cfg.StaticDir, PathRewrite: fasthttp.NewPathSlashesStripper(1)}
		s.static = fs.NewRequestHandler()
	}
	s.srv = &fasthttp.Server{
		Handler:      s.Handle,
		Name:         "native",
		ReadTimeout:  DefaultRequestTimeout,
		WriteTimeout: DefaultRequestTimeout,
		IdleTimeout:  2 * time.Minute,
		Concurrency:  256 * 1024,
	}
	return s, nil
}

// Serve accepts connections on ln until Close.
func (s *Server) Serve(ln net.Listener) error { return s.srv.Serve(ln) }

// Close stops serving and closes the backends.
func (s *Server) Close() error {
	err := s.srv.Shutdown()
	if s.stopWorker != nil {
		s.stopWorker()
		<-s.workerDone
	}
	if s.db != nil {
		s.world.Close()
		s.db.Close()
	}
	if s.rdb != nil {
		s.rdb.Close()
	}
	return err
}

var (
	ctJSON    = []byte("application/json")
	helloBody = []byte(workload.HelloJSON)
	queuedOK  = []byte(`{"queued":true}`)
)

// Handle routes one request.
func (s *Server) Handle(ctx *fasthttp.RequestCtx) {
	switch path := string(ctx.Path()); path {
	case "/json":
		ctx.SetContentTypeBytes(ctJSON)
		ctx.SetBody(helloBody)
	case "/jsonstruct":
		s.jsonItems(ctx, workload.Items())
	case "/jsonbig":
		s.jsonItems(ctx, workload.ItemsN(workload.BigItems))
	case "/db":
		s.dbRow(ctx)
	case "/cached":
		s.cached(ctx)
	case "/queue":
		s.queue(ctx)
	case "/queue/stats":
		ctx.SetContentTypeBytes(ctJSON)
		fmt.Fprintf(ctx, `{"executed":%d}`, s.jobsDone.Load())
	default:
		if s.static != nil && len(path) > len("/static/") && path[:len("/static/")] == "/static/" {
			s.static(ctx)
			return
		}
		ctx.Error("not found", fasthttp.StatusNotFound)
	}
}

// jsonItems encodes l, built by the caller on every request (/jsonstruct,
// /jsonbig), as the plugin does.
func (s *Server) jsonItems(ctx *fasthttp.RequestCtx, l workload.ItemList) {
	ctx.SetContentTypeBytes(ctJSON)
	if err := json.NewEncoder(ctx).Encode(l); err != nil {
		s.fail(ctx, "encode items", err)
	}
}

func (s *Server) fail(ctx *fasthttp.RequestCtx, what string, err error) {
	s.log.Error("native: "+what, "path", string(ctx.Path()), "err", err)
	ctx.Error(what+": "+err.Error(), fasthttp.StatusServiceUnavailable)
}

func (s *Server) id(ctx *fasthttp.RequestCtx) (int, bool) {
	id, err := ctx.QueryArgs().GetUint("id")
	if err != nil || id < 1 || id > workload.Rows {
		ctx.Error("id must be 1.."+strconv.Itoa(workload.Rows), fasthttp.StatusBadRequest)
		return 0, false
	}
	return id, true
}

func (s *Server) loadRow(ctx context.Context, id int) (workload.World, error) {
	var w workload.World
	err := s.world.QueryRowContext(ctx, id).Scan(&w.ID, &w.RandomNumber)
	return w, err
}

// dbRow: one row by primary key plus one Redis GET.
func (s *Server) dbRow(ctx *fasthttp.RequestCtx) {
	if s.db == nil || s.rdb == nil {
		ctx.Error("db needs mysql and redis", fasthttp.StatusServiceUnavailable)
		return
	}
	id, ok := s.id(ctx)
	if !ok {
		return
	}
	w, err := s.loadRow(ctx, id)
	if err != nil {
		s.fail(ctx, "query world", err)
		return
	}
	v, err := s.rdb.Get(ctx, workload.WorldKey(id)).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		s.fail(ctx, "redis get", err)
		return
	}
	w.Cached = v
	ctx.SetContentTypeBytes(ctJSON)
	if err := json.NewEncoder(ctx).Encode(w); err != nil {
		s.fail(ctx, "encode row", err)
	}
}

// cached: the row as JSON from the cache, loaded and stored on a miss.
func (s *Server) cached(ctx *fasthttp.RequestCtx) {
	id, ok := s.id(ctx)
	if !ok {
		return
	}
	key := workload.RowKey(id)
	var body []byte
	if s.cfg.Cache == "redis" {
		if s.rdb == nil {
			ctx.Error("redis not configured", fasthttp.StatusServiceUnavailable)
			return
		}
		b, err := s.rdb.Get(ctx, key).Bytes()
		if err != nil && !errors.Is(err, redis.Nil) {
			s.fail(ctx, "redis get", err)
			return
		}
		body = b
	} else {
		body = s.mem.get(key)
	}
	if body == nil {
		if s.db == nil {
			ctx.Error("mysql not configured", fasthttp.StatusServiceUnavailable)
			return
		}
		w, err := s.loadRow(ctx, id)
		if err != nil {
			s.fail(ctx, "query world", err)
			return
		}
		if body, err = json.Marshal(w); err != nil {
			s.fail(ctx, "encode row", err)
			return
		}
		if s.cfg.Cache == "redis" {
			if err := s.rdb.Set(ctx, key, body, workload.CacheTTL).Err(); err != nil {
				s.log.Warn("native: redis set", "key", key, "err", err)
			}
		} else {
			s.mem.set(key, body, workload.CacheTTL)
		}
	}
	ctx.SetContentTypeBytes(ctJSON)
	ctx.SetBody(body)
}

// queue: XADD to a Redis stream; the worker goroutine reads and acks.
func (s *Server) queue(ctx *fasthttp.RequestCtx) {
	if s.rdb == nil {
		ctx.Error("redis not configured", fasthttp.StatusServiceUnavailable)
		return
	}
	err := s.rdb.XAdd(ctx, &redis.XAddArgs{
		Stream: workload.QueueName,
		MaxLen: queueStreamMaxLen,
		Approx: true,
		Values: []any{"payload", ctx.PostBody()},
	}).Err()
	if err != nil {
		s.fail(ctx, "queue submit", err)
		return
	}
	ctx.SetContentTypeBytes(ctJSON)
	ctx.SetBody(queuedOK)
}

// worker executes queued jobs: read a batch for the consumer group, "run"
// each (decode the payload), acknowledge them.
func (s *Server) worker(ctx context.Context) {
	defer close(s.workerDone)
	err := s.rdb.XGroupCreateMkStream(ctx, workload.QueueName, queueGroup, "$").Err()
	if err != nil && !strings.HasPrefix(err.Error(), "BUSYGROUP") {
		s.log.Warn("native: create consumer group", "err", err)
	}
	for ctx.Err() == nil {
		streams, err := s.rdb.XReadGroup(ctx, &redis.XReadGroupArgs{
			Group:    queueGroup,
			Consumer: "native",
			Streams:  []string{workload.QueueName, ">"},
			Count:    queueReadCount,
			Block:    time.Second,
		}).Result()
		if err != nil {
			if !errors.Is(err, redis.Nil) && ctx.Err() == nil {
				s.log.Warn("native: read jobs", "err", err)
				time.Sleep(100 * time.Millisecond)
				if strings.HasPrefix(err.Error(), "NOGROUP") { // stream deleted: recreate
					_ = s.rdb.XGroupCreateMkStream(ctx, workload.QueueName, queueGroup, "0").Err()
				}
			}
			continue
		}
		for _, st := range streams {
			ids := make([]string, 0, len(st.Messages))
			for _, m := range st.Messages {
				var job map[string]any
				if p, ok := m.Values["payload"].(string); ok {
					_ = json.Unmarshal([]byte(p), &job)
				}
				ids = append(ids, m.ID)
			}
			if len(ids) > 0 {
				if err := s.rdb.XAck(ctx, workload.QueueName, queueGroup, ids...).Err(); err != nil && ctx.Err() == nil {
					s.log.Warn("native: ack jobs", "err", err)
					continue
				}
				s.jobsDone.Add(int64(len(ids)))
			}
		}
	}
}

// memCache is a sharded in-memory map with per-entry expiry: what a Go
// service would put in front of its database without a cache server.
type memCache struct {
	seed   maphash.Seed
	shards []memShard
}

type memShard struct {
	mu sync.RWMutex
	m  map[string]memEntry
	_  [40]byte
}

type memEntry struct {
	val     []byte
	expires int64 // unix ns
}

func newMemCache(n int) *memCache {
	c := &memCache{seed: maphash.MakeSeed(), shards: make([]memShard, n)}
	for i := range c.shards {
		c.shards[i].m = map[string]memEntry{}
	}
	return c
}

func (c *memCache) shard(key string) *memShard {
	return &c.shards[maphash.String(c.seed, key)%uint64(len(c.shards))]
}

func (c *memCache) get(key string) []byte {
	sh := c.shard(key)
	sh.mu.RLock()
	e, ok := sh.m[key]
	sh.mu.RUnlock()
	if !ok || time.Now().UnixNano() > e.expires {
		return nil
	}
	return e.val
}

func (c *memCache) set(key string, val []byte, ttl time.Duration) {
	sh := c.shard(key)
	sh.mu.Lock()
	sh.m[key] = memEntry{val: val, expires: time.Now().Add(ttl).UnixNano()}
	sh.mu.Unlock()
}

// Main runs the native server from command-line args until ctx is done:
//
//	-addr 127.0.0.1:8081 -mysql DSN -redis host:port -static DIR -cache memory|redis
//
// It prints "listening on ADDR" to stdout once serving, so a parent process
// learns the port when -addr ends in :0.
func Main(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("native", flag.ContinueOnError)
	var cfg Config
	fs.StringVar(&cfg.Addr, "addr", "127.0.0.1:8081", "listen address")
	fs.StringVar(&cfg.MySQLDSN, "mysql", "", "go-sql-driver DSN of the bench database")
	fs.StringVar(&cfg.RedisAddr, "redis", "", "Redis host:port")
	fs.StringVar(&cfg.StaticDir, "static", "", "directory served under /static/")
	fs.StringVar(&cfg.Cache, "cache", "memory", "where /cached keeps rows: memory or redis")
	fs.IntVar(&cfg.DBMaxOpenConns, "db-max-open", DefaultDBMaxOpenConns, "MySQL pool size")
	fs.IntVar(&cfg.RedisPoolSize, "redis-pool", DefaultRedisPoolSize, "Redis pool size (0: go-redis default)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if cfg.StaticDir != "" {
		if _, err := os.Stat(filepath.Join(cfg.StaticDir, workload.StaticName)); err != nil {
			return fmt.Errorf("native: static dir: %w", err)
		}
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	s, err := New(cfg, log)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		s.Close()
		return fmt.Errorf("native: listen: %w", err)
	}
	fmt.Printf("listening on %s\n", ln.Addr())
	errc := make(chan error, 1)
	go func() { errc <- s.Serve(ln) }()
	select {
	case err = <-errc:
		s.Close()
		return err
	case <-ctx.Done():
		return s.Close()
	}
}
