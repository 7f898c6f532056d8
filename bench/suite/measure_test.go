package suite

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/wasmcorn/wasmcorn/bench/workload"
)

// stubTarget serves one URL that the test runs; its instance's Stop fails.
type stubTarget struct{ url string }

func (f *stubTarget) Name() string                         { return "stub" }
func (f *stubTarget) Kind() string                         { return KindNative }
func (f *stubTarget) Description() string                  { return "stub" }
func (f *stubTarget) Route(*Scenario) (string, bool)       { return "/json", true }
func (f *stubTarget) WorldCacheEntry(int) (string, string) { return "", "" }
func (f *stubTarget) Start(context.Context, *Env, *Scenario) (Instance, error) {
	return stubInstance{f.url}, nil
}

type stubInstance struct{ url string }

func (i stubInstance) URL() string { return i.url }
func (i stubInstance) Pids() []int { return []int{os.Getpid()} }
func (i stubInstance) Stop() error { return errors.New("server would not stop") }

// TestMeasureReportsStopError: a target that fails to stop is reported
// in the measurement (the deferred check once set a copy's Error).
func TestMeasureReportsStopError(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, workload.HelloJSON)
	}))
	defer srv.Close()
	sc := Scenarios()[0]
	opts := &Options{Duration: 200 * time.Millisecond, Warmup: 100 * time.Millisecond, Connections: 2, Progress: io.Discard}
	m := measure(context.Background(), &Env{Dir: t.TempDir()}, opts, &sc, &stubTarget{srv.URL}, "/json")
	if !strings.Contains(m.Error, "would not stop") {
		t.Fatalf("Stop failed but the measurement's error is %q", m.Error)
	}
}

// TestGoalUnknownWithoutClassic: a goal with a part against the classic
// stacks is neither met nor missed when no classic stack was measured.
func TestGoalUnknownWithoutClassic(t *testing.T) {
	r := &Report{Results: []Measurement{
		meas("json", "wasmcorn", KindWasmcorn, 45000, 0),
		meas("json", "native", KindNative, 50000, 0),
	}}
	found := false
	for _, ra := range r.Ratios() {
		if ra.Scenario == "json" {
			found = true
			if ra.Met != "" {
				t.Errorf("goal %q reported %q with no classic measurement", ra.Goal, ra.Met)
			}
		}
	}
	if !found {
		t.Fatal("no ratio for json")
	}
}
