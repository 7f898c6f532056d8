package suite

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wasmcorn/wasmcorn/bench/loadgen"
	"github.com/wasmcorn/wasmcorn/bench/workload"
	"github.com/wasmcorn/wasmcorn/internal/testplugins"
)

// TestMain lets the suite start this test binary as its native target
// (Options.NativeCommand): with the native server's flags in the
// environment, the binary serves instead of testing.
func TestMain(m *testing.M) {
	if handled, err := MaybeRunNative(context.Background()); handled {
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// expectedFailures are scenarios wasmcorn cannot run yet, with the reason;
// their failures are logged, not reported. Remove an entry when the feature
// lands (the test logs when an entry is no longer needed).
var expectedFailures = map[string]string{}

// TestSmoke runs every scenario briefly against wasmcorn and the native
// target, on a throwaway MariaDB and Redis, and checks that every scenario
// ran on wasmcorn with successful requests and no failed ones, and that
// the report is well formed (JSON, markdown, SVG). It asserts nothing about
// speed.
func TestSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("starts MariaDB, Redis, wasmcorn and the native server for every scenario")
	}
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("needs the go command to build wasmcorn and the plugins")
	}
	root, err := testplugins.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "wasmcorn")
	build := exec.Command("go", "build", "-o", bin, "./cmd/wasmcorn")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build wasmcorn: %v\n%s", err, out)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	var progress bytes.Buffer
	rep, err := Run(ctx, Options{
		Targets:         []string{"wasmcorn", "native"},
		Classic:         "no",
		Duration:        time.Second,
		Warmup:          300 * time.Millisecond,
		Connections:     4,
		C10kConnections: 1000, // the race detector allows 8128 goroutines
		MinReloads:      1,
		NativeCommand:   []string{os.Args[0]},
		Wasmcorn:        WasmcornOptions{Binary: bin, PluginsDir: filepath.Join(root, "plugins")},
		Dir:             t.TempDir(),
		Progress:        &lineFilter{w: &progress},
		Command:         "go test ./bench/suite -run TestSmoke",
	})
	t.Logf("suite progress:\n%s", progress.String())
	if err != nil {
		t.Fatal(err)
	}

	for _, sc := range Scenarios() {
		t.Run(sc.Name, func(t *testing.T) {
			m := rep.find(sc.Name, "wasmcorn")
			if m == nil {
				t.Fatalf("no wasmcorn measurement; notes: %v", rep.Notes)
			}
			if m.Skipped != "" {
				t.Skipf("skipped: %s", m.Skipped)
			}
			why, expected := expectedFailures[sc.Name]
			if m.Error != "" && expected {
				t.Skipf("expected failure (%s): %s", why, m.Error)
			}
			if expected {
				t.Logf("%s now runs: remove it from expectedFailures", sc.Name)
			}
			if m.Error != "" {
				t.Fatalf("error: %s", m.Error)
			}
			l := m.Load
			if l.Successes == 0 || l.Errors.Total() != 0 {
				t.Errorf("%d successes, errors %+v %v", l.Successes, l.Errors, l.ErrorSamples)
			}
			if m.Throughput <= 0 || l.Latency.P50 <= 0 || l.Latency.P99 < l.Latency.P50 || m.PeakRSS <= 0 || m.ServerCPU <= 0 {
				t.Errorf("incomplete measurement: %+v", m)
			}
			if sc.NeedsDB && m.NewMySQLConns < 0 {
				t.Errorf("new MySQL connections not measured")
			}
			if sc.Queue != "" && m.JobsExecuted <= 0 {
				t.Errorf("no submitted job was executed during the run (%d)", m.JobsExecuted)
			}
			if sc.Reload && m.Reloads < 1 {
				t.Errorf("no reload during the reload scenario")
			}
			if sc.SameAs == "" && !sc.Python {
				if n := rep.find(sc.Name, "native"); n == nil || !n.ok() || n.Load.Errors.Total() != 0 {
					t.Errorf("native measurement missing or failed: %+v", n)
				}
			}
		})
	}

	// The plugin's JSON is the workload's (so native does the same work).
	t.Run("jsonstruct items", func(t *testing.T) { checkJSONAPIItems(t, ctx, bin, root) })

	// Every wasmcorn measurement that ran has a ratio against native.
	for _, ra := range rep.Ratios() {
		if !strings.HasPrefix(ra.Scenario, "py-") && ra.Native <= 0 {
			t.Errorf("ratio %s has no native baseline", ra.Scenario)
		}
	}

	// The saved report: JSON that decodes back, markdown with every
	// measurement, SVG that parses.
	out := t.TempDir()
	md, err := rep.Save(out)
	if err != nil {
		t.Fatal(err)
	}
	var back Report
	jb, err := os.ReadFile(strings.TrimSuffix(md, ".md") + ".json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(jb, &back); err != nil {
		t.Fatalf("report JSON: %v", err)
	}
	if len(back.Results) != len(rep.Results) || back.Machine.Cores <= 0 || back.Versions["go"] == "" {
		t.Errorf("report JSON incomplete: %d results, machine %+v", len(back.Results), back.Machine)
	}
	mdText, err := os.ReadFile(md)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"share this machine", "| json | wasmcorn |", "| db | native |", "vs native"} {
		if !strings.Contains(string(mdText), want) {
			t.Errorf("markdown lacks %q", want)
		}
	}
	svg, err := os.ReadFile(strings.TrimSuffix(md, ".md") + ".svg")
	if err != nil {
		t.Fatal(err)
	}
	if err := xml.Unmarshal(svg, new(struct{})); err != nil || !bytes.Contains(svg, []byte("<rect")) {
		t.Errorf("SVG does not parse or has no bars: %v", err)
	}
	summary := filepath.Join(out, "RESULTS.md")
	if err := rep.WriteSummary(summary); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(out, "chart.svg")); err != nil {
		t.Errorf("summary chart: %v", err)
	}
}

