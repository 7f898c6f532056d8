package engine_test

import (
	"strings"
	"testing"

	"github.com/wasmcorn/wasmcorn/host/engine"
)

type lines []string

func (l *lines) WriteLine(b []byte) { *l = append(*l, string(b)) }

func TestLineSplitter(t *testing.T) {
	var got lines
	s := engine.NewLineSplitter(&got)
	for _, w := range []string{"a\nb", "c\n\nd", "\n", "tail"} {
		if n, err := s.Write([]byte(w)); n != len(w) || err != nil {
			t.Fatalf("Write(%q) = %d, %v", w, n, err)
		}
	}
	if want := "a|bc||d"; strings.Join(got, "|") != want {
		t.Fatalf("lines %q, want %q", got, want)
	}
	s.Flush()
	s.Flush() // nothing left: no empty line
	if want := "a|bc||d|tail"; strings.Join(got, "|") != want {
		t.Fatalf("after Flush: lines %q, want %q", got, want)
	}
	got = nil
	s.Write([]byte(strings.Repeat("x", 64<<10+1)))
	if len(got) != 1 || len(got[0]) != 64<<10+1 {
		t.Fatalf("a very long line without newline is passed on in pieces: got %d lines", len(got))
	}
}
