package cli

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
)

// TestProblemReports checks both report formats flatten nested joined
// errors into one line each, in order, keeping wrapped leaves whole.
func TestProblemReports(t *testing.T) {
	a := errors.New("plugin p: route /x: bad pattern")
	b := fmt.Errorf("plugin p: limits: %w", errors.New("timeout must be positive"))
	c := errors.New("plugin p: grants: unknown backend")
	err := errors.Join(a, errors.Join(b, c))

	var buf bytes.Buffer
	if n := printProblems(&buf, err); n != 3 {
		t.Errorf("printProblems counted %d problems, want 3", n)
	}
	want := "  plugin p: route /x: bad pattern\n  plugin p: limits: timeout must be positive\n  plugin p: grants: unknown backend\n"
	if buf.String() != want {
		t.Errorf("printProblems wrote %q, want %q", buf.String(), want)
	}
	if got, want := indentProblems("p", err), "route /x: bad pattern\n         limits: timeout must be positive\n         grants: unknown backend"; got != want {
		t.Errorf("indentProblems = %q, want %q", got, want)
	}

	buf.Reset()
	if n := printProblems(&buf, a); n != 1 || buf.String() != "  "+a.Error()+"\n" {
		t.Errorf("single error: %d problems, %q", n, buf.String())
	}
}