// checkJSONAPIItems serves plugins/jsonapi on wasmcorn and compares its
// /jsonstruct and /jsonbig documents with workload.Items and ItemsN, which
// the native (and Django) targets encode.
func checkJSONAPIItems(t *testing.T, ctx context.Context, bin, root string) {
	env := &Env{Dir: t.TempDir()}
	if err := writeStatic(env); err != nil {
		t.Fatal(err)
	}
	tg := &wasmcornTarget{name: "wasmcorn", engine: "wazero", bin: bin, pluginsDir: filepath.Join(root, "plugins")}
	sc := Scenario{Name: "jsonstruct", Path: "/jsonstruct", Method: "GET"}
	inst, err := tg.Start(ctx, env, &sc)
	if err != nil {
		t.Fatal(err)
	}
	defer inst.Stop()
	if err := waitServing(ctx, loadgen.Config{URL: inst.URL() + "/jsonapi/", Requests: 1}); err != nil {
		t.Fatal(err)
	}
	// /jsonstruct and /jsonbig, routed as the target routes them.
	for _, sc := range []Scenario{sc, {Name: "jsonbig", Path: "/jsonbig"}} {
		route, _ := tg.Route(&sc)
		cfg := loadgen.Config{URL: inst.URL() + route, Requests: 1}
		var body []byte
		cfg.Check = func(_ int, b []byte) error { body = append([]byte{}, b...); return nil }
		if _, err := loadgen.Run(ctx, cfg); err != nil {
			t.Fatal(err)
		}
		var got workload.ItemList
		if err := json.Unmarshal(body, &got); err != nil {
			t.Fatalf("%s: decode %q: %v", sc.Name, body, err)
		}
		want := workload.Items()
		if sc.Name == "jsonbig" {
			want = workload.ItemsN(workload.BigItems)
		}
		gb, _ := json.Marshal(got)
		wb, _ := json.Marshal(want)
		if !bytes.Equal(gb, wb) {
			t.Errorf("%s: plugins/jsonapi answers\n%s\nthe workload's items are\n%s", sc.Name, gb, wb)
		}
	}
}

// lineFilter keeps the suite's measurement lines and drops the load
// generator's per-second progress.
type lineFilter struct {
	w   io.Writer
	buf []byte
}

func (f *lineFilter) Write(p []byte) (int, error) {
	f.buf = append(f.buf, p...)
	for {
		i := bytes.IndexByte(f.buf, '\n')
		if i < 0 {
			return len(p), nil
		}
		line := f.buf[:i+1]
		if !bytes.HasPrefix(line, []byte("loadgen ")) {
			f.w.Write(line)
		}
		f.buf = f.buf[i+1:]
	}
}
