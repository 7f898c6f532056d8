// Package cache is the plugin's key-value cache: byte values with TTLs,
// stored by the host in its configured backend (in-process memory by
// default, Redis when configured) and shared by every instance of the
// plugin.
//
//	page, ok, err := cache.Get("page:" + id)
//	if !ok {
//		page = render(id)
//		_ = cache.Set("page:"+id, page, time.Minute)
//	}
//
// # Keys
//
// The host prefixes every key with the plugin's namespace (the manifest's
// grants.cache_namespace, by default the plugin name), so a plugin sees
// only its own keys; plugins granted the same namespace share them. A key
// is 1 to 1024 bytes. A value is at most the backend's limit (1 MiB by
// default); a larger one fails with code too_large.
//
// # TTLs
//
// A TTL of 0 means no expiry; a positive TTL is rounded up to whole
// milliseconds; a negative one is an error. An entry may disappear earlier
// (the memory backend evicts least recently used entries to stay within
// its size bound), so a cache is never the only copy of anything.
//
// # When the backend is down
//
// If the cache backend (Redis) is unreachable, the host answers Get and
// GetMany with misses and Set and Delete with success without doing
// anything, and counts it: a cache outage makes requests slower, not
// failed. Incr and Add cannot pretend; they fail with code unavailable.
//
// # Errors
//
// Failures reported by the host are *abi.ReplyError values (errors.As);
// their Code is one of abi.ErrInvalid, abi.ErrTooLarge, abi.ErrUnavailable,
// abi.ErrTimeout or abi.ErrInternal. A miss is not an error.
//
// Every function is safe for concurrent use.
package cache

import (
	"errors"
	"fmt"
	"time"

	"github.com/wasmcorn/wasmcorn/abi"
	"github.com/wasmcorn/wasmcorn/sdk-go/hostcall"
)

// millis converts d to the whole milliseconds the host expects: 0 stays 0,
// a positive duration rounds up (so it never becomes "no expiry"), and a
// negative one is an error.
func millis(what string, d time.Duration) (int64, error) {
	if d < 0 {
		return 0, fmt.Errorf("wasmcorn cache: negative %s %v", what, d)
	}
	ms := int64(d / time.Millisecond)
	if d%time.Millisecond != 0 {
		ms++
	}
	return ms, nil
}

// Get returns a copy of key's value, and false on a miss (absent, expired,
// evicted, or the backend is down).
func Get(key string) ([]byte, bool, error) {
	v, ok, err := AppendGet([]byte{}, key)
	if !ok {
		v = nil
	}
	return v, ok, err
}

// AppendGet is Get appending the value to dst instead of allocating a copy:
// on a hit it returns dst extended by the value, else dst unchanged. Reuse
// dst across calls and a hit allocates nothing.
func AppendGet(dst []byte, key string) ([]byte, bool, error) {
	a := hostcall.AcquireArgs()
	defer a.Release()
	a.B = abi.AppendString(a.B, key)
	vs, err := hostcall.Call(abi.OpCacheGet, a.B)
	if err != nil {
		if isNotFound(err) {
			return dst, false, nil
		}
		return dst, false, err
	}
	v, err := vs.Bytes("value")
	if err != nil {
		return dst, false, fmt.Errorf("wasmcorn cache: get %q: bad reply: %w", key, err)
	}
	return append(dst, v...), true, nil
}

// isNotFound reports whether err is the host's not-found reply, checking
// the bare reply error first: errors.As would allocate on every call.
func isNotFound(err error) bool {
	if re, ok := err.(*abi.ReplyError); ok {
		return re.Code == abi.ErrNotFound
	}
	var re *abi.ReplyError
	return errors.As(err, &re) && re.Code == abi.ErrNotFound
}

// Set stores val under key for ttl (0: no expiry), replacing any value.
func Set(key string, val []byte, ttl time.Duration) error {
	ms, err := millis("ttl", ttl)
	if err != nil {
		return err
	}
	a := hostcall.AcquireArgs()
	defer a.Release()
	a.B = abi.AppendString(a.B, key)
	a.B = abi.AppendBytesValue(a.B, val)
	a.B = abi.AppendInt(a.B, ms)
	_, err = hostcall.Call(abi.OpCacheSet, a.B)
	return err
}

// Delete removes key and reports whether it was present.
func Delete(key string) (bool, error) {
	a := hostcall.AcquireArgs()
	defer a.Release()
	a.B = abi.AppendString(a.B, key)
	return boolReply(abi.OpCacheDelete, a.B, "existed")
}

// GetMany returns one entry per key, in order, in one host call: a copy of
// the value, or nil on a miss. At most 1000 keys.
func GetMany(keys ...string) ([][]byte, error) {
	a := hostcall.AcquireArgs()
	defer a.Release()
	for _, k := range keys {
		a.B = abi.AppendString(a.B, k)
	}
	vs, err := hostcall.Call(abi.OpCacheGetMany, a.B)
	if err != nil {
		return nil, err
	}
	out := make([][]byte, len(keys))
	for i := range out {
		v, err := vs.Next()
		if err != nil {
			return nil, fmt.Errorf("wasmcorn cache: get_many: bad reply at value %d: %w", i, err)
		}
		switch v.Kind {
		case abi.KindNull:
		case abi.KindBytes, abi.KindString:
			out[i] = append([]byte{}, v.B...)
		default:
			return nil, fmt.Errorf("wasmcorn cache: get_many: bad reply: value %d is %s", i, v.Kind)
		}
	}
	if vs.More() {
		return nil, fmt.Errorf("wasmcorn cache: get_many: bad reply: more than %d values", len(keys))
	}
	return out, nil
}

// Incr adds delta (which may be negative) to the decimal integer stored at
// key and returns the new value. A missing key counts as 0 and is created
// with ttl (0: no expiry); an existing key keeps its expiry, so a counter
// created with a TTL is a fixed window. A value that is not a decimal
// integer fails with code invalid. Read it back with Get as decimal text.
func Incr(key string, delta int64, ttl time.Duration) (int64, error) {
	ms, err := millis("ttl", ttl)
	if err != nil {
		return 0, err
	}
	a := hostcall.AcquireArgs()
	defer a.Release()
	a.B = abi.AppendString(a.B, key)
	a.B = abi.AppendInt(a.B, delta)
	a.B = abi.AppendInt(a.B, ms)
	vs, err := hostcall.Call(abi.OpCacheIncr, a.B)
	if err != nil {
		return 0, err
	}
	n, err := vs.Int("value")
	if err != nil {
		return 0, fmt.Errorf("wasmcorn cache: incr %q: bad reply: %w", key, err)
	}
	return n, nil
}

// Add stores val under key only if key has no value, and reports whether
// it did. It is atomic: of concurrent Adds of one key, exactly one wins.
func Add(key string, val []byte, ttl time.Duration) (bool, error) {
	ms, err := millis("ttl", ttl)
	if err != nil {
		return false, err
	}
	a := hostcall.AcquireArgs()
	defer a.Release()
	a.B = abi.AppendString(a.B, key)
	a.B = abi.AppendBytesValue(a.B, val)
	a.B = abi.AppendInt(a.B, ms)
	return boolReply(abi.OpCacheAdd, a.B, "added")
}

func boolReply(op abi.Op, args []byte, name string) (bool, error) {
	vs, err := hostcall.Call(op, args)
	if err != nil {
		return false, err
	}
	b, err := vs.Bool(name)
	if err != nil {
		return false, fmt.Errorf("wasmcorn %s: bad reply: %w", op, err)
	}
	return b, nil
}
