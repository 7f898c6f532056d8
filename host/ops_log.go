package host

import (
	"context"
	"log/slog"

	"github.com/wasmcorn/wasmcorn/abi"
)

func init() {
	registerOp(abi.OpLog, opLog)
	registerOp(abi.OpConfigGet, opConfigGet)
}

// maxLogAttrs bounds the attributes of one guest log record.
const maxLogAttrs = 32

// opLog writes a guest log record into the plugin's structured log, tagged
// with the request id.
func opLog(c *Call, args *abi.Values, reply []byte) []byte {
	level, err := args.Int("level")
	if err != nil {
		return abi.AppendReplyError(reply, abi.ErrInvalid, "log: "+err.Error())
	}
	msg, err := args.Bytes("msg")
	if err != nil {
		return abi.AppendReplyError(reply, abi.ErrInvalid, "log: "+err.Error())
	}
	lvl := slog.Level(level)
	if !c.Log.Enabled(context.Background(), lvl) {
		return abi.AppendReplyOK(reply)
	}
	attrs := make([]slog.Attr, 0, 4)
	if len(c.reqID) > 0 {
		attrs = append(attrs, slog.String("request_id", string(c.reqID)))
	}
	for args.More() && len(attrs) < maxLogAttrs {
		key, err := args.Bytes("attr key")
		if err != nil {
			return abi.AppendReplyError(reply, abi.ErrInvalid, "log: "+err.Error())
		}
		v, err := args.Next()
		if err != nil {
			return abi.AppendReplyError(reply, abi.ErrInvalid, "log: attr "+string(key)+": "+err.Error())
		}
		attrs = append(attrs, slog.Attr{Key: string(key), Value: slogValue(v)})
	}
	c.Log.LogAttrs(context.Background(), lvl, string(msg), attrs...)
	return abi.AppendReplyOK(reply)
}

func slogValue(v abi.Value) slog.Value {
	switch v.Kind {
	case abi.KindInt:
		return slog.Int64Value(v.I)
	case abi.KindFloat:
		return slog.Float64Value(v.F)
	case abi.KindBool:
		return slog.BoolValue(v.I != 0)
	case abi.KindString, abi.KindBytes:
		return slog.StringValue(string(v.B))
	}
	return slog.AnyValue(nil)
}

// opConfigGet returns a value of the plugin's manifest [grants] config map.
func opConfigGet(c *Call, args *abi.Values, reply []byte) []byte {
	key, err := args.Bytes("key")
	if err != nil {
		return abi.AppendReplyError(reply, abi.ErrInvalid, "config.get: "+err.Error())
	}
	v, ok := c.Grants.Config[string(key)]
	if !ok {
		return abi.AppendReplyError(reply, abi.ErrNotFound, "config.get: no key "+string(key)+" in the plugin's manifest config")
	}
	return abi.AppendString(abi.AppendReplyOK(reply), v)
}
