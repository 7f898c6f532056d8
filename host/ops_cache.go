package host

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wasmcorn/wasmcorn/abi"
	"github.com/wasmcorn/wasmcorn/internal/metrics"
)

func init() {
	registerOp(abi.OpCacheGet, opCacheGet)
	registerOp(abi.OpCacheSet, opCacheSet)
	registerOp(abi.OpCacheDelete, opCacheDelete)
	registerOp(abi.OpCacheGetMany, opCacheGetMany)
	registerOp(abi.OpCacheIncr, opCacheIncr)
	registerOp(abi.OpCacheAdd, opCacheAdd)
}

// Limits of the cache and lock operations, the same for every backend.
const (
	// MaxCacheKeyBytes bounds a guest's cache or lock key (before the host
	// adds the namespace); a longer or empty key is abi.ErrInvalid.
	MaxCacheKeyBytes = 1024
	// MaxCacheGetMany bounds the keys of one cache.get_many.
	MaxCacheGetMany = 1000
	// MaxCacheReplyBytes bounds the values one cache.get_many returns
	// together; more is abi.ErrTooLarge.
	MaxCacheReplyBytes = 16 << 20
	// kvMaxTTLMillis bounds ttl_ms and wait_ms so they convert to a
	// time.Duration without overflow (about 34 years).
	kvMaxTTLMillis = 1 << 40
)

// Outcomes of a cache or lock op, as counted in metrics.CacheOps.
const (
	kvOutOK = iota
	kvOutHit
	kvOutMiss
	kvOutDegraded
	kvOutConflict
	kvOutUnavailable
	kvOutInvalid
	kvOutTooLarge
	kvOutTimeout
	kvOutDenied
	kvOutInternal
	kvNOutcomes
)

var kvOutcomeNames = [kvNOutcomes]string{"ok", "hit", "miss", "degraded", "conflict", "unavailable",
	"invalid", "too_large", "timeout", "denied", "internal"}

// kvOpState is the per-op bookkeeping: metric children resolved once,
// and the state of the rate-limited "backend down" log.
type kvOpState struct {
	name     string
	outcomes [kvNOutcomes]prometheus.Counter
	degraded prometheus.Counter
	lastLog  atomic.Int64 // unix nanoseconds of the last degraded log line
	skipped  atomic.Int64 // degraded events not logged since
}

// kvDegradedLogEvery is the least time between two "backend down" log lines
// of one op; the events in between are counted into the next line.
const kvDegradedLogEvery = 10 * time.Second

var kvOps [abi.OpLockExtend + 1]*kvOpState

func init() {
	for _, op := range []abi.Op{abi.OpCacheGet, abi.OpCacheSet, abi.OpCacheDelete, abi.OpCacheGetMany,
		abi.OpCacheIncr, abi.OpCacheAdd, abi.OpLockAcquire, abi.OpLockRelease, abi.OpLockExtend} {
		st := &kvOpState{name: op.String(), degraded: metrics.CacheDegraded.WithLabelValues(op.String())}
		for i, o := range kvOutcomeNames {
			st.outcomes[i] = metrics.CacheOps.WithLabelValues(op.String(), o)
		}
		kvOps[op] = st
	}
}

// kvCount records one outcome of op.
func kvCount(op abi.Op, outcome int) { kvOps[op].outcomes[outcome].Inc() }

// kvFail counts and appends an error reply for op.
func kvFail(op abi.Op, reply []byte, code abi.Code, msg string) []byte {
	kvCount(op, kvOutcome(code))
	return abi.AppendReplyError(reply, code, op.String()+": "+msg)
}

func kvOutcome(c abi.Code) int {
	switch c {
	case abi.ErrConflict:
		return kvOutConflict
	case abi.ErrUnavailable:
		return kvOutUnavailable
	case abi.ErrInvalid:
		return kvOutInvalid
	case abi.ErrTooLarge:
		return kvOutTooLarge
	case abi.ErrTimeout:
		return kvOutTimeout
	case abi.ErrDenied:
		return kvOutDenied
	}
	return kvOutInternal
}

// kvDegraded records that op answered without its backend, logging at most
// one line per op every kvDegradedLogEvery (with the count of the others), so
// an outage at 20k requests/s does not flood the log.
func kvDegraded(c *Call, op abi.Op, err error) {
	st := kvOps[op]
	st.degraded.Inc()
	now := time.Now().UnixNano()
	last := st.lastLog.Load()
	if now-last < int64(kvDegradedLogEvery) || !st.lastLog.CompareAndSwap(last, now) {
		st.skipped.Add(1)
		return
	}
	log := c.Log
	if log == nil {
		log = slog.Default()
	}
	log.LogAttrs(context.Background(), slog.LevelWarn, "cache backend down: answering without it",
		slog.String("op", st.name), slog.Int64("unlogged_since_last", st.skipped.Swap(0)),
		slog.String("error", err.Error()))
}

