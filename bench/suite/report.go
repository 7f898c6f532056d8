package suite

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/wasmcorn/wasmcorn/bench/loadgen"
)

// Report is the outcome of one run; it is saved as JSON and rendered as
// markdown.
type Report struct {
	Started  time.Time         `json:"started"`
	Finished time.Time         `json:"finished"`
	Host     string            `json:"host"`
	Machine  Machine           `json:"machine"`
	Versions map[string]string `json:"versions"`
	// Command is the command line that produced the report.
	Command   string         `json:"command"`
	Settings  Settings       `json:"settings"`
	Targets   []TargetInfo   `json:"targets"`
	Scenarios []ScenarioInfo `json:"scenarios"`
	Results   []Measurement  `json:"results"`
	// Notes explain what was not measured and why.
	Notes []string `json:"notes,omitempty"`
}

// Machine describes where the run happened.
type Machine struct {
	CPU        string `json:"cpu"`
	Cores      int    `json:"cores"`
	GOMAXPROCS int    `json:"gomaxprocs"`
	MemoryMiB  int64  `json:"memory_mib"`
	Kernel     string `json:"kernel"`
	OS         string `json:"os"`
	// LoadAvg is /proc/loadavg's 1-minute figure at the start and the end:
	// other work on the machine skews every number.
	LoadAvgStart float64 `json:"loadavg_start"`
	LoadAvgEnd   float64 `json:"loadavg_end"`
}

// Settings are the run's load parameters.
type Settings struct {
	Duration        time.Duration `json:"duration_ns"`
	Warmup          time.Duration `json:"warmup_ns"`
	Connections     int           `json:"connections"`
	C10kConnections int           `json:"c10k_connections"`
	Repeat          int           `json:"repeat"`
}

// TargetInfo names a measured target.
type TargetInfo struct {
	Name        string `json:"name"`
	Kind        string `json:"kind"`
	Description string `json:"description"`
}

// ScenarioInfo names a scenario.
type ScenarioInfo struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	SameAs      string `json:"same_as,omitempty"`
}

// Measurement is one scenario on one target.
type Measurement struct {
	Scenario    string `json:"scenario"`
	Target      string `json:"target"`
	Kind        string `json:"kind"`
	Connections int    `json:"connections"`
	// Skipped says why the scenario did not run on this target.
	Skipped string `json:"skipped,omitempty"`
	// Error says what went wrong (start-up, the run); the numbers may be
	// partial or absent.
	Error string `json:"error,omitempty"`
	// Throughput is successful requests per second.
	Throughput float64        `json:"throughput"`
	Load       loadgen.Result `json:"load"`
	// ServerCPU is the user+system CPU of the target's process trees
	// during the measured period; CPUPerRequest divides it by requests.
	ServerCPU     time.Duration `json:"server_cpu_ns"`
	CPUPerRequest time.Duration `json:"cpu_per_request_ns"`
	// PeakRSS sums VmHWM over the target's processes; PSS sums their
	// proportional set sizes at the end (shared pages split).
	PeakRSS int64 `json:"peak_rss_bytes"`
	PSS     int64 `json:"pss_bytes"`
	Procs   int   `json:"procs"`
	// NewMySQLConns is the growth of MariaDB's Connections counter during
	// the measured period; -1 when unknown.
	NewMySQLConns int64 `json:"new_mysql_connections"`
	// JobsExecuted counts queued jobs the target executed during the
	// measured period (queue scenarios; -1 when unknown), JobsPerSecond
	// per second of it. Submission rate is Throughput.
	JobsExecuted  int64   `json:"jobs_executed"`
	JobsPerSecond float64 `json:"jobs_per_second,omitempty"`
	// Runs lists the throughput of every repeat when there were several;
	// the other fields are those of the median run.
	Runs []float64 `json:"runs,omitempty"`
	// Reloads counts plugin versions made current during the run (reload
	// scenario).
	Reloads int `json:"reloads,omitempty"`
	// ReloadMean is the mean time from replacing the plugin file to the
	// new version serving.
	ReloadMean time.Duration `json:"reload_mean_ns,omitempty"`
}

func (m *Measurement) ok() bool { return m.Skipped == "" && m.Error == "" && m.Load.Requests > 0 }

