// Package hostcall is the Go guest's side of the wasmcorn.call and
// wasmcorn.result imports: it sends an argument message for a host
// operation and returns the decoded reply. The typed SDK packages (db,
// cache, lock, queue, logging, config) are written on top of it; handler
// authors normally do not use it directly.
//
// The argument and reply formats are those of ABI.md, encoded with the abi
// package (abi.AppendInt, abi.AppendString, ...; AppendAny converts a Go
// value). Built for wasip1 the calls go to the host; built for any other
// platform they go to the function installed by the SDK's internal
// testhost package, or fail with ErrNoHost, so the SDK's logic can be unit
// tested natively.
//
// A guest instance serves one call at a time, and a Go guest only switches
// goroutines at blocking points, so the package keeps one shared reply
// buffer. Everything here is nevertheless safe for concurrent use.
package hostcall

import (
	"errors"
	"fmt"
	"math"
	"sync"

	"github.com/wasmcorn/wasmcorn/abi"
)

// ErrNoHost is returned by Call and CallBuf in a native (non-wasip1) build
// when no test host is installed: the code is not running inside wasmcorn.
var ErrNoHost = errors.New("wasmcorn: not running inside a wasmcorn host")

// ErrProtocol is returned (wrapped) when the host breaks the call/result
// protocol of ABI.md, e.g. a negative reply length.
var ErrProtocol = errors.New("wasmcorn: host call protocol violation")

const (
	// initialReply is the size of the shared reply buffer; most replies
	// (acks, small cache values, one row) fit.
	initialReply = 4 << 10
	// maxKeptReply is the largest shared reply buffer kept between calls;
	// a larger reply gets a buffer of its own that the GC reclaims.
	maxKeptReply = 64 << 10
)

var (
	mu     sync.Mutex
	shared []byte
)

// Call runs host operation op with the argument message args and returns
// the reply values. A reply with a non-OK code is returned as a
// *abi.ReplyError (use errors.As, or abi.ErrNotFound and friends through
// its Code field).
//
// The returned Values alias a buffer shared by all callers of Call: they
// are valid until the next Call from any goroutine. Read or copy them
// before doing anything that may block or call the host again; use CallBuf
// to keep a reply longer.
func Call(op abi.Op, args []byte) (abi.Values, error) {
	mu.Lock()
	if shared == nil {
		shared = make([]byte, initialReply)
	}
	reply, err := roundTrip(op, args, shared)
	if err == nil && cap(reply) <= maxKeptReply {
		shared = reply[:cap(reply)]
	}
	mu.Unlock()
	if err != nil {
		return abi.Values{}, err
	}
	return abi.DecodeReply(op, reply)
}

// CallBuf is Call with a reply buffer owned by the caller: the reply is
// written into buf when it fits and into a new, larger buffer otherwise.
// It returns the reply values, which alias the returned buffer, and that
// buffer (pass it to the next CallBuf to reuse it). Use it when a reply
// must outlive later host calls, e.g. the rows of a query being scanned.
func CallBuf(op abi.Op, args, buf []byte) (abi.Values, []byte, error) {
	mu.Lock()
	reply, err := roundTrip(op, args, buf[:cap(buf)])
	mu.Unlock()
	if err != nil {
		return abi.Values{}, buf, err
	}
	vs, err := abi.DecodeReply(op, reply)
	return vs, reply, err
}

// roundTrip runs the call and returns the reply bytes: a prefix of out
// when they fit, else a new buffer fetched with result. mu must be held.
func roundTrip(op abi.Op, args, out []byte) ([]byte, error) {
	if !hostAvailable() {
		return nil, fmt.Errorf("%s: %w", op, ErrNoHost)
	}
	n := hostCall(uint32(op), args, out)
	if n < 0 {
		return nil, fmt.Errorf("%s: %w: reply length %d", op, ErrProtocol, n)
	}
	if int(n) <= len(out) {
		return out[:n], nil
	}
	big := make([]byte, n)
	if m := hostResult(big); m != n {
		return nil, fmt.Errorf("%s: %w: result returned %d for a pending reply of %d bytes", op, ErrProtocol, m, n)
	}
	return big, nil
}

// Args is a reusable argument buffer. Get one with AcquireArgs, append
// values to B with the abi.Append* functions, pass B to Call, then Release
// it. An Args must not be used after Release.
type Args struct {
	B []byte
}

var argsPool = sync.Pool{New: func() any { return &Args{B: make([]byte, 0, 256)} }}

// AcquireArgs returns an empty Args from a pool.
func AcquireArgs() *Args { return argsPool.Get().(*Args) }

// Release returns a to the pool. Buffers that grew past 64 KiB are dropped
// so that one large call does not pin memory.
func (a *Args) Release() {
	if cap(a.B) > maxKeptReply {
		return
	}
	a.B = a.B[:0]
	argsPool.Put(a)
}

// AppendAny appends v as an abi value: nil as null; bool; every signed and
// unsigned integer type as int (an unsigned value above MaxInt64 is an
// error); float32 and float64 as float; string as string; []byte as bytes;
// an abi.Value as itself. Any other type is an error.
func AppendAny(dst []byte, v any) ([]byte, error) {
	switch x := v.(type) {
	case nil:
		return abi.AppendNull(dst), nil
	case bool:
		return abi.AppendBool(dst, x), nil
	case int:
		return abi.AppendInt(dst, int64(x)), nil
	case int8:
		return abi.AppendInt(dst, int64(x)), nil
	case int16:
		return abi.AppendInt(dst, int64(x)), nil
	case int32:
		return abi.AppendInt(dst, int64(x)), nil
	case int64:
		return abi.AppendInt(dst, x), nil
	case uint:
		return appendUint(dst, uint64(x))
	case uint8:
		return abi.AppendInt(dst, int64(x)), nil
	case uint16:
		return abi.AppendInt(dst, int64(x)), nil
	case uint32:
		return abi.AppendInt(dst, int64(x)), nil
	case uint64:
		return appendUint(dst, x)
	case float32:
		return abi.AppendFloat(dst, float64(x)), nil
	case float64:
		return abi.AppendFloat(dst, x), nil
	case string:
		return abi.AppendString(dst, x), nil
	case []byte:
		return abi.AppendBytesValue(dst, x), nil
	case abi.Value:
		if x.Kind > abi.KindBool {
			return dst, fmt.Errorf("hostcall: cannot encode value of %s", x.Kind)
		}
		return abi.AppendValue(dst, x), nil
	}
	return dst, fmt.Errorf("hostcall: cannot encode a value of type %T", v)
}

func appendUint(dst []byte, u uint64) ([]byte, error) {
	if u > math.MaxInt64 {
		return dst, fmt.Errorf("hostcall: unsigned value %d does not fit an int64", u)
	}
	return abi.AppendInt(dst, int64(u)), nil
}