// kvBackendErr turns a backend error other than ErrBackendDown into a reply:
// the call's own deadline is abi.ErrTimeout, a too large value
// abi.ErrTooLarge, a non-integer counter abi.ErrInvalid, a held lock
// abi.ErrConflict, anything else abi.ErrInternal.
func kvBackendErr(c *Call, op abi.Op, reply []byte, err error) []byte {
	switch {
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled):
		return kvFail(op, reply, abi.ErrTimeout, err.Error())
	case errors.Is(err, ErrValueTooLarge):
		return kvFail(op, reply, abi.ErrTooLarge, err.Error())
	case errors.Is(err, ErrNotInteger):
		return kvFail(op, reply, abi.ErrInvalid, err.Error())
	case errors.Is(err, ErrLockHeld):
		return kvFail(op, reply, abi.ErrConflict, err.Error())
	case errors.Is(err, ErrBackendDown):
		kvDegraded(c, op, err)
		return kvFail(op, reply, abi.ErrUnavailable, err.Error())
	}
	log := c.Log
	if log == nil {
		log = slog.Default()
	}
	log.LogAttrs(context.Background(), slog.LevelError, "cache backend error",
		slog.String("op", op.String()), slog.String("error", err.Error()))
	return kvFail(op, reply, abi.ErrInternal, err.Error())
}

func kvCtx(c *Call) context.Context {
	if c.Ctx == nil {
		return context.Background()
	}
	return c.Ctx
}

// kvNamespace returns the call's key namespace: the manifest's
// cache_namespace, else the plugin name. It refuses a namespace with ':'
// (then "a" + "b:c" and "a:b" + "c" would name the same key).
func kvNamespace(c *Call) (string, error) {
	ns := c.Plugin
	if c.Grants != nil && c.Grants.CacheNamespace != "" {
		ns = c.Grants.CacheNamespace
	}
	if ns == "" {
		return "", errors.New("call has no plugin name or cache namespace")
	}
	if strings.IndexByte(ns, ':') >= 0 {
		return "", errors.New("cache namespace " + strconv.Quote(ns) + " contains ':'")
	}
	return ns, nil
}

// kvAppendKey checks key and appends ns + ":" + key to buf.
func kvAppendKey(buf []byte, ns string, key []byte) ([]byte, error) {
	if len(key) == 0 {
		return buf, errors.New("empty key")
	}
	if len(key) > MaxCacheKeyBytes {
		return buf, errors.New("key of " + strconv.Itoa(len(key)) + " bytes is over the limit of " + strconv.Itoa(MaxCacheKeyBytes))
	}
	buf = append(buf, ns...)
	buf = append(buf, ':')
	return append(buf, key...), nil
}

// kvScratchKey reads the key argument and builds the namespaced key in the
// reply buffer's memory, returning it as a string that aliases that memory,
// so that a cache hit allocates nothing. The string is valid only until the
// reply is written: backends copy keys they keep (see Cache). The returned
// buffer (reply, possibly grown) is where the reply must be written, from
// its start. On failure it returns a complete error reply instead, with
// ok false.
func kvScratchKey(c *Call, op abi.Op, args *abi.Values, reply []byte) (key string, buf []byte, ok bool) {
	k, err := args.Bytes("key")
	if err != nil {
		return "", kvFail(op, reply, abi.ErrInvalid, err.Error()), false
	}
	ns, err := kvNamespace(c)
	if err != nil {
		return "", kvFail(op, reply, abi.ErrDenied, err.Error()), false
	}
	buf, err = kvAppendKey(reply[:0], ns, k)
	if err != nil {
		return "", kvFail(op, reply, abi.ErrInvalid, err.Error()), false
	}
	return unsafe.String(unsafe.SliceData(buf), len(buf)), buf[:0], true
}

// kvStart begins a cache or lock op: unavailable when its backend (what)
// is not configured, else the namespaced key (kvScratchKey) and a reader
// of the arguments after it. On failure buf is the complete error reply.
func kvStart(c *Call, op abi.Op, args *abi.Values, reply []byte, configured bool, what string) (key string, buf []byte, rest kvArgs, ok bool) {
	if !configured {
		return "", kvFail(op, reply, abi.ErrUnavailable, "no "+what+" backend is configured"), kvArgs{}, false
	}
	key, buf, ok = kvScratchKey(c, op, args, reply)
	return key, buf, kvArgs{v: args}, ok
}