func (m *Measurement) summary() string {
	switch {
	case m.Skipped != "":
		return fmt.Sprintf("%-13s %-16s skipped: %s", m.Scenario, m.Target, m.Skipped)
	case m.Load.Requests == 0 && m.Error != "":
		return fmt.Sprintf("%-13s %-16s error: %s", m.Scenario, m.Target, m.Error)
	}
	s := fmt.Sprintf("%-13s %-16s %9.0f req/s  p50 %s  p99 %s  errors %d  cpu/req %s  rss %s",
		m.Scenario, m.Target, m.Throughput, ms(m.Load.Latency.P50), ms(m.Load.Latency.P99),
		m.Load.Errors.Total(), us(m.CPUPerRequest), mib(m.PeakRSS))
	if m.Error != "" {
		s += "  error: " + m.Error
	}
	return s
}

func newReport(opts Options) *Report {
	host, _ := os.Hostname()
	r := &Report{
		Started:  time.Now().UTC(),
		Host:     host,
		Machine:  machine(),
		Versions: map[string]string{"go": runtime.Version()},
		Command:  opts.Command,
		Settings: Settings{
			Duration: opts.Duration, Warmup: opts.Warmup,
			Connections: opts.Connections, C10kConnections: opts.C10kConnections, Repeat: opts.Repeat,
		},
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			for name, mod := range map[string]string{
				"wazero": "github.com/tetratelabs/wazero", "fasthttp": "github.com/valyala/fasthttp",
				"go-sql-driver/mysql": "github.com/go-sql-driver/mysql", "go-redis": "github.com/redis/go-redis/v9",
			} {
				if d.Path == mod {
					r.Versions[name] = d.Version
				}
			}
		}
	}
	return r
}

func machine() Machine {
	m := Machine{Cores: runtime.NumCPU(), GOMAXPROCS: runtime.GOMAXPROCS(0), LoadAvgStart: loadAvg()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				f := strings.Fields(v)
				if len(f) > 0 {
					kb, _ := strconv.ParseInt(f[0], 10, 64)
					m.MemoryMiB = kb / 1024
				}
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/etc/os-release"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "PRETTY_NAME="); ok {
				m.OS = strings.Trim(v, `"`)
			}
		}
	}
	return m
}

func loadAvg() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}

// Goal is a project target for a scenario's wasmcorn result.
type Goal struct {
	// VsNative and VsClassic are the minimum throughput ratios (0: none).
	VsNative  float64
	VsClassic float64
	// FullSuccess requires every request to succeed.
	FullSuccess bool
}

// Goals are the project's performance targets (issues 3, 4 and 7).
var Goals = map[string]Goal{
	"json":         {VsNative: 0.80, VsClassic: 8}, // deadlines enforced (the default); 0.90 without
	"json-trusted": {VsNative: 0.90},
	// The -fast scenarios have the goals of the scenarios they mirror.
	"json-fast":         {VsNative: 0.80},
	"json-fast-trusted": {VsNative: 0.90},
	"jsonstruct":        {VsNative: 0.70},
	"db":                {VsNative: 0.85, VsClassic: 5},
	"cached":            {VsNative: 0.85},
	"db-fast":           {VsNative: 0.85, VsClassic: 5},
	"cached-fast":       {VsNative: 0.85},
	"cached-redis":      {VsNative: 0.85},
	"c10k":              {FullSuccess: true},
	"reload":            {FullSuccess: true},
}

func (g Goal) String() string {
	var p []string
	if g.VsNative > 0 {
		p = append(p, fmt.Sprintf(">= %.2fx native", g.VsNative))
	}
	if g.VsClassic > 0 {
		p = append(p, fmt.Sprintf(">= %.0fx best classic", g.VsClassic))
	}
	if g.FullSuccess {
		p = append(p, "100% success")
	}
	return strings.Join(p, ", ")
}

