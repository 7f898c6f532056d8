package wasmtime

import (
	"strings"
	"testing"
)

func TestTidyMessage(t *testing.T) {
	cases := []struct{ name, in, want string }{
		{"plain", "failed to parse WebAssembly module\n", "failed to parse WebAssembly module"},
		{"trap",
			"error while executing at wasm backtrace:\n    0: 0x315652 - shim.wasm!abort\n    1:   0x50bf - shim.wasm!go_live\n\nCaused by:\n    wasm trap: wasm `unreachable` instruction executed\n\nStack backtrace:\n   0: <unknown>\n   1: <unknown>\n",
			"wasm trap: wasm `unreachable` instruction executed\nwasm backtrace:\n    0: 0x315652 - shim.wasm!abort\n    1:   0x50bf - shim.wasm!go_live"},
		{"chain", "outer\n\nCaused by:\n    0: middle\n    1: inner",
			"0: middle: 1: inner"},
		{"host trap", "error while executing at wasm backtrace:\n    0: 0x10 - <unknown>!f\n\nCaused by:\n    wasmcorn.call(log): argument region 0xffff+4 outside memory of 65536 bytes",
			"wasmcorn.call(log): argument region 0xffff+4 outside memory of 65536 bytes\nwasm backtrace:\n    0: 0x10 - <unknown>!f"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := tidyMessage(c.in); got != c.want {
				t.Fatalf("tidyMessage:\n%s\nwant:\n%s", got, c.want)
			}
		})
	}
	long := "error while executing at wasm backtrace:\n"
	for i := 0; i < 40; i++ {
		long += "    n: frame\n"
	}
	long += "\nCaused by:\n    boom"
	want := "boom\nwasm backtrace:"
	for i := 0; i < maxFrames; i++ {
		want += "\n    n: frame"
	}
	want += "\n    ... 24 more frames"
	if got := tidyMessage(long); got != want {
		t.Fatalf("long backtrace:\n%s", got)
	}
}

func FuzzTidyMessage(f *testing.F) {
	f.Add("error while executing at wasm backtrace:\n    0: 0x1 - f\n\nCaused by:\n    boom\n\nStack backtrace:\n   0: <unknown>")
	f.Add("plain")
	f.Add("\nCaused by:\n")
	f.Fuzz(func(t *testing.T, msg string) {
		got := tidyMessage(msg)
		if strings.TrimSpace(msg) != "" && !strings.Contains(msg, "Caused by:") && got != strings.TrimSpace(msg) {
			t.Fatalf("a message without a cause changed: %q -> %q", msg, got)
		}
		if strings.Count(got, "\n") > strings.Count(msg, "\n")+2 {
			t.Fatalf("output has more lines than the input: %q -> %q", msg, got)
		}
	})
}