// kvArgs reads the arguments of an op after its key and keeps the first
// error, so an op reads them all and checks once, with end.
type kvArgs struct {
	v   *abi.Values
	err error
}

func (a *kvArgs) bytes(name string) []byte {
	if a.err != nil {
		return nil
	}
	b, err := a.v.Bytes(name)
	a.err = err
	return b
}

func (a *kvArgs) int(name string) int64 {
	if a.err != nil {
		return 0
	}
	n, err := a.v.Int(name)
	a.err = err
	return n
}

// millis reads an int of milliseconds in [lo, hi] as a duration.
func (a *kvArgs) millis(name string, lo, hi int64) time.Duration {
	ms := a.int(name)
	if a.err == nil && (ms < lo || ms > hi) {
		a.err = errors.New(name + " " + strconv.FormatInt(ms, 10) + " is outside " + strconv.FormatInt(lo, 10) + ".." + strconv.FormatInt(hi, 10))
	}
	return time.Duration(ms) * time.Millisecond
}

// ttl reads a cache TTL or wait in milliseconds, 0..kvMaxTTLMillis.
func (a *kvArgs) ttl(name string) time.Duration { return a.millis(name, 0, kvMaxTTLMillis) }

// end fails when arguments remain, and returns the first error.
func (a *kvArgs) end() error {
	if a.err == nil && a.v.More() {
		a.err = errors.New(strconv.Itoa(a.v.Remaining()) + " unexpected trailing argument bytes")
	}
	return a.err
}

// opCacheGet: (string key) -> (bytes value) | not_found. A down backend
// is a miss.
func opCacheGet(c *Call, args *abi.Values, reply []byte) []byte {
	const op = abi.OpCacheGet
	cache := c.Services.kvCache()
	key, buf, a, ok := kvStart(c, op, args, reply, cache != nil, "cache")
	if !ok {
		return buf
	}
	if err := a.end(); err != nil {
		return kvFail(op, buf, abi.ErrInvalid, err.Error())
	}
	v, hit, err := cache.Get(kvCtx(c), key)
	if err != nil {
		if !errors.Is(err, ErrBackendDown) {
			return kvBackendErr(c, op, buf, err)
		}
		kvDegraded(c, op, err)
		kvCount(op, kvOutDegraded)
		hit = false
	}
	if !hit {
		if err == nil {
			kvCount(op, kvOutMiss)
		}
		return abi.AppendReplyError(buf, abi.ErrNotFound, "cache miss")
	}
	kvCount(op, kvOutHit)
	return abi.AppendBytesValue(abi.AppendReplyOK(buf), v)
}

// opCacheSet: (string key, bytes value, int ttl_ms) -> (). A down backend
// makes it a no-op that replies ok.
func opCacheSet(c *Call, args *abi.Values, reply []byte) []byte {
	const op = abi.OpCacheSet
	cache := c.Services.kvCache()
	key, buf, a, ok := kvStart(c, op, args, reply, cache != nil, "cache")
	if !ok {
		return buf
	}
	val := a.bytes("value")
	ttl := a.ttl("ttl_ms")
	if err := a.end(); err != nil {
		return kvFail(op, buf, abi.ErrInvalid, err.Error())
	}
	if err := cache.Set(kvCtx(c), key, val, ttl); err != nil {
		if !errors.Is(err, ErrBackendDown) {
			return kvBackendErr(c, op, buf, err)
		}
		kvDegraded(c, op, err)
		kvCount(op, kvOutDegraded)
		return abi.AppendReplyOK(buf)
	}
	kvCount(op, kvOutOK)
	return abi.AppendReplyOK(buf)
}

// opCacheDelete: (string key) -> (bool existed). A down backend makes it a
// no-op that replies false.
func opCacheDelete(c *Call, args *abi.Values, reply []byte) []byte {
	const op = abi.OpCacheDelete
	cache := c.Services.kvCache()
	key, buf, a, ok := kvStart(c, op, args, reply, cache != nil, "cache")
	if !ok {
		return buf
	}
	if err := a.end(); err != nil {
		return kvFail(op, buf, abi.ErrInvalid, err.Error())
	}
	existed, err := cache.Delete(kvCtx(c), key)
	if err != nil {
		if !errors.Is(err, ErrBackendDown) {
			return kvBackendErr(c, op, buf, err)
		}
		kvDegraded(c, op, err)
		kvCount(op, kvOutDegraded)
		return abi.AppendBool(abi.AppendReplyOK(buf), false)
	}
	kvCount(op, kvOutOK)
	return abi.AppendBool(abi.AppendReplyOK(buf), existed)
}

