package host

import (
	"context"
	"database/sql"
	"errors"
	"time"
)

// SQL is the set of configured databases. Implementations own their pools;
// host operations borrow connections per statement or per transaction.
type SQL interface {
	// Pools returns the pool for writes and transactions (the primary) and
	// the pool for plain reads (a replica when configured, else the primary)
	// of database name. ok is false when no such database is configured.
	Pools(name string) (primary, read *sql.DB, ok bool)
	// Dialect is "sqlite" or "mysql" for database name.
	Dialect(name string) string
}

// Cache stores byte values with TTLs. Keys arrive already namespaced by the
// host. A TTL of 0 means no expiry. A backend that is down returns an error
// wrapping ErrBackendDown; the host turns reads into misses and writes into
// no-ops for it, counting and logging each.
//
// Key strings and value slices passed in are valid only during the method
// call (the host builds keys in a reused buffer and values alias guest
// memory): an implementation that keeps one must copy it. Slices returned by
// Get and GetMany may be shared with the backend's storage: callers must not
// modify them. A value over the backend's limit fails with an error wrapping
// ErrValueTooLarge; Incr on a value that is not a decimal int64, or an Incr
// that would overflow, fails with an error wrapping ErrNotInteger.
type Cache interface {
	Get(ctx context.Context, key string) (val []byte, ok bool, err error)
	Set(ctx context.Context, key string, val []byte, ttl time.Duration) error
	Delete(ctx context.Context, key string) (existed bool, err error)
	// GetMany returns one entry per key; a miss is a nil entry.
	GetMany(ctx context.Context, keys []string) ([][]byte, error)
	Incr(ctx context.Context, key string, delta int64, ttl time.Duration) (int64, error)
	// Add sets key only if absent and reports whether it did.
	Add(ctx context.Context, key string, val []byte, ttl time.Duration) (bool, error)
}

// Locker is a lease lock: a lock expires after its TTL unless extended, and
// only the holder of the token may release or extend it.
type Locker interface {
	// Acquire waits up to wait for key and returns a fresh token, or an
	// error wrapping ErrLockHeld when the wait ran out.
	Acquire(ctx context.Context, key string, ttl, wait time.Duration) (token string, err error)
	Release(ctx context.Context, key, token string) (bool, error)
	Extend(ctx context.Context, key, token string, ttl time.Duration) (bool, error)
}

// Queue accepts jobs. Running them is the job runner's business.
type Queue interface {
	Submit(ctx context.Context, queue string, payload []byte, delay time.Duration) (id string, err error)
}

// Backend errors that host operations map to ABI reply codes.
var (
	// ErrBackendDown: the service is unreachable (abi.ErrUnavailable).
	ErrBackendDown = errors.New("backend unavailable")
	// ErrLockHeld: the lock is held by another token (abi.ErrConflict).
	ErrLockHeld = errors.New("lock held")
	// ErrValueTooLarge: a cache value over the backend's limit (abi.ErrTooLarge).
	ErrValueTooLarge = errors.New("cache value too large")
	// ErrNotInteger: cache.incr on a value that is not a decimal int64, or
	// an increment that would overflow (abi.ErrInvalid).
	ErrNotInteger = errors.New("cache value is not an integer or would overflow")
)
