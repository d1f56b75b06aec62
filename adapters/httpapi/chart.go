package httpapi

import (
	"fmt"
	"html"
	"strings"

	"github.com/bookworm-ledger/ledger/domain"
	"github.com/bookworm-ledger/ledger/projections"
)

// Chart geometry, in SVG user units.
const (
	chartW     = 880
	chartH     = 390 // with rotated fact labels; flat ones need less
	plotLeft   = 92
	plotRight  = chartW - 20
	plotTop    = 56
	plotBottom = 250
	bandTop    = 262
	bandH      = 24
	labelTop   = bandTop + bandH + 16
	charPixels = 7 // rough width of one 11px character, to decide what fits
	// Below this slot width the fact labels are rotated.
	flatLabelSlot = 72
	maxXLabels    = 40
	targetTicks   = 5
)

type series struct {
	name  string
	class string
	color string
	width string
	dash  string
	value func(domain.Totals) int64
}

// dispApplied is the disposition of a fact that took effect.
const dispApplied = domain.DispApplied

// moneySeries in drawing order: net first and widest, so the lines that
// often run on top of it (captured) stay visible.
var moneySeries = []series{
	{"net", "series-net", "#1e7b4a", "5", "", func(t domain.Totals) int64 { return t.Net }},
	{"captured", "series-captured", "#1f6fb2", "2", "7 4", func(t domain.Totals) int64 { return t.Captured }},
	{"refunded", "series-refunded", "#c77700", "2", "", func(t domain.Totals) int64 { return t.Refunded }},
	{"charged back", "series-chargedback", "#b3261e", "2", "", func(t domain.Totals) int64 { return t.ChargedBack }},
}

var statusColors = map[domain.Status]string{
	domain.StatusInit:               "#5f6b7a",
	domain.StatusCharged:            "#1f6fb2",
	domain.StatusFulfilled:          "#1e7b4a",
	domain.StatusFulfillFailed:      "#b3261e",
	domain.StatusRefunding:          "#a66300",
	domain.StatusRefunded:           "#c77700",
	domain.StatusRefundFailed:       "#8c1d18",
	domain.StatusChargeback:         "#7b3f9e",
	domain.StatusChargebackReversed: "#4a5a8a",
	domain.StatusClosed:             "#3d4651",
}

// RenderTimeline draws an order's money over its facts as SVG: captured,
// refunded, charged back and net after each fact as step lines, and the
// status after each fact as a band underneath. Every text from the report
// is escaped; the picture carries no script and no external reference.
func RenderTimeline(rep projections.AuditReport, cur domain.Currency) []byte {
	c := &chart{rep: rep, cur: cur, n: len(rep.Entries), slot: float64(plotRight - plotLeft)}
	if c.n > 0 {
		c.slot /= float64(c.n)
	}
	c.header()
	if c.n == 0 {
		fmt.Fprintf(&c.b, `<text class="empty" x="%d" y="%d" text-anchor="middle" fill="#5f6b7a">no facts</text></svg>`,
			(plotLeft+plotRight)/2, (plotTop+plotBottom)/2)
		return []byte(c.b.String())
	}
	c.yAxis()
	c.statusBand()
	c.moneyLines()
	c.facts()
	c.b.WriteString(`</svg>`)
	return []byte(c.b.String())
}

// chart is one timeline being drawn.
type chart struct {
	b      strings.Builder
	rep    projections.AuditReport
	cur    domain.Currency
	n      int
	slot   float64 // width of one fact
	lo, hi int64   // value range of the y axis
}

func (c *chart) xAt(i int) float64 { return plotLeft + float64(i)*c.slot }

func (c *chart) y(v int64) float64 {
	return plotBottom - float64(v-c.lo)*float64(plotBottom-plotTop)/float64(c.hi-c.lo)
}