// opCacheGetMany: (string key...) -> (bytes | null)... in key order. A down
// backend answers every key with null.
func opCacheGetMany(c *Call, args *abi.Values, reply []byte) []byte {
	const op = abi.OpCacheGetMany
	cache := c.Services.kvCache()
	if cache == nil {
		return kvFail(op, reply, abi.ErrUnavailable, "no cache backend is configured")
	}
	ns, err := kvNamespace(c)
	if err != nil {
		return kvFail(op, reply, abi.ErrDenied, err.Error())
	}
	// First pass: validate and size, so the keys are built in one buffer
	// that never moves.
	scan := *args
	n, size := 0, 0
	for scan.More() {
		k, err := scan.Bytes("key " + strconv.Itoa(n))
		if err != nil {
			return kvFail(op, reply, abi.ErrInvalid, err.Error())
		}
		if len(k) == 0 || len(k) > MaxCacheKeyBytes {
			return kvFail(op, reply, abi.ErrInvalid, "key "+strconv.Itoa(n)+" is empty or over "+strconv.Itoa(MaxCacheKeyBytes)+" bytes")
		}
		n++
		size += len(ns) + 1 + len(k)
	}
	if n > MaxCacheGetMany {
		return kvFail(op, reply, abi.ErrInvalid, strconv.Itoa(n)+" keys is over the limit of "+strconv.Itoa(MaxCacheGetMany))
	}
	keys := make([]string, n)
	kb := make([]byte, 0, size)
	for i := range keys {
		k, _ := args.Bytes("key")
		start := len(kb)
		kb, _ = kvAppendKey(kb, ns, k)
		keys[i] = unsafe.String(&kb[start], len(kb)-start)
	}
	vals, err := cache.GetMany(kvCtx(c), keys)
	if err != nil {
		if !errors.Is(err, ErrBackendDown) {
			return kvBackendErr(c, op, reply, err)
		}
		kvDegraded(c, op, err)
		kvCount(op, kvOutDegraded)
		vals = nil
	} else {
		kvCount(op, kvOutOK)
	}
	total := 0
	for _, v := range vals {
		total += len(v)
	}
	if total > MaxCacheReplyBytes {
		return kvFail(op, reply, abi.ErrTooLarge, "values of "+strconv.Itoa(total)+" bytes are over the reply limit of "+strconv.Itoa(MaxCacheReplyBytes))
	}
	reply = abi.AppendReplyOK(reply[:0])
	for i := range keys {
		if i < len(vals) && vals[i] != nil {
			reply = abi.AppendBytesValue(reply, vals[i])
		} else {
			reply = abi.AppendNull(reply)
		}
	}
	return reply
}

// opCacheIncr: (string key, int delta, int ttl_ms) -> (int value). It cannot
// pretend: a down backend is abi.ErrUnavailable.
func opCacheIncr(c *Call, args *abi.Values, reply []byte) []byte {
	const op = abi.OpCacheIncr
	cache := c.Services.kvCache()
	key, buf, a, ok := kvStart(c, op, args, reply, cache != nil, "cache")
	if !ok {
		return buf
	}
	delta := a.int("delta")
	ttl := a.ttl("ttl_ms")
	if err := a.end(); err != nil {
		return kvFail(op, buf, abi.ErrInvalid, err.Error())
	}
	n, err := cache.Incr(kvCtx(c), key, delta, ttl)
	if err != nil {
		return kvBackendErr(c, op, buf, err)
	}
	kvCount(op, kvOutOK)
	return abi.AppendInt(abi.AppendReplyOK(buf), n)
}

// opCacheAdd: (string key, bytes value, int ttl_ms) -> (bool added). It
// cannot pretend: a down backend is abi.ErrUnavailable.
func opCacheAdd(c *Call, args *abi.Values, reply []byte) []byte {
	const op = abi.OpCacheAdd
	cache := c.Services.kvCache()
	key, buf, a, ok := kvStart(c, op, args, reply, cache != nil, "cache")
	if !ok {
		return buf
	}
	val := a.bytes("value")
	ttl := a.ttl("ttl_ms")
	if err := a.end(); err != nil {
		return kvFail(op, buf, abi.ErrInvalid, err.Error())
	}
	added, err := cache.Add(kvCtx(c), key, val, ttl)
	if err != nil {
		return kvBackendErr(c, op, buf, err)
	}
	kvCount(op, kvOutOK)
	return abi.AppendBool(abi.AppendReplyOK(buf), added)
}

// cache returns the configured Cache, or nil.
func (s *Services) kvCache() Cache {
	if s == nil {
		return nil
	}
	return s.Cache
}

// locker returns the configured Locker, or nil.
func (s *Services) kvLocker() Locker {
	if s == nil {
		return nil
	}
	return s.Locker
}
