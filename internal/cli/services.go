package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/wasmcorn/wasmcorn/host"
	"github.com/wasmcorn/wasmcorn/host/backend/memcache"
	"github.com/wasmcorn/wasmcorn/host/backend/redisconn"
	"github.com/wasmcorn/wasmcorn/host/backend/rediskv"
	"github.com/wasmcorn/wasmcorn/host/backend/redisqueue"
	"github.com/wasmcorn/wasmcorn/host/backend/sqldb"
	"github.com/wasmcorn/wasmcorn/host/backend/sqlitequeue"
	"github.com/wasmcorn/wasmcorn/host/jobs"
	"github.com/wasmcorn/wasmcorn/internal/config"
	"github.com/wasmcorn/wasmcorn/server"
)

// services are the backends of one serve process, built from the config's
// [databases.NAME], [cache], [queue] and [jobs] sections, plus the job
// runner that feeds the plugins' [[jobs]] and [[periodic]] entries.
type services struct {
	host    host.Services
	log     *slog.Logger
	closers []func() error // in reverse order of opening

	runner *jobs.Runner
	queue  jobs.Backend // nil without a [queue] backend

	mu       sync.Mutex
	consumed map[string]bool // queues given to the runner
}

// openServices opens every configured backend. On error, whatever was
// opened is closed again.
func openServices(ctx context.Context, cfg *config.Config, log *slog.Logger) (_ *services, err error) {
	s := &services{log: log, consumed: map[string]bool{}}
	defer func() {
		if err != nil {
			s.close()
		}
	}()
	if len(cfg.Databases) > 0 {
		dbs := make(map[string]sqldb.Config, len(cfg.Databases))
		for name, d := range cfg.Databases {
			dbs[name] = sqlConfig(name, d)
		}
		if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
			return nil, fmt.Errorf("data_dir: %w", err)
		}
		set, err := sqldb.Open(cfg.DataDir, dbs)
		if err != nil {
			return nil, fmt.Errorf("databases: %w", err)
		}
		s.host.SQL = set
		s.closers = append(s.closers, set.Close)
		log.Info("databases opened", "names", set.Names())
	}

	switch cfg.Cache.Backend {
	case "memory":
		c, err := memcache.New(memcache.Config{MaxBytes: int64(cfg.Cache.MaxBytes)})
		if err != nil {
			return nil, fmt.Errorf("cache: %w", err)
		}
		l := memcache.NewLocker(time.Second)
		s.host.Cache, s.host.Locker = c, l
		s.closers = append(s.closers, c.Close, l.Close)
		log.Info("cache: in-memory", "max_bytes", cfg.Cache.MaxBytes.String())
	case "redis":
		st, err := rediskv.New(rediskv.Config{Conn: redisConn(cfg.Cache.Redis), KeyPrefix: cfg.Cache.Redis.KeyPrefix})
		if err != nil {
			return nil, fmt.Errorf("cache.redis: %w", err)
		}
		s.host.Cache, s.host.Locker = st, st
		s.closers = append(s.closers, st.Close)
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		if err := st.Ping(pctx); err != nil {
			// Not fatal: cache reads become misses until Redis is back.
			log.Warn("cache: redis is not answering yet; continuing", "addrs", cfg.Cache.Redis.Addrs, "error", err)
		} else {
			log.Info("cache: redis", "addrs", cfg.Cache.Redis.Addrs)
		}
		cancel()
	}

	var queue jobs.Backend
	switch cfg.Queue.Backend {
	case "sqlite":
		path := cfg.QueuePath()
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return nil, fmt.Errorf("queue.path: %w", err)
		}
		q, err := sqlitequeue.Open(ctx, sqlitequeue.Options{Path: path, Logger: log.With("component", "queue")})
		if err != nil {
			return nil, fmt.Errorf("queue: %w", err)
		}
		s.host.Queue, queue = q, q
		s.closers = append(s.closers, q.Close)
		log.Info("queue: sqlite", "path", path)
	case "redis":
		q, err := redisqueue.New(redisqueue.Config{Conn: redisConn(cfg.Queue.Redis), KeyPrefix: cfg.Queue.Redis.KeyPrefix,
			Logger: log.With("component", "queue")})
		if err != nil {
			return nil, fmt.Errorf("queue.redis: %w", err)
		}
		s.host.Queue, queue = q, q
		s.closers = append(s.closers, q.Close)
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		if err := q.Ping(pctx); err != nil {
			// Submits fail with "unavailable" until Redis answers; the
			// runner keeps retrying its claims.
			log.Warn("queue: redis is not answering yet; continuing", "addrs", cfg.Queue.Redis.Addrs, "error", err)
		} else {
			log.Info("queue: redis streams", "addrs", cfg.Queue.Redis.Addrs)
		}
		cancel()
	}
	s.queue = queue
	if queue != nil && cfg.Jobs.Enabled {
		opts := cfg.Jobs.Options()
		opts.Logger = log.With("component", "jobs")
		s.runner = jobs.NewRunner(queue, opts)
	}
	return s, nil
}

