package wasmcorn

import (
	"context"
	"io"
	"log/slog"
	"math"
	"os"
	"strconv"
	"time"

	"github.com/wasmcorn/wasmcorn/abi"
	"github.com/wasmcorn/wasmcorn/sdk-go/hostcall"
)

var logger = slog.New(newLogHandler(os.Stderr))

// Logger returns the plugin's structured logger. Each record becomes one
// log host call (level, message, then key/value pairs; groups flatten into
// dotted keys, e.g. "req.path"), which the host writes to its own log with
// the plugin name attached; the host also applies its log level, so the
// logger itself passes every level through. When the host call fails (or
// in a native build without a host) the record goes to stderr as text.
// The logger is safe for concurrent use.
//
// In a plugin (wasip1 build) the SDK also installs it as slog.Default, so
// slog.Info and the standard log package reach the host the same way.
func Logger() *slog.Logger { return logger }

// logHandler is a slog.Handler sending records with abi.OpLog.
type logHandler struct {
	attrs    []byte // encoded (key, value) pairs of WithAttrs, immutable
	prefix   string // group prefix for record attrs, e.g. "req."
	fallback slog.Handler
}

// newLogHandler returns a handler whose fallback writes text to w.
func newLogHandler(w io.Writer) *logHandler {
	return &logHandler{fallback: slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug})}
}

func (h *logHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h *logHandler) Handle(ctx context.Context, r slog.Record) error {
	a := hostcall.AcquireArgs()
	b := abi.AppendInt(a.B, int64(r.Level))
	b = abi.AppendString(b, r.Message)
	b = append(b, h.attrs...)
	r.Attrs(func(at slog.Attr) bool {
		b = appendAttr(b, h.prefix, at)
		return true
	})
	_, err := hostcall.Call(abi.OpLog, b)
	a.B = b
	a.Release()
	if err != nil {
		return h.fallback.Handle(ctx, r)
	}
	return nil
}

func (h *logHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	if len(attrs) == 0 {
		return h
	}
	b := append([]byte(nil), h.attrs...)
	for _, at := range attrs {
		b = appendAttr(b, h.prefix, at)
	}
	return &logHandler{attrs: b, prefix: h.prefix, fallback: h.fallback.WithAttrs(attrs)}
}

func (h *logHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	return &logHandler{attrs: h.attrs, prefix: h.prefix + name + ".", fallback: h.fallback.WithGroup(name)}
}

// appendAttr appends at as (string key, value) pairs, flattening groups.
// It follows slog's handler rules: an empty attr is dropped, a group with
// no attrs is dropped, a group with an empty key is inlined.
func appendAttr(b []byte, prefix string, at slog.Attr) []byte {
	v := at.Value.Resolve()
	if v.Kind() == slog.KindGroup {
		attrs := v.Group()
		if len(attrs) == 0 {
			return b
		}
		p := prefix
		if at.Key != "" {
			p = prefix + at.Key + "."
		}
		for _, ga := range attrs {
			b = appendAttr(b, p, ga)
		}
		return b
	}
	if at.Key == "" && v.Any() == nil {
		return b
	}
	b = append(b, byte(abi.KindString))
	b = abi.AppendU32(b, uint32(len(prefix)+len(at.Key)))
	b = append(b, prefix...)
	b = append(b, at.Key...)
	return appendLogValue(b, v)
}

// appendLogValue encodes a resolved, non-group slog value.
func appendLogValue(b []byte, v slog.Value) []byte {
	switch v.Kind() {
	case slog.KindString:
		return abi.AppendString(b, v.String())
	case slog.KindInt64:
		return abi.AppendInt(b, v.Int64())
	case slog.KindUint64:
		if u := v.Uint64(); u <= math.MaxInt64 {
			return abi.AppendInt(b, int64(u))
		}
		return abi.AppendString(b, strconv.FormatUint(v.Uint64(), 10))
	case slog.KindFloat64:
		return abi.AppendFloat(b, v.Float64())
	case slog.KindBool:
		return abi.AppendBool(b, v.Bool())
	case slog.KindDuration:
		return abi.AppendString(b, v.Duration().String())
	case slog.KindTime:
		return abi.AppendString(b, v.Time().Format(time.RFC3339Nano))
	}
	switch x := v.Any().(type) {
	case nil:
		return abi.AppendNull(b)
	case error:
		return abi.AppendString(b, x.Error())
	case []byte:
		return abi.AppendStringBytes(b, x)
	}
	return abi.AppendString(b, v.String())
}

// Config returns the value of key in the plugin's manifest configuration
// ([config] table), and whether it is set. A key the manifest does not set,
// and any failure of the host call, report false.
func Config(key string) (string, bool) {
	a := hostcall.AcquireArgs()
	defer a.Release()
	a.B = abi.AppendString(a.B, key)
	vs, err := hostcall.Call(abi.OpConfigGet, a.B)
	if err != nil {
		return "", false
	}
	v, err := vs.Bytes("value")
	if err != nil {
		return "", false
	}
	return string(v), true
}
