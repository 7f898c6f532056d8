package suite

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wasmcorn/wasmcorn/bench/loadgen"
)

func meas(scenario, target, kind string, tput float64, errs int64) Measurement {
	return Measurement{
		Scenario: scenario, Target: target, Kind: kind, Connections: 64, Throughput: tput,
		NewMySQLConns: -1,
		Load: loadgen.Result{
			Requests: int64(tput*10) + errs, Successes: int64(tput * 10), Errors: loadgen.Errors{Timeout: errs},
			Latency: loadgen.Latency{P50: time.Millisecond, P99: 5 * time.Millisecond, P999: 9 * time.Millisecond, Max: 12 * time.Millisecond},
		},
		CPUPerRequest: 20 * time.Microsecond, PeakRSS: 20 << 20,
	}
}

func sampleReport() *Report {
	return &Report{
		Started:  time.Date(2026, 1, 2, 3, 4, 0, 0, time.UTC),
		Host:     "box|1",
		Machine:  Machine{CPU: "Test CPU", Cores: 2, GOMAXPROCS: 2},
		Versions: map[string]string{"go": "go1.26"},
		Settings: Settings{Duration: 10 * time.Second, Warmup: 3 * time.Second, Connections: 64, C10kConnections: 10000, Repeat: 3},
		Targets: []TargetInfo{
			{Name: "wasmcorn", Kind: KindWasmcorn}, {Name: "native", Kind: KindNative},
			{Name: "gunicorn-sync", Kind: KindClassic}, {Name: "uwsgi", Kind: KindClassic},
		},
		Scenarios: []ScenarioInfo{{Name: "json"}, {Name: "json-trusted", SameAs: "json"}, {Name: "db"}, {Name: "c10k"}, {Name: "queue"}},
		Results: []Measurement{
			meas("json", "wasmcorn", KindWasmcorn, 45000, 0),
			meas("json", "native", KindNative, 50000, 0),
			meas("json", "gunicorn-sync", KindClassic, 2900, 0),
			meas("json", "uwsgi", KindClassic, 5000, 0),
			meas("json-trusted", "wasmcorn", KindWasmcorn, 47000, 0),
			meas("db", "wasmcorn", KindWasmcorn, 6000, 0),
			meas("db", "native", KindNative, 8000, 0),
			meas("db", "uwsgi", KindClassic, 1300, 0),
			meas("c10k", "wasmcorn", KindWasmcorn, 30000, 3),
			meas("c10k", "native", KindNative, 40000, 0),
			{Scenario: "queue", Target: "wasmcorn", Kind: KindWasmcorn, Error: "start: boom | bang", NewMySQLConns: -1},
			{Scenario: "queue", Target: "native", Kind: KindNative, Skipped: "no redis", NewMySQLConns: -1},
		},
	}
}

func TestRatiosAndGoals(t *testing.T) {
	r := sampleReport()
	got := map[string]Ratio{}
	for _, ra := range r.Ratios() {
		got[ra.Scenario] = ra
	}
	if len(got) != 4 {
		t.Fatalf("ratios for %d scenarios, want 4 (json, json-trusted, db, c10k; failed queue has none): %+v", len(got), got)
	}
	tests := []struct {
		scenario          string
		vsNative, vsClass float64
		bestClassic, met  string
	}{
		{"json", 0.9, 9, "uwsgi", "yes"},            // >= 0.80x native, >= 8x classic
		{"json-trusted", 0.94, 9.4, "uwsgi", "yes"}, // compared with json's native and classic
		{"db", 0.75, 6000.0 / 1300, "uwsgi", "no"},  // < 0.85x native
		{"c10k", 0.75, 0, "", "no"},                 // errors: not 100% success
	}
	for _, tt := range tests {
		t.Run(tt.scenario, func(t *testing.T) {
			ra := got[tt.scenario]
			if math.Abs(ra.VsNative-tt.vsNative) > 1e-9 || math.Abs(ra.VsClassic-tt.vsClass) > 1e-9 {
				t.Errorf("vs native %v vs classic %v, want %v %v", ra.VsNative, ra.VsClassic, tt.vsNative, tt.vsClass)
			}
			if ra.BestClassicTarget != tt.bestClassic || ra.Met != tt.met {
				t.Errorf("best classic %q met %q, want %q %q", ra.BestClassicTarget, ra.Met, tt.bestClassic, tt.met)
			}
		})
	}
	if got["json-trusted"].Base != "json" {
		t.Errorf("json-trusted base = %q", got["json-trusted"].Base)
	}
}

func TestMarkdownAndJSON(t *testing.T) {
	r := sampleReport()
	var md bytes.Buffer
	if err := r.Markdown(&md, "chart.svg"); err != nil {
		t.Fatal(err)
	}
	s := md.String()
	for _, want := range []string{
		"share this machine",
		"![throughput and p99 per scenario and target](chart.svg)",
		"| json | wasmcorn | 64 | 45,000 |",
		"| json-trusted (vs json) | 47,000 | 50,000 | 0.94x | uwsgi 5,000 | 9.40x |",
		"skipped: no redis",
		`error: start: boom \| bang`, // pipes escaped inside a table
		"3 rounds interleaving the targets",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("markdown lacks %q:\n%s", want, s)
		}
	}
	var js bytes.Buffer
	if err := r.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	var back struct {
		Results []Measurement `json:"results"`
		Ratios  []Ratio       `json:"ratios"`
	}
	if err := json.Unmarshal(js.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	if len(back.Results) != len(r.Results) || len(back.Ratios) != 4 {
		t.Errorf("JSON has %d results, %d ratios", len(back.Results), len(back.Ratios))
	}
}