// header writes the frame, the title and the legend.
func (c *chart) header() {
	height := chartH
	if c.slot >= flatLabelSlot {
		height = labelTop + 28
	}
	title := "Money over the facts of order " + c.rep.OrderID
	fmt.Fprintf(&c.b, `<svg xmlns="http://www.w3.org/2000/svg" class="money-chart-svg" viewBox="0 0 %d %d" width="%d" height="%d" role="img" aria-label="%s" font-family="system-ui, sans-serif" font-size="11">`,
		chartW, height, chartW, height, esc(title))
	fmt.Fprintf(&c.b, `<title>%s</title>`, esc(title))
	fmt.Fprintf(&c.b, `<rect x="0" y="0" width="%d" height="%d" fill="#ffffff"/>`, chartW, height)
	fmt.Fprintf(&c.b, `<text x="%d" y="20" font-size="14" font-weight="600" fill="#1b1f24">%s</text>`, plotLeft, esc(title))
	x := plotLeft
	for _, s := range moneySeries {
		fmt.Fprintf(&c.b, `<g class="legend-item"><line x1="%d" y1="38" x2="%d" y2="38" stroke="%s" stroke-width="%s"%s/><text x="%d" y="42" fill="#1b1f24">%s</text></g>`,
			x, x+22, s.color, s.width, dashAttr(s.dash), x+28, esc(s.name))
		x += 28 + len(s.name)*charPixels + 22
	}
	fmt.Fprintf(&c.b, `<text x="%d" y="42" fill="#5f6b7a" text-anchor="end">%s</text>`, plotRight, esc(c.cur.Code))
}

// yAxis sets the value range (zero is always shown; net may go below it)
// and draws the grid and its labels.
func (c *chart) yAxis() {
	for _, e := range c.rep.Entries {
		for _, s := range moneySeries {
			v := s.value(e.Totals)
			c.lo, c.hi = min(c.lo, v), max(c.hi, v)
		}
	}
	step := niceStep(c.hi-c.lo, targetTicks)
	c.lo = floorTo(c.lo, step)
	c.hi = ceilTo(c.hi, step)
	if c.hi == c.lo {
		c.hi = c.lo + step
	}
	c.b.WriteString(`<g class="y-axis">`)
	for v := c.lo; v <= c.hi; v += step {
		yy := c.y(v)
		stroke := "#e3e7ec"
		if v == 0 {
			stroke = "#9aa5b1"
		}
		fmt.Fprintf(&c.b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="%s"/>`, plotLeft, yy, plotRight, yy, stroke)
		fmt.Fprintf(&c.b, `<text x="%d" y="%.1f" text-anchor="end" fill="#5f6b7a">%s</text>`, plotLeft-8, yy+4, esc(formatMoney(v, c.cur.Decimals)))
	}
	c.b.WriteString(`</g>`)
}

// statusBand draws runs of equal status, labelled where the name fits.
func (c *chart) statusBand() {
	c.b.WriteString(`<g class="status-steps">`)
	for i := 0; i < c.n; {
		j := i
		st := c.rep.Entries[i].StatusAfter
		for j < c.n && c.rep.Entries[j].StatusAfter == st {
			j++
		}
		color, ok := statusColors[st]
		if !ok {
			color = "#c9d1d9"
		}
		name := string(st)
		if name == "" {
			name = "none"
		}
		w := c.xAt(j) - c.xAt(i)
		fmt.Fprintf(&c.b, `<g class="status-step" data-status="%s"><rect x="%.1f" y="%d" width="%.1f" height="%d" fill="%s" stroke="#ffffff"/>`,
			esc(name), c.xAt(i), bandTop, w, bandH, color)
		if float64(len(name)*charPixels+8) <= w {
			fmt.Fprintf(&c.b, `<text x="%.1f" y="%d" text-anchor="middle" fill="#ffffff" font-weight="600">%s</text>`,
				c.xAt(i)+w/2, bandTop+16, esc(name))
		}
		fmt.Fprintf(&c.b, `<title>%s</title></g>`, esc(name))
		i = j
	}
	c.b.WriteString(`</g>`)
}

// moneyLines draws the step lines: the value after fact i holds across
// slot i.
func (c *chart) moneyLines() {
	for _, s := range moneySeries {
		var d strings.Builder
		for i, e := range c.rep.Entries {
			yy := c.y(s.value(e.Totals))
			if i == 0 {
				fmt.Fprintf(&d, "M%.1f %.1f", c.xAt(0), yy)
			} else {
				fmt.Fprintf(&d, " V%.1f", yy)
			}
			fmt.Fprintf(&d, " H%.1f", c.xAt(i+1))
		}
		fmt.Fprintf(&c.b, `<path class="series %s" d="%s" fill="none" stroke="%s" stroke-width="%s"%s stroke-linejoin="round"/>`,
			s.class, d.String(), s.color, s.width, dashAttr(s.dash))
	}
}

// facts draws markers for what did not apply, the x labels and the hover
// details.
func (c *chart) facts() {
	every := max(1, (c.n+maxXLabels-1)/maxXLabels)
	c.b.WriteString(`<g class="facts">`)
	for i, e := range c.rep.Entries {
		cx := c.xAt(i) + c.slot/2
		fmt.Fprintf(&c.b, `<g class="fact" data-revision="%d" data-disposition="%s">`, e.Revision, esc(string(e.Disposition)))
		fmt.Fprintf(&c.b, `<rect x="%.1f" y="%d" width="%.1f" height="%d" fill="#000000" fill-opacity="0"/>`, c.xAt(i), plotTop, c.slot, bandTop+bandH-plotTop)
		if (e.Disposition != "" && e.Disposition != dispApplied) || e.Error != "" {
			fmt.Fprintf(&c.b, `<circle cx="%.1f" cy="%d" r="4" fill="#ffffff" stroke="#b3261e" stroke-width="2"/>`, cx, bandTop-6)
		}
		switch {
		case c.slot >= flatLabelSlot:
			// Wide slots: revision and type on two lines, cut to fit.
			fit := max(4, int(c.slot-8)/charPixels)
			fmt.Fprintf(&c.b, `<text x="%.1f" y="%d" text-anchor="middle" fill="#1b1f24"><tspan x="%.1f" font-weight="600">#%d</tspan><tspan x="%.1f" dy="14">%s</tspan></text>`,
				cx, labelTop, cx, e.Revision, cx, esc(clipText(shortType(e.Type), fit)))
		case i%every == 0:
			fmt.Fprintf(&c.b, `<text x="%.1f" y="%d" text-anchor="end" fill="#1b1f24" transform="rotate(-40 %.1f %d)">#%d %s</text>`,
				cx, labelTop-4, cx, labelTop-4, e.Revision, esc(clipText(shortType(e.Type), 16)))
		}
		fmt.Fprintf(&c.b, `<title>%s</title></g>`, esc(factTip(e, c.cur.Decimals)))
	}
	c.b.WriteString(`</g>`)
}