// Ratio compares one wasmcorn result with the native and best classic
// results of the same work in the same run.
type Ratio struct {
	Scenario string `json:"scenario"`
	Target   string `json:"target"`
	// Base is the scenario the other targets ran for this work.
	Base        string  `json:"base"`
	Wasmcorn    float64 `json:"wasmcorn"`
	Native      float64 `json:"native"`
	BestClassic float64 `json:"best_classic"`
	// BestClassicTarget names the classic stack with the most throughput.
	BestClassicTarget string  `json:"best_classic_target,omitempty"`
	VsNative          float64 `json:"vs_native"`
	VsClassic         float64 `json:"vs_classic"`
	SuccessRate       float64 `json:"success_rate"`
	Goal              string  `json:"goal,omitempty"`
	// Met is "yes", "no" or "" (no goal, or not measurable).
	Met string `json:"met,omitempty"`
}

func (r *Report) find(scenario, target string) *Measurement {
	for i := range r.Results {
		if r.Results[i].Scenario == scenario && r.Results[i].Target == target {
			return &r.Results[i]
		}
	}
	return nil
}

// Ratios returns a Ratio for every wasmcorn measurement.
func (r *Report) Ratios() []Ratio {
	byName := map[string]Scenario{}
	for _, s := range Scenarios() {
		byName[s.Name] = s
	}
	var out []Ratio
	for _, m := range r.Results {
		if m.Kind != KindWasmcorn || !m.ok() {
			continue
		}
		sc := byName[m.Scenario]
		ra := Ratio{Scenario: m.Scenario, Target: m.Target, Base: sc.base(), Wasmcorn: m.Throughput,
			SuccessRate: m.Load.SuccessRate()}
		for _, o := range r.Results {
			if o.Scenario != ra.Base || !o.ok() {
				continue
			}
			switch o.Kind {
			case KindNative:
				ra.Native = o.Throughput
			case KindClassic:
				if o.Throughput > ra.BestClassic {
					ra.BestClassic, ra.BestClassicTarget = o.Throughput, o.Target
				}
			}
		}
		if ra.Native > 0 {
			ra.VsNative = m.Throughput / ra.Native
		}
		if ra.BestClassic > 0 {
			ra.VsClassic = m.Throughput / ra.BestClassic
		}
		if g, ok := Goals[m.Scenario]; ok {
			ra.Goal = g.String()
			met, known := true, true
			if g.VsNative > 0 {
				known = known && ra.Native > 0
				met = met && ra.VsNative >= g.VsNative
			}
			if g.VsClassic > 0 {
				known = known && ra.BestClassic > 0
				met = met && ra.VsClassic >= g.VsClassic
			}
			if g.FullSuccess {
				met = met && m.Load.Errors.Total() == 0 && m.Load.Successes > 0
			}
			switch {
			case !known:
			case met:
				ra.Met = "yes"
			default:
				ra.Met = "no"
			}
		}
		out = append(out, ra)
	}
	return out
}

// jsonReport adds the ratios to the saved JSON.
type jsonReport struct {
	*Report
	Ratios []Ratio `json:"ratios"`
}

// WriteJSON writes the report and its ratios as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(jsonReport{r, r.Ratios()})
}

