package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"
)

// report collects the figures of a run and prints them as one table;
// with -json it also writes them, with the numbers behind them, as JSON.
type report struct {
	out   io.Writer
	rows  []row
	notes []string
	// figures are the run's numbers by key ("section.name_unit"), for
	// comparing runs: the table's values are text.
	figures map[string]float64
}

type row struct {
	section, figure, value, target, verdict string
}

// fig records a number for the JSON output.
func (r *report) fig(key string, v float64) {
	if r.figures == nil {
		r.figures = map[string]float64{}
	}
	r.figures[key] = v
}

// runInfo is what the JSON output says about the run itself.
type runInfo struct {
	Part      string    `json:"part"`
	Started   time.Time `json:"started"`
	Wall      float64   `json:"wall_seconds"`
	CPUs      int       `json:"cpus"`
	Go        string    `json:"go"`
	LoadStart string    `json:"load_average_start"`
	LoadEnd   string    `json:"load_average_end"`
	Error     string    `json:"error,omitempty"`
}

// writeJSON writes the run's figures, table rows and notes to path.
func (r *report) writeJSON(path string, info runInfo) error {
	type jsonRow struct {
		Section string `json:"section"`
		Figure  string `json:"figure"`
		Value   string `json:"value"`
		Target  string `json:"target,omitempty"`
		Verdict string `json:"verdict,omitempty"`
	}
	out := struct {
		runInfo
		Figures map[string]float64 `json:"figures"`
		Rows    []jsonRow          `json:"rows"`
		Notes   []string           `json:"notes"`
	}{runInfo: info, Figures: r.figures, Rows: []jsonRow{}, Notes: r.notes}
	if out.Figures == nil {
		out.Figures = map[string]float64{}
	}
	for _, x := range r.rows {
		out.Rows = append(out.Rows, jsonRow{x.section, x.figure, x.value, x.target, x.verdict})
	}
	b, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", path, err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// ms is d in milliseconds, for figures.
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func (r *report) add(section, figure, value string) {
	r.rows = append(r.rows, row{section: section, figure: figure, value: value})
}

// check adds a figure with its target; ok decides MET or MISSED.
func (r *report) check(section, figure, value, target string, ok bool) {
	v := "MET"
	if !ok {
		v = "MISSED"
	}
	r.rows = append(r.rows, row{section, figure, value, target, v})
}

func (r *report) note(format string, a ...any) { r.notes = append(r.notes, fmt.Sprintf(format, a...)) }

func (r *report) print() {
	if len(r.rows) == 0 {
		return
	}
	fmt.Fprintln(r.out)
	tw := tabwriter.NewWriter(r.out, 2, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "part\tfigure\tvalue\ttarget\t\t")
	last := ""
	for _, x := range r.rows {
		sec := x.section
		if sec == last {
			sec = ""
		} else if last != "" {
			fmt.Fprintln(tw, "\t\t\t\t\t")
		}
		last = x.section
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t\n", sec, x.figure, x.value, x.target, x.verdict)
	}
	tw.Flush()
	if len(r.notes) > 0 {
		fmt.Fprintln(r.out)
		for _, n := range r.notes {
			fmt.Fprintln(r.out, "* "+n)
		}
	}
}

func rate(n float64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return n / d.Seconds()
}

func fmtRate(v float64) string { return fmt.Sprintf("%.0f msg/s", v) }

func fmtMB(kb int64) string { return fmt.Sprintf("%.1f MB", float64(kb)/1024) }

func fmtDur(d time.Duration) string {
	switch {
	case d >= time.Second:
		return fmt.Sprintf("%.2f s", d.Seconds())
	default:
		return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
	}
}

func numCPU() int { return runtime.NumCPU() }

func goVersion() string { return runtime.Version() }

// loadAvg is the 1, 5 and 15 minute load average.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}
