// Package rediskv is the networked cache and lock backend: a host.Cache and
// host.Locker over Redis (standalone, Sentinel or Cluster) through go-redis.
//
// Cache keys are stored as KeyPrefix + "cache:" + key and lock keys as
// KeyPrefix + "lock:" + key, so a cache entry and a lock never collide.
// Locks are `SET key token NX PX ttl`; release and extend run token-checked
// Lua scripts (EVALSHA, falling back to EVAL when the server lost its script
// cache), so only the holder can end or prolong a lease.
//
// Every error that means the server could not be reached or did not answer
// in time (refused or reset connections, timeouts, an exhausted or closed
// pool, and server states such as LOADING or MASTERDOWN) wraps
// host.ErrBackendDown, which the host turns into cache misses and no-op
// writes. go-redis replaces broken connections by itself and, after every
// pooled dial failed, fails fast while it probes the server once a second in
// the background, so a Redis outage costs little per request and recovery
// needs no restart.
package rediskv

import (
	"context"
	crand "crypto/rand"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wasmcorn/wasmcorn/host"
	"github.com/wasmcorn/wasmcorn/host/backend/redisconn"
)

// Defaults for Config fields left zero.
const (
	DefaultAddr          = redisconn.DefaultAddr
	DefaultDialTimeout   = redisconn.DefaultDialTimeout
	DefaultReadTimeout   = 500 * time.Millisecond
	DefaultWriteTimeout  = 500 * time.Millisecond
	DefaultMaxValueBytes = 1 << 20
	DefaultLockRetryMin  = 2 * time.Millisecond
	DefaultLockRetryMax  = 64 * time.Millisecond
)

// Modes of Config.Mode.
const (
	ModeStandalone = redisconn.ModeStandalone
	ModeSentinel   = redisconn.ModeSentinel
	ModeCluster    = redisconn.ModeCluster
)

// Config configures a Store. The zero value is a standalone server on
// 127.0.0.1:6379 with every default.
type Config struct {
	// Conn says how to reach Redis. Its ReadTimeout and WriteTimeout
	// default to 500ms each here: a cache that answers slower than that is
	// treated as down.
	redisconn.Conn
	// KeyPrefix is prepended to every key. Default "" (none).
	KeyPrefix string
	// MaxValueBytes is the largest value Set and Add accept; a larger one
	// fails with an error wrapping host.ErrValueTooLarge. Default 1 MiB.
	MaxValueBytes int
	// LockRetryMin and LockRetryMax bound the jittered exponential backoff
	// between attempts of a waiting Acquire. Default 2ms and 64ms.
	LockRetryMin, LockRetryMax time.Duration
}

func (c Config) withDefaults() Config {
	c.Conn = c.Conn.WithDefaults(DefaultReadTimeout)
	if c.MaxValueBytes == 0 {
		c.MaxValueBytes = DefaultMaxValueBytes
	}
	if c.LockRetryMin == 0 {
		c.LockRetryMin = DefaultLockRetryMin
	}
	if c.LockRetryMax == 0 {
		c.LockRetryMax = DefaultLockRetryMax
	}
	return c
}

// Validate reports the first invalid field of c after defaults are applied.
func (c Config) Validate() error {
	c = c.withDefaults()
	if err := c.Conn.Validate(); err != nil {
		return fmt.Errorf("rediskv: %w", err)
	}
	switch {
	case c.MaxValueBytes < 0:
		return fmt.Errorf("rediskv: max_value_bytes %d is negative", c.MaxValueBytes)
	case c.LockRetryMin < 0 || c.LockRetryMax < c.LockRetryMin:
		return fmt.Errorf("rediskv: lock retry bounds %v..%v are not ordered and positive", c.LockRetryMin, c.LockRetryMax)
	}
	return nil
}

// Store is a host.Cache and host.Locker over one Redis deployment. It is
// safe for concurrent use. Create it with New; Close releases its
// connections.
type Store struct {
	rdb      redis.UniversalClient
	cluster  bool
	cachePfx string
	lockPfx  string
	maxValue int
	retryMin time.Duration
	retryMax time.Duration
}

var (
	_ host.Cache  = (*Store)(nil)
	_ host.Locker = (*Store)(nil)
)

// New returns a Store for cfg. It does not contact the server: a Redis that
// is down at start degrades the cache rather than failing the process (use
// Ping for a readiness check).
func New(cfg Config) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	s := &Store{
		rdb:      redisconn.NewClient(cfg.Conn),
		cluster:  cfg.Mode == ModeCluster,
		cachePfx: cfg.KeyPrefix + "cache:",
		lockPfx:  cfg.KeyPrefix + "lock:",
		maxValue: cfg.MaxValueBytes,
		retryMin: cfg.LockRetryMin,
		retryMax: cfg.LockRetryMax,
	}
	return s, nil
}