func TestSVG(t *testing.T) {
	r := sampleReport()
	var b bytes.Buffer
	if err := r.SVG(&b); err != nil {
		t.Fatal(err)
	}
	if err := xml.Unmarshal(b.Bytes(), new(struct{})); err != nil {
		t.Fatalf("SVG does not parse: %v", err)
	}
	// Two bars (throughput, p99) per measurement that ran (10), and for
	// json-trusted the native json reference (1).
	if n := strings.Count(b.String(), `height="13"`); n != 22 {
		t.Errorf("%d bars, want 22", n)
	}
	if !strings.Contains(b.String(), ">native (json)<") {
		t.Error("json-trusted lacks its native reference bar")
	}
	if !strings.Contains(b.String(), "(0.0% errors)") {
		t.Error("error share of c10k not labelled")
	}
}

func TestMedian(t *testing.T) {
	a, b, c := meas("json", "w", KindWasmcorn, 3, 0), meas("json", "w", KindWasmcorn, 1, 0), meas("json", "w", KindWasmcorn, 2, 0)
	failed := Measurement{Scenario: "json", Error: "x"}
	m := median([]Measurement{a, failed, b, c})
	if m.Throughput != 2 || len(m.Runs) != 4 {
		t.Errorf("median %v runs %v, want 2 of 4 runs", m.Throughput, m.Runs)
	}
	if m := median([]Measurement{failed}); m.Error != "x" || m.Runs != nil {
		t.Errorf("lone failed run: %+v", m)
	}
	// The failed round is noted (first line of its error), not dropped
	// silently; a lone run's error is the result itself.
	crashed := Measurement{Scenario: "db", Target: "wasmcorn", Error: "wasmcorn (pid 7) exited unexpectedly (exit status 2); crash report:\npanic: boom"}
	notes := failedRounds([]Measurement{a, crashed, b})
	if len(notes) != 1 || notes[0] != "db on wasmcorn: round 2 of 3 failed: wasmcorn (pid 7) exited unexpectedly (exit status 2); crash report:" {
		t.Errorf("failed rounds noted as %q", notes)
	}
	if notes := failedRounds([]Measurement{failed}); notes != nil {
		t.Errorf("lone run noted: %q", notes)
	}
}

func TestSelectScenarios(t *testing.T) {
	got, err := selectScenarios([]string{"py-db", "json"})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range got {
		names = append(names, s.Name)
	}
	// py-db needs db on the other targets; order follows Scenarios().
	if strings.Join(names, ",") != "json,db,py-db" {
		t.Errorf("selected %v", names)
	}
	if _, err := selectScenarios([]string{"nope"}); !errors.Is(err, ErrUsage) {
		t.Errorf("unknown scenario: %v", err)
	}
}

func TestAppendCustomSection(t *testing.T) {
	mod := []byte("\x00asm\x01\x00\x00\x00")
	out := appendCustomSection(mod, "v", bytes.Repeat([]byte("x"), 200))
	// id 0, size 202 as ULEB (0xca 0x01), name length 1, "v", payload.
	want := append(append([]byte{}, mod...), 0, 0xca, 0x01, 1, 'v')
	if !bytes.HasPrefix(out, want) || len(out) != len(want)+200 {
		t.Errorf("got % x", out[:len(want)])
	}
	if len(mod) != 8 {
		t.Error("input modified")
	}
}

// TestSummaryKeepsHandMaintainedPart: rewriting RESULTS.md replaces the
// generated results and keeps everything from KeepMarker on.
func TestSummaryKeepsHandMaintainedPart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "RESULTS.md")
	rep := sampleReport()
	if err := rep.WriteSummary(path); err != nil {
		t.Fatal(err)
	}
	first, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(first), KeepMarker) {
		t.Fatal("a fresh summary carries the marker")
	}
	hand := KeepMarker + "\n\n## Instantiate\n\n| a | b |\n"
	if err := os.WriteFile(path, append([]byte("stale results\n\n"), hand...), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := rep.WriteSummary(path); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(got), "stale results") {
		t.Error("the old generated part survived")
	}
	if !strings.HasPrefix(string(got), string(first)) {
		t.Error("the generated part differs from a fresh summary")
	}
	if !strings.HasSuffix(string(got), hand) {
		t.Errorf("the hand-maintained part was not kept:\n%s", got)
	}
}

// TestNamedBinaryMissing: a wasmcorn or wasmtime binary named on the
// command line that does not exist stops the run before it starts, rather
// than leaving every wasmcorn target out of it (make bench-classic
// BENCH_WASMTIME=1 once passed "1" as the wasmtime binary and measured 40
// minutes of everything but wasmcorn).
func TestNamedBinaryMissing(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "no-such-binary")
	// A stand-in wasmcorn that exists (the suite asks it for its version).
	self := filepath.Join(dir, "wasmcorn")
	if err := os.WriteFile(self, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, o := range map[string]WasmcornOptions{
		"wasmcorn": {Binary: missing},
		"wasmtime": {Binary: self, WasmtimeBinary: missing},
	} {
		rep := &Report{Versions: map[string]string{}}
		_, err := buildTargets(context.Background(), &Options{Wasmcorn: o, Targets: []string{"wasmcorn"}}, rep)
		if !errors.Is(err, ErrUsage) || !strings.Contains(err.Error(), "no-such-binary") {
			t.Errorf("%s binary missing: err %v, want a usage error naming it", name, err)
		}
	}
}