func sqlConfig(name string, d config.Database) sqldb.Config {
	c := sqldb.Config{
		Driver:          d.DriverName(),
		DSN:             d.DSN,
		Replicas:        d.Replicas,
		MaxOpenConns:    d.MaxOpenConns,
		MaxIdleConns:    d.MaxIdleConns,
		ConnMaxLifetime: d.ConnMaxLifetime.D(),
		ConnMaxIdleTime: d.ConnMaxIdleTime.D(),
		QueryTimeout:    d.QueryTimeout.D(),
	}
	if c.Driver == "sqlite" && c.DSN == "" {
		c.DSN = name + ".db" // one file per database, not sqldb's shared default
	}
	return c
}

// redisConn is the connection part of a [cache.redis] or [queue.redis]
// section, shared by both Redis backends.
func redisConn(r config.Redis) redisconn.Conn {
	mode := r.Mode
	if mode == redisconn.ModeStandalone {
		mode = ""
	}
	return redisconn.Conn{
		Mode: mode, Addrs: r.Addrs, MasterName: r.MasterName, Username: r.Username, Password: r.Password,
		DB: r.DB, PoolSize: r.PoolSize, DialTimeout: r.DialTimeout.D(), ReadTimeout: r.ReadTimeout.D(),
		WriteTimeout: r.WriteTimeout.D(),
	}
}

// syncJobs points the job runner at the plugins of set: every [[jobs]]
// queue of a serving plugin is consumed by that plugin, queues no plugin
// declares any more stop being consumed, and the [[periodic]] entries of
// all plugins replace the runner's schedules.
func (s *services) syncJobs(set *server.Set) {
	if s.runner == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	want := map[string]bool{}
	var periodic []jobs.Periodic
	for _, p := range set.Plugins() {
		m, _ := set.Manifest(p.Name())
		periodic = append(periodic, m.PeriodicJobs(p.Name())...)
		qcs := m.QueueConfigs()
		if len(qcs) == 0 {
			continue
		}
		ex, ok := p.(interface {
			jobs.Executor
			HasJobs() bool
		})
		if !ok || !ex.HasJobs() {
			s.log.Error("plugin declares [[jobs]] but does not export wasmcorn_job; its queues are not consumed", "plugin", p.Name())
			continue
		}
		for _, qc := range qcs {
			if want[qc.Queue] {
				s.log.Error("queue consumed by two plugins; the later is ignored", "queue", qc.Queue, "plugin", p.Name())
				continue
			}
			if err := s.runner.SetQueue(qc, ex); err != nil {
				s.log.Error("job queue not started", "queue", qc.Queue, "plugin", p.Name(), "error", err)
				continue
			}
			want[qc.Queue] = true
		}
	}
	for q := range s.consumed {
		if !want[q] {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			if err := s.runner.RemoveQueue(ctx, q); err != nil {
				s.log.Warn("job queue removal did not finish", "queue", q, "error", err)
			}
			cancel()
		}
	}
	s.consumed = want
	if err := s.runner.SetPeriodic(periodic); err != nil {
		s.log.Error("periodic jobs not scheduled", "error", err)
	}
}

func (s *services) startJobs() error {
	if s.runner == nil {
		return nil
	}
	return s.runner.Start()
}

func (s *services) stopJobs(ctx context.Context) error {
	if s.runner == nil {
		return nil
	}
	return s.runner.Stop(ctx)
}

// close closes every backend, newest first, and returns their errors.
func (s *services) close() error {
	var errs []error
	for i := len(s.closers) - 1; i >= 0; i-- {
		if err := s.closers[i](); err != nil {
			errs = append(errs, err)
		}
	}
	s.closers = nil
	return errors.Join(errs...)
}

// status is the services' part of /status.json.
func (s *services) status(ctx context.Context) map[string]any {
	out := map[string]any{}
	if s.runner != nil {
		sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		out["job_queues"] = s.runner.Stats(sctx)
		cancel()
	}
	return out
}