// Close closes every connection. Later calls fail with host.ErrBackendDown.
func (s *Store) Close() error { return s.rdb.Close() }

// Ping checks that the server answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.rdb.Ping(ctx).Err(); err != nil {
		return s.wrap(ctx, "ping", "", err)
	}
	return nil
}

// Get returns a copy of key's value; a missing key is ok == false.
func (s *Store) Get(ctx context.Context, key string) ([]byte, bool, error) {
	v, err := s.rdb.Get(ctx, s.cachePfx+key).Bytes()
	if err == redis.Nil {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, s.wrap(ctx, "get", key, err)
	}
	return v, true, nil
}

// GetMany returns one entry per key, nil for a miss, in one round trip
// (MGET; a pipeline of GETs in cluster mode, where keys span slots).
func (s *Store) GetMany(ctx context.Context, keys []string) ([][]byte, error) {
	out := make([][]byte, len(keys))
	if len(keys) == 0 {
		return out, nil
	}
	full := make([]string, len(keys))
	for i, k := range keys {
		full[i] = s.cachePfx + k
	}
	if s.cluster {
		cmds := make([]*redis.StringCmd, len(full))
		_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, k := range full {
				cmds[i] = p.Get(ctx, k)
			}
			return nil
		})
		if err != nil && err != redis.Nil {
			return nil, s.wrap(ctx, "get_many", keys[0], err)
		}
		for i, c := range cmds {
			if b, err := c.Bytes(); err == nil {
				out[i] = b
			}
		}
		return out, nil
	}
	vals, err := s.rdb.MGet(ctx, full...).Result()
	if err != nil {
		return nil, s.wrap(ctx, "get_many", keys[0], err)
	}
	for i, v := range vals {
		if str, ok := v.(string); ok {
			out[i] = []byte(str)
		}
	}
	return out, nil
}

// Set stores val under key with ttl (0: no expiry).
func (s *Store) Set(ctx context.Context, key string, val []byte, ttl time.Duration) error {
	if len(val) > s.maxValue {
		return fmt.Errorf("rediskv: set %q: %w (%d bytes, limit %d)", key, host.ErrValueTooLarge, len(val), s.maxValue)
	}
	if err := s.rdb.Set(ctx, s.cachePfx+key, val, ttl).Err(); err != nil {
		return s.wrap(ctx, "set", key, err)
	}
	return nil
}

// Add stores val only when key is absent (SET NX) and reports whether it did.
func (s *Store) Add(ctx context.Context, key string, val []byte, ttl time.Duration) (bool, error) {
	if len(val) > s.maxValue {
		return false, fmt.Errorf("rediskv: add %q: %w (%d bytes, limit %d)", key, host.ErrValueTooLarge, len(val), s.maxValue)
	}
	ok, err := s.rdb.SetNX(ctx, s.cachePfx+key, val, ttl).Result()
	if err != nil {
		return false, s.wrap(ctx, "add", key, err)
	}
	return ok, nil
}

// Delete removes key and reports whether it existed.
func (s *Store) Delete(ctx context.Context, key string) (bool, error) {
	n, err := s.rdb.Del(ctx, s.cachePfx+key).Result()
	if err != nil {
		return false, s.wrap(ctx, "delete", key, err)
	}
	return n > 0, nil
}

// incrScript increments and, only when the increment created the key, sets
// its expiry, atomically.
var incrScript = redis.NewScript(`
local created = redis.call('EXISTS', KEYS[1]) == 0
local v = redis.call('INCRBY', KEYS[1], ARGV[1])
if created then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return v`)

// Incr adds delta to the integer at key (INCRBY) and returns the new value.
// A missing key counts as 0 and is created with ttl (0: no expiry); an
// existing key keeps its expiry. A non-integer value or an overflow fails
// with an error wrapping host.ErrNotInteger.
func (s *Store) Incr(ctx context.Context, key string, delta int64, ttl time.Duration) (int64, error) {
	var (
		n   int64
		err error
	)
	k := s.cachePfx + key
	if ttl <= 0 {
		n, err = s.rdb.IncrBy(ctx, k, delta).Result()
	} else {
		n, err = incrScript.Run(ctx, s.rdb, []string{k}, delta, ttl.Milliseconds()).Int64()
	}
	if err != nil {
		if isServerErr(err) && (strings.Contains(err.Error(), "not an integer") || strings.Contains(err.Error(), "overflow")) {
			return 0, fmt.Errorf("rediskv: incr %q: %w: %w", key, host.ErrNotInteger, err)
		}
		return 0, s.wrap(ctx, "incr", key, err)
	}
	return n, nil
}

