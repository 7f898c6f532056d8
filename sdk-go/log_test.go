package wasmcorn

import (
	"bytes"
	"errors"
	"log/slog"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/wasmcorn/wasmcorn/abi"
)

type valuer struct{}

func (valuer) LogValue() slog.Value { return slog.StringValue("resolved") }

func TestLogger(t *testing.T) {
	host := installHost(t)
	l := Logger().With("plugin_attr", 1).WithGroup("req").With("id", "r1")
	l.Warn("something happened",
		"str", "s", "int", -3, "uint", uint64(math.MaxUint64), "small_uint", uint64(7), "float", 2.5, "bool", true,
		"dur", 1500*time.Millisecond, "time", time.Date(2024, 5, 6, 7, 8, 9, 10, time.UTC),
		"err", errors.New("bad"), "bytes", []byte("raw"), "nil", nil, "valuer", valuer{},
		slog.Group("g", "a", 1, slog.Group("", "inline", 2)), slog.Group("empty"), slog.Attr{},
		"any", struct{ X int }{5})
	logs := host.entries()
	if len(logs) != 1 {
		t.Fatalf("%d log calls", len(logs))
	}
	e := logs[0]
	if e.level != abi.LevelWarn || e.msg != "something happened" {
		t.Fatalf("level %d msg %q", e.level, e.msg)
	}
	want := []struct {
		key  string
		kind abi.Kind
		s    string
		i    int64
		f    float64
	}{
		{"plugin_attr", abi.KindInt, "", 1, 0},
		{"req.id", abi.KindString, "r1", 0, 0},
		{"req.str", abi.KindString, "s", 0, 0},
		{"req.int", abi.KindInt, "", -3, 0},
		{"req.uint", abi.KindString, "18446744073709551615", 0, 0},
		{"req.small_uint", abi.KindInt, "", 7, 0},
		{"req.float", abi.KindFloat, "", 0, 2.5},
		{"req.bool", abi.KindBool, "", 1, 0},
		{"req.dur", abi.KindString, "1.5s", 0, 0},
		{"req.time", abi.KindString, "2024-05-06T07:08:09.00000001Z", 0, 0},
		{"req.err", abi.KindString, "bad", 0, 0},
		{"req.bytes", abi.KindString, "raw", 0, 0},
		{"req.nil", abi.KindNull, "", 0, 0},
		{"req.valuer", abi.KindString, "resolved", 0, 0},
		{"req.g.a", abi.KindInt, "", 1, 0},
		{"req.g.inline", abi.KindInt, "", 2, 0},
		{"req.any", abi.KindString, "{5}", 0, 0},
	}
	if len(e.attrs) != len(want) {
		t.Errorf("%d attrs, want %d: %+v", len(e.attrs), len(want), e.attrs)
	}
	for i, w := range want {
		if i >= len(e.attrs) {
			break
		}
		a := e.attrs[i]
		if a.key != w.key || a.val.Kind != w.kind || a.val.Str() != w.s || a.val.I != w.i || a.val.F != w.f {
			t.Errorf("attr %d = %s %s %q %d %g, want %+v", i, a.key, a.val.Kind, a.val.B, a.val.I, a.val.F, w)
		}
	}
}

func TestLoggerFallback(t *testing.T) {
	// No host installed: records go to the fallback writer as text.
	var buf bytes.Buffer
	l := slog.New(newLogHandler(&buf)).With("a", 1).WithGroup("g")
	l.Info("no host here", "b", 2)
	if got := buf.String(); !strings.Contains(got, `msg="no host here" a=1 g.b=2`) {
		t.Fatalf("fallback output %q", got)
	}
}

func TestConfig(t *testing.T) {
	host := installHost(t)
	host.config["greeting"] = "hello"
	host.config["empty"] = ""
	cases := []struct {
		key, want string
		ok        bool
	}{{"greeting", "hello", true}, {"empty", "", true}, {"missing", "", false}}
	for _, c := range cases {
		if v, ok := Config(c.key); v != c.want || ok != c.ok {
			t.Errorf("Config(%q) = %q, %v; want %q, %v", c.key, v, ok, c.want, c.ok)
		}
	}
}