// Markdown renders the report. chart, when not empty, is the SVG chart's
// path relative to the markdown file.
func (r *Report) Markdown(w io.Writer, chart string) error {
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	p("# wasmcorn benchmark: %s on %s\n\n", r.Started.Format("2006-01-02 15:04 UTC"), r.Host)
	if r.Command != "" {
		p("Command: `%s`\n\n", r.Command)
	}
	mc := r.Machine
	p("Machine: %s, %d cores (GOMAXPROCS %d), %d MiB, Linux %s, %s. Load average %.2f at the start, %.2f at the end.\n\n",
		mc.CPU, mc.Cores, mc.GOMAXPROCS, mc.MemoryMiB, mc.Kernel, mc.OS, mc.LoadAvgStart, mc.LoadAvgEnd)
	p("**The load generator and the servers share this machine.** The generator (bench/loadgen, in the suite's process) " +
		"competes with the server under test for the same cores, so absolute numbers understate what a dedicated client " +
		"would see; every target pays the same tax. Compare the ratios, measured in the same run, not the absolute numbers " +
		"across machines.\n\n")
	keys := make([]string, 0, len(r.Versions))
	for k := range r.Versions {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var vs []string
	for _, k := range keys {
		vs = append(vs, k+" "+r.Versions[k])
	}
	p("Versions: %s.\n\n", strings.Join(vs, ", "))
	p("Each measurement: a fresh server process (tree), %v warm-up, %v measured, %d keep-alive connections (c10k: %d), closed loop",
		r.Settings.Warmup, r.Settings.Duration, r.Settings.Connections, r.Settings.C10kConnections)
	if r.Settings.Repeat > 1 {
		p("; %d rounds interleaving the targets, each target's median round shown", r.Settings.Repeat)
	}
	p(".\n\n")
	if chart != "" {
		p("![throughput and p99 per scenario and target](%s)\n\n", chart)
	}

	if ratios := r.Ratios(); len(ratios) > 0 {
		p("## wasmcorn against native and the best classic stack\n\n")
		p("| scenario | wasmcorn req/s | native req/s | vs native | best classic | vs classic | success | goal | met |\n")
		p("|---|---:|---:|---:|---|---:|---:|---|---|\n")
		for _, ra := range ratios {
			name := ra.Scenario
			if ra.Base != ra.Scenario {
				name += " (vs " + ra.Base + ")"
			}
			if ra.Target != "wasmcorn" {
				name += " [" + ra.Target + "]"
			}
			classic := "-"
			if ra.BestClassicTarget != "" {
				classic = fmt.Sprintf("%s %s", ra.BestClassicTarget, num(ra.BestClassic))
			}
			p("| %s | %s | %s | %s | %s | %s | %.2f%% | %s | %s |\n", name, num(ra.Wasmcorn), num(ra.Native),
				ratio(ra.VsNative), classic, ratio(ra.VsClassic), 100*ra.SuccessRate, ra.Goal, ra.Met)
		}
		p("\n")
	}

	p("## All measurements\n\n")
	p("| scenario | target | conns | req/s | p50 | p99 | p99.9 | max | errors | server CPU/req | peak RSS | PSS | new MySQL conns |\n")
	p("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, m := range r.Results {
		if m.Skipped != "" {
			p("| %s | %s | | skipped: %s | | | | | | | | | |\n", m.Scenario, m.Target, mdEscape(m.Skipped))
			continue
		}
		if m.Load.Requests == 0 {
			p("| %s | %s | | error: %s | | | | | | | | | |\n", m.Scenario, m.Target, mdEscape(m.Error))
			continue
		}
		l := m.Load.Latency
		errs := strconv.FormatInt(m.Load.Errors.Total(), 10)
		if e := m.Load.Errors; e.Total() > 0 {
			errs += fmt.Sprintf(" (c%d t%d s%d k%d o%d)", e.Connect, e.Timeout, e.Status, e.Check, e.Other)
		}
		newConns := "-"
		if m.NewMySQLConns >= 0 {
			newConns = strconv.FormatInt(m.NewMySQLConns, 10)
		}
		tgt := m.Target
		if m.Reloads > 0 {
			tgt += fmt.Sprintf(" (%d reloads, %.1f s each)", m.Reloads, m.ReloadMean.Seconds())
		}
		if m.Error != "" {
			tgt += " ⚠ " + mdEscape(m.Error)
		}
		tput := num(m.Throughput)
		if len(m.Runs) > 1 {
			tput += fmt.Sprintf(" (%s–%s)", count(slices.Min(m.Runs)), count(slices.Max(m.Runs)))
		}
		p("| %s | %s | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n",
			m.Scenario, tgt, m.Connections, tput, ms(l.P50), ms(l.P99), ms(l.P999), ms(l.Max),
			errs, us(m.CPUPerRequest), mib(m.PeakRSS), mib(m.PSS), newConns)
	}
	p("\nErrors: c connect, t timeout, s non-2xx status, k failed body check, o other. " +
		"Server CPU/req: user+system time of the target's whole process tree during the measured period, divided by requests. " +
		"Peak RSS: sum of VmHWM over the target's processes (pages shared between forked workers count once per process); " +
		"PSS splits shared pages. New MySQL conns: growth of MariaDB's Connections counter during the measured period.\n\n")

	var queue []Measurement
	for _, m := range r.Results {
		if m.JobsExecuted >= 0 && m.ok() && strings.HasPrefix(m.Scenario, "queue") {
			queue = append(queue, m)
		}
	}
	if len(queue) > 0 {
		p("## Queue: jobs submitted over HTTP and executed in the same process\n\n")
		p("| scenario | target | submitted/s | executed/s | executed during the run |\n|---|---|---:|---:|---:|\n")
		for _, m := range queue {
			p("| %s | %s | %s | %s | %d |\n", m.Scenario, m.Target, num(m.Throughput), num(m.JobsPerSecond), m.JobsExecuted)
		}
		p("\n")
	}

	p("## Scenarios\n\n")
	for _, s := range r.Scenarios {
		p("- `%s`: %s", s.Name, s.Description)
		if s.SameAs != "" {
			p(" (other targets: see `%s`)", s.SameAs)
		}
		p("\n")
	}
	p("\n## Targets\n\n")
	for _, t := range r.Targets {
		p("- `%s`: %s\n", t.Name, t.Description)
	}
	if len(r.Notes) > 0 {
		p("\n## Notes\n\n")
		for _, n := range r.Notes {
			p("- %s\n", mdEscape(n))
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// Save writes the report to dir as DATE-HOST.json, .md and .svg, and
// returns the markdown's path.
func (r *Report) Save(dir string) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	base := filepath.Join(dir, r.Started.Format("2006-01-02")+"-"+sanitize(r.Host))
	if err := writeFile(base+".json", r.WriteJSON); err != nil {
		return "", err
	}
	if err := writeFile(base+".svg", r.SVG); err != nil {
		return "", err
	}
	chart := filepath.Base(base + ".svg")
	err := writeFile(base+".md", func(w io.Writer) error { return r.Markdown(w, chart) })
	return base + ".md", err
}

// KeepMarker starts the hand-maintained part of bench/RESULTS.md: figures
// measured outside the suite (Go benchmarks of instantiate, load, reload
// latency, engines). WriteSummary replaces what comes before it and keeps
// it and everything after it.
const KeepMarker = "<!-- wcbench: hand-maintained below; kept when the suite rewrites this file -->"

// WriteSummary writes the latest results as path (bench/RESULTS.md) with
// its chart next to it (chart.svg). The part of an existing path from
// KeepMarker on is kept, after the new results.
func (r *Report) WriteSummary(path string) error {
	chart := filepath.Join(filepath.Dir(path), "chart.svg")
	if err := writeFile(chart, r.SVG); err != nil {
		return err
	}
	var kept []byte
	if old, err := os.ReadFile(path); err == nil {
		if i := bytes.Index(old, []byte(KeepMarker)); i >= 0 {
			kept = old[i:]
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return writeFile(path, func(w io.Writer) error {
		if err := r.Markdown(w, "chart.svg"); err != nil {
			return err
		}
		if kept != nil {
			if _, err := io.WriteString(w, "\n"); err != nil {
				return err
			}
			_, err := w.Write(kept)
			return err
		}
		return nil
	})
}

func writeFile(path string, write func(io.Writer) error) error {
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	if err := write(f); err != nil {
		f.Close()
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, path)
}

func sanitize(s string) string {
	if s == "" {
		return "host"
	}
	return strings.Map(func(r rune) rune {
		if r == '-' || r == '.' || r == '_' || ('a' <= r && r <= 'z') || ('A' <= r && r <= 'Z') || ('0' <= r && r <= '9') {
			return r
		}
		return '_'
	}, s)
}

func mdEscape(s string) string {
	s = strings.ReplaceAll(s, "|", `\|`)
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}

// num formats a rate with thousands separators, "-" when unknown (0).
func num(f float64) string {
	if f <= 0 || math.IsNaN(f) {
		return "-"
	}
	return count(f)
}

// count formats f >= 0 with thousands separators.
func count(f float64) string {
	s := strconv.FormatInt(int64(math.Round(max(f, 0))), 10)
	var out []byte
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	return string(out)
}

func ratio(f float64) string {
	if f <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.2fx", f)
}

func ms(d time.Duration) string {
	if d <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f ms", float64(d)/1e6)
}

func us(d time.Duration) string {
	if d <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f µs", float64(d)/1e3)
}

func mib(b int64) string {
	if b <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20))
}