var (
	// releaseScript deletes the lock only if it still holds the token.
	releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`)
	// extendScript resets the lease only if it still holds the token.
	extendScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0`)
)

// Acquire takes key for ttl with a fresh random token (SET NX PX). When
// another token holds it, Acquire retries with jittered exponential backoff
// for up to wait, then fails with an error wrapping host.ErrLockHeld; a
// done ctx ends the wait with ctx's error. ttl must be at least 1ms.
func (s *Store) Acquire(ctx context.Context, key string, ttl, wait time.Duration) (string, error) {
	if ttl < time.Millisecond {
		return "", fmt.Errorf("rediskv: acquire lock %q: ttl %v is under 1ms", key, ttl)
	}
	k := s.lockPfx + key
	tok := newToken()
	giveUp := time.Now().Add(wait)
	backoff := s.retryMin
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		ok, err := s.rdb.SetNX(ctx, k, tok, ttl).Result()
		if err != nil {
			return "", s.wrap(ctx, "acquire lock", key, err)
		}
		if ok {
			return tok, nil
		}
		left := time.Until(giveUp)
		if left <= 0 {
			return "", fmt.Errorf("rediskv: acquire lock %q: %w", key, host.ErrLockHeld)
		}
		// Full jitter in [backoff/2, backoff] keeps waiters from retrying
		// in lockstep.
		d := backoff/2 + rand.N(backoff/2+1)
		if d > left {
			d = left
		}
		if timer == nil {
			timer = time.NewTimer(d)
		} else {
			timer.Reset(d)
		}
		select {
		case <-timer.C:
		case <-ctx.Done():
			return "", fmt.Errorf("rediskv: acquire lock %q: %w", key, ctx.Err())
		}
		if backoff *= 2; backoff > s.retryMax {
			backoff = s.retryMax
		}
	}
}

// Release deletes the lock if token still holds it and reports whether it
// did.
func (s *Store) Release(ctx context.Context, key, token string) (bool, error) {
	n, err := releaseScript.Run(ctx, s.rdb, []string{s.lockPfx + key}, token).Int64()
	if err != nil {
		return false, s.wrap(ctx, "release lock", key, err)
	}
	return n == 1, nil
}

// Extend resets the lease to ttl if token still holds it and reports
// whether it did. ttl must be at least 1ms.
func (s *Store) Extend(ctx context.Context, key, token string, ttl time.Duration) (bool, error) {
	if ttl < time.Millisecond {
		return false, fmt.Errorf("rediskv: extend lock %q: ttl %v is under 1ms", key, ttl)
	}
	n, err := extendScript.Run(ctx, s.rdb, []string{s.lockPfx + key}, token, ttl.Milliseconds()).Int64()
	if err != nil {
		return false, s.wrap(ctx, "extend lock", key, err)
	}
	return n == 1, nil
}

// newToken returns 128 random bits as text.
func newToken() string { return crand.Text() }

// isServerErr reports whether err is an error reply from the server (as
// opposed to a transport failure).
func isServerErr(err error) bool {
	var re redis.Error
	return errors.As(err, &re) && !errors.Is(err, redis.ErrClosed)
}

// ctxDone returns ctx's error, or context.DeadlineExceeded once its
// deadline has passed even if ctx does not report it yet: the socket
// deadline go-redis derives from it can fire a moment before ctx's own
// timer does.
func ctxDone(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if dl, ok := ctx.Deadline(); ok && !time.Now().Before(dl) {
		return context.DeadlineExceeded
	}
	return nil
}

// downReplies are server error prefixes that mean "cannot serve now".
var downReplies = []string{"LOADING", "MASTERDOWN", "CLUSTERDOWN", "TRYAGAIN", "READONLY", "BUSY", "NOREPLICAS"}

// wrap classifies err from op on key. When the caller's context is done,
// the error wraps the context's error; transport failures and "cannot serve now"
// replies wrap host.ErrBackendDown; other server replies are returned as
// they are (a bug or misuse, not an outage).
func (s *Store) wrap(ctx context.Context, op, key string, err error) error {
	if cerr := ctxDone(ctx); cerr != nil {
		// With the context's deadline applied to the socket, its expiry
		// shows as a network timeout: report the caller's cause instead.
		return fmt.Errorf("rediskv: %s %q: %w (%v)", op, key, cerr, err)
	}
	if isServerErr(err) {
		msg := err.Error()
		for _, p := range downReplies {
			if strings.HasPrefix(msg, p) {
				return fmt.Errorf("rediskv: %s %q: %w: %w", op, key, host.ErrBackendDown, err)
			}
		}
		return fmt.Errorf("rediskv: %s %q: %w", op, key, err)
	}
	return fmt.Errorf("rediskv: %s %q: %w: %w", op, key, host.ErrBackendDown, err)
}
