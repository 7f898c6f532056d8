package suite

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"strings"
	"time"
)

// Chart layout, in SVG user units.
const (
	svgWidth     = 980
	svgLabelW    = 170 // scenario and target names
	svgPanelW    = 370 // each of the two bar panels
	svgPanelGap  = 40
	svgBarH      = 13
	svgBarGap    = 3
	svgGroupGap  = 12
	svgTop       = 70
	svgValueRoom = 80 // space right of the longest bar for its value
)

// targetColors are fixed per target so charts of different runs compare.
var targetColors = map[string]string{
	"wasmcorn":          "#e8710a",
	"wasmcorn-wasmtime": "#f4b400",
	"native":            "#5f6368",
	"gunicorn-sync":     "#1a73e8",
	"gunicorn-gevent":   "#8ab4f8",
	"uwsgi":             "#174ea6",
}

var fallbackColors = []string{"#0f9d58", "#a142f4", "#d93025", "#12b5cb"}

// SVG draws throughput and p99 latency per scenario and target as two
// panels of horizontal bars. Bars are scaled per scenario (the longest bar
// of a scenario fills its panel), so compare within a scenario; the values
// are printed next to the bars.
func (r *Report) SVG(w io.Writer) error {
	type row struct {
		target string
		label  string
		tput   float64
		p99    time.Duration
		note   string
	}
	type group struct {
		name string
		rows []row
	}
	var groups []group
	order := map[string]int{}
	for i, t := range r.Targets {
		order[t.Name] = i
	}
	for _, s := range r.Scenarios {
		g := group{name: s.Name}
		for _, m := range r.Results {
			if m.Scenario != s.Name || m.Skipped != "" || m.Load.Requests == 0 {
				continue
			}
			rw := row{target: m.Target, label: m.Target, tput: m.Throughput, p99: m.Load.Latency.P99}
			if e := m.Load.Errors.Total(); e > 0 {
				rw.note = fmt.Sprintf(" (%.1f%% errors)", 100*float64(e)/float64(m.Load.Requests))
			}
			g.rows = append(g.rows, rw)
		}
		// A wasmcorn-only scenario gets the native result of the work it
		// is compared with, so its bar has a scale.
		if s.SameAs != "" && len(g.rows) > 0 {
			for _, m := range r.Results {
				if m.Scenario == s.SameAs && m.Kind == KindNative && m.ok() {
					g.rows = append(g.rows, row{target: m.Target, label: m.Target + " (" + s.SameAs + ")",
						tput: m.Throughput, p99: m.Load.Latency.P99})
				}
			}
		}
		if len(g.rows) > 0 {
			groups = append(groups, g)
		}
	}
	colors := map[string]string{}
	next := 0
	for _, t := range r.Targets {
		if c, ok := targetColors[t.Name]; ok {
			colors[t.Name] = c
		} else {
			colors[t.Name] = fallbackColors[next%len(fallbackColors)]
			next++
		}
	}

	height := svgTop + 30
	for _, g := range groups {
		height += len(g.rows)*(svgBarH+svgBarGap) + svgGroupGap + 16
	}
	var b bytes.Buffer
	p := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	p(`<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="11">`+"\n",
		svgWidth, height, svgWidth, height)
	p(`<rect width="100%%" height="100%%" fill="#ffffff"/>` + "\n")
	p(`<text x="10" y="20" font-size="14" font-weight="bold">%s</text>`+"\n",
		esc(fmt.Sprintf("wasmcorn benchmark, %s, %s (%d cores, shared with the load generator)",
			r.Started.Format("2006-01-02"), r.Machine.CPU, r.Machine.Cores)))
	x1 := svgLabelW
	x2 := svgLabelW + svgPanelW + svgPanelGap
	p(`<text x="%d" y="42" font-weight="bold">throughput, successful req/s (longer is better)</text>`+"\n", x1)
	p(`<text x="%d" y="42" font-weight="bold">p99 latency (shorter is better)</text>`+"\n", x2)
	// Legend.
	lx := 10
	for _, t := range r.Targets {
		p(`<rect x="%d" y="52" width="10" height="10" fill="%s"/><text x="%d" y="61">%s</text>`+"\n",
			lx, colors[t.Name], lx+14, esc(t.Name))
		lx += 24 + 7*len(t.Name)
	}

	y := svgTop
	barMax := float64(svgPanelW - svgValueRoom)
	for _, g := range groups {
		y += 14
		p(`<text x="10" y="%d" font-weight="bold">%s</text>`+"\n", y, esc(g.name))
		p(`<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#dadce0"/>`+"\n", x1, y+3, svgWidth-10, y+3)
		y += 6
		var maxT float64
		var maxP time.Duration
		for _, rw := range g.rows {
			maxT = max(maxT, rw.tput)
			maxP = max(maxP, rw.p99)
		}
		for _, rw := range g.rows {
			c := colors[rw.target]
			p(`<text x="%d" y="%d" text-anchor="end">%s</text>`+"\n", x1-6, y+svgBarH-3, esc(rw.label))
			wt := 0.0
			if maxT > 0 {
				wt = barMax * rw.tput / maxT
			}
			p(`<rect x="%d" y="%d" width="%.1f" height="%d" fill="%s"/>`+"\n", x1, y, wt, svgBarH, c)
			p(`<text x="%.1f" y="%d">%s%s</text>`+"\n", float64(x1)+wt+4, y+svgBarH-3, num(rw.tput), esc(rw.note))
			wp := 0.0
			if maxP > 0 {
				wp = barMax * float64(rw.p99) / float64(maxP)
			}
			p(`<rect x="%d" y="%d" width="%.1f" height="%d" fill="%s" fill-opacity="0.75"/>`+"\n", x2, y, wp, svgBarH, c)
			p(`<text x="%.1f" y="%d">%s</text>`+"\n", float64(x2)+wp+4, y+svgBarH-3, ms(rw.p99))
			y += svgBarH + svgBarGap
		}
		y += svgGroupGap
	}
	p(`<text x="10" y="%d" fill="#5f6368">Bars are scaled per scenario. Source: bench/RESULTS.md.</text>`+"\n", y+10)
	p("</svg>\n")
	_, err := w.Write(b.Bytes())
	return err
}

func esc(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}