func factTip(e projections.AuditEntry, decimals int) string {
	var t strings.Builder
	fmt.Fprintf(&t, "#%d %s", e.Revision, e.Type)
	if !e.At.IsZero() {
		t.WriteString(" at " + e.At.UTC().Format("2006-01-02 15:04:05Z"))
	}
	fmt.Fprintf(&t, "\n%s → %s (%s)", orNone(e.StatusBefore), orNone(e.StatusAfter), orDash(string(e.Disposition)))
	if e.Reason != "" {
		t.WriteString(": " + e.Reason)
	}
	fmt.Fprintf(&t, "\ncaptured %s, refunded %s, charged back %s, net %s",
		formatMoney(e.Totals.Captured, decimals), formatMoney(e.Totals.Refunded, decimals),
		formatMoney(e.Totals.ChargedBack, decimals), formatMoney(e.Totals.Net, decimals))
	if e.Error != "" {
		t.WriteString("\nerror: " + e.Error)
	}
	return t.String()
}

func orNone(s domain.Status) string {
	if s == "" {
		return "none"
	}
	return string(s)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// shortType drops the contract suffix, which every BookWorm type shares.
func shortType(t string) string { return strings.TrimSuffix(t, "IntegrationEvent") }

// clipText cuts s to at most n characters, marking the cut.
func clipText(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

func dashAttr(dash string) string {
	if dash == "" {
		return ""
	}
	return ` stroke-dasharray="` + dash + `"`
}

func formatMoney(v int64, decimals int) string { return domain.FormatMinor(v, decimals) }

// niceStep is the smallest of 1, 2, 5 × 10^k minor units that splits span
// into at most ticks steps.
func niceStep(span int64, ticks int64) int64 {
	if span <= 0 {
		return 100
	}
	for base := int64(1); base <= span; base *= 10 {
		for _, m := range []int64{1, 2, 5} {
			if s := base * m; s*ticks >= span {
				return s
			}
		}
	}
	return span
}

func floorTo(v, step int64) int64 {
	r := v % step
	if r < 0 {
		r += step
	}
	return v - r
}

func ceilTo(v, step int64) int64 {
	f := floorTo(v, step)
	if f == v {
		return v
	}
	return f + step
}

// esc makes s safe as XML text or attribute value: markup characters are
// escaped, and characters XML 1.0 forbids are replaced.
func esc(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 && r != '\t' && r != '\n' && r != '\r' || r == 0xFFFE || r == 0xFFFF {
			return '\uFFFD'
		}
		return r
	}, strings.ToValidUTF8(s, "\uFFFD"))
	return html.EscapeString(s)
}
