package httpapi

import (
	"fmt"
	"html"
	"math"
	"strings"
	"unicode"

	"github.com/bookworm-ledger/ledger/domain"
	"github.com/bookworm-ledger/ledger/projections"
)

// Chart geometry, in SVG user units. The plot's top depends on how many
// rows the legend takes, its bottom on how tall the fact labels are.
const (
	chartW     = 880
	plotLeft   = 92
	plotRight  = chartW - 20
	plotH      = 194
	legendTop  = 38
	legendRow  = 20
	bandGap    = 12
	bandH      = 24
	charPixels = 7 // rough width of one 11px character, to decide what fits
	// boldCapPixels is the same for the band's bold capitals, at 11px and
	// at 9.5px.
	boldCapPixels  = 8
	smallCapPixels = 6.8
	lineH          = 14
	// Below this slot width the fact labels are rotated.
	flatLabelSlot = 72
	maxXLabels    = 40
	targetTicks   = 5
	// labelAngle tilts narrow labels; steep enough that the first one
	// stays inside the left margin.
	labelAngle = 55
	maxLabel   = 22 // characters of a tilted label
	maxLines   = 3  // lines of a flat label
	// spread separates lines that coincide in a slot, so each stays in
	// sight; the legend and the hover text give the exact figures.
	spread = 3.0
)

type series struct {
	name  string
	class string
	color string
	width string
	dash  string // a dash pattern of its own, so colour is not the only cue
	value func(domain.Totals) int64
}

// dispApplied is the disposition of a fact that took effect.
const dispApplied = domain.DispApplied

// moneySeries in drawing order and in their side-by-side order where
// they coincide.
var moneySeries = []series{
	{"net", "series-net", "#1e6b43", "3.5", "", func(t domain.Totals) int64 { return t.Net }},
	{"captured", "series-captured", "#1f5f9e", "2", "9 4", func(t domain.Totals) int64 { return t.Captured }},
	{"refunded", "series-refunded", "#a35a00", "2", "2 3", func(t domain.Totals) int64 { return t.Refunded }},
	{"charged back", "series-chargedback", "#b3261e", "2", "9 3 2 3", func(t domain.Totals) int64 { return t.ChargedBack }},
	{"reversed", "series-reversed", "#6a3d9a", "2", "5 2", func(t domain.Totals) int64 { return t.Reversed }},
}

var statusColors = map[domain.Status]string{
	domain.StatusInit:               "#5f6b7a",
	domain.StatusCharged:            "#1f5f9e",
	domain.StatusFulfilled:          "#1e6b43",
	domain.StatusFulfillFailed:      "#b3261e",
	domain.StatusRefunding:          "#8a5200",
	domain.StatusRefunded:           "#a35a00",
	domain.StatusRefundFailed:       "#8c1d18",
	domain.StatusChargeback:         "#7b3f9e",
	domain.StatusChargebackReversed: "#4a5a8a",
	domain.StatusClosed:             "#3d4651",
}

// RenderTimeline draws an order's money over its facts as SVG: net,
// captured, refunded, charged back and reversed after each fact as step
// lines, each with its own dash pattern and its final value in the
// legend, and the status after each fact as a band underneath. Every text
// from the report is escaped; the picture carries no script and no
// external reference.
func RenderTimeline(rep projections.AuditReport, cur domain.Currency) []byte {
	c := &chart{rep: rep, cur: cur, n: len(rep.Entries), slot: float64(plotRight - plotLeft)}
	if c.n > 0 {
		c.slot /= float64(c.n)
	}
	c.layout()
	c.header()
	if c.n == 0 {
		fmt.Fprintf(&c.b, `<text class="empty" x="%d" y="%d" text-anchor="middle" fill="#5f6b7a">no facts</text></svg>`,
			(plotLeft+plotRight)/2, c.top+plotH/2)
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

	legend []legendItem
	top    int        // plot top
	labels [][]string // each fact's label lines
	height int
}

type legendItem struct {
	s    series
	text string
	x, y int
}

func (c *chart) bottom() int   { return c.top + plotH }
func (c *chart) bandTop() int  { return c.bottom() + bandGap }
func (c *chart) labelTop() int { return c.bandTop() + bandH + 16 }
func (c *chart) flat() bool    { return c.slot >= flatLabelSlot }

func (c *chart) xAt(i int) float64 { return plotLeft + float64(i)*c.slot }

func (c *chart) y(v int64) float64 {
	return float64(c.bottom()) - float64(v-c.lo)*float64(plotH)/float64(c.hi-c.lo)
}

// layout places the legend (wrapping to more rows when the values are
// long) and sizes the labels, so nothing is cut at an edge.
func (c *chart) layout() {
	var last domain.Totals
	if c.n > 0 {
		last = c.rep.Entries[c.n-1].Totals
	}
	x, y := plotLeft, legendTop
	for _, s := range moneySeries {
		text := s.name
		if c.n > 0 {
			text += " " + formatMoney(s.value(last), c.cur.Decimals)
		}
		w := 30 + len(text)*charPixels + 18
		if x+w > plotRight-40 && x > plotLeft {
			x, y = plotLeft, y+legendRow
		}
		c.legend = append(c.legend, legendItem{s: s, text: text, x: x, y: y})
		x += w
	}
	c.top = y + 18
	c.labels = make([][]string, c.n)
	tallest := 0
	every := max(1, (c.n+maxXLabels-1)/maxXLabels)
	for i, e := range c.rep.Entries {
		rev := fmt.Sprintf("#%d", e.Revision)
		if c.flat() {
			c.labels[i] = append([]string{rev}, wrapWords(shortType(e.Type), max(4, int(c.slot-8)/charPixels), maxLines)...)
			tallest = max(tallest, len(c.labels[i])*lineH)
			continue
		}
		if i%every != 0 {
			continue
		}
		label := clipText(rev+" "+shortType(e.Type), maxLabel)
		c.labels[i] = []string{label}
		tallest = max(tallest, int(float64(len([]rune(label))*charPixels)*sinDeg(labelAngle))+lineH)
	}
	c.height = c.labelTop() + tallest + 8
	if c.n == 0 {
		c.height = c.bottom() + 20
	}
}

// header writes the frame, the title and the legend.
func (c *chart) header() {
	title := "Money over the facts of order " + c.rep.OrderID
	fmt.Fprintf(&c.b, `<svg xmlns="http://www.w3.org/2000/svg" class="money-chart-svg" viewBox="0 0 %d %d" width="%d" height="%d" role="img" aria-label="%s" font-family="system-ui, sans-serif" font-size="11">`,
		chartW, c.height, chartW, c.height, esc(title))
	fmt.Fprintf(&c.b, `<title>%s</title>`, esc(title))
	fmt.Fprintf(&c.b, `<rect x="0" y="0" width="%d" height="%d" fill="#ffffff"/>`, chartW, c.height)
	fmt.Fprintf(&c.b, `<text x="%d" y="20" font-size="14" font-weight="600" fill="#1b1f24">%s</text>`, plotLeft, esc(title))
	c.b.WriteString(`<g class="legend">`)
	for _, it := range c.legend {
		fmt.Fprintf(&c.b, `<g class="legend-item" data-series="%s"><line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="%s"%s/><text x="%d" y="%d" fill="#1b1f24">%s</text></g>`,
			esc(it.s.name), it.x, it.y, it.x+24, it.y, it.s.color, it.s.width, dashAttr(it.s.dash), it.x+30, it.y+4, esc(it.text))
	}
	c.b.WriteString(`</g>`)
	fmt.Fprintf(&c.b, `<text x="%d" y="%d" fill="#5f6b7a" text-anchor="end">%s</text>`, plotRight, legendTop+4, esc(c.cur.Code))
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
	yGrid(&c.b, c.lo, c.hi, step, c.y, c.cur.Decimals)
}

// yGrid draws the y axis's lines and money labels from lo to hi, every
// step; the zero line darker. Both charts share it.
func yGrid(b *strings.Builder, lo, hi, step int64, y func(int64) float64, decimals int) {
	b.WriteString(`<g class="y-axis">`)
	for v := lo; v <= hi; v += step {
		yy := y(v)
		stroke := "#e3e7ec"
		if v == 0 {
			stroke = "#9aa5b1"
		}
		fmt.Fprintf(b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="%s"/>`, plotLeft, yy, plotRight, yy, stroke)
		fmt.Fprintf(b, `<text x="%d" y="%.1f" text-anchor="end" fill="#5f6b7a">%s</text>`, plotLeft-8, yy+4, esc(formatMoney(v, decimals)))
	}
	b.WriteString(`</g>`)
}

// statusBand draws runs of equal status, labelled where the name fits.
func (c *chart) statusBand() {
	c.b.WriteString(`<g class="status-steps">`)
	top := c.bandTop()
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
			esc(name), c.xAt(i), top, w, bandH, color)
		// The name in full where it fits, a size smaller where that fits
		// (CHARGEBACK_REVERSED in one slot of five), else only on hover.
		size := ""
		fits := float64(len(name)*boldCapPixels+8) <= w
		if !fits && float64(len(name))*smallCapPixels+6 <= w {
			fits, size = true, ` font-size="9.5"`
		}
		if fits {
			fmt.Fprintf(&c.b, `<text x="%.1f" y="%d" text-anchor="middle" fill="#ffffff" font-weight="600"%s>%s</text>`,
				c.xAt(i)+w/2, top+16, size, esc(name))
		}
		fmt.Fprintf(&c.b, `<title>%s</title></g>`, esc(name))
		i = j
	}
	c.b.WriteString(`</g>`)
}

// offsets tells, for each series in slot i, how far to move its line so
// that series with the same value lie side by side instead of on top of
// each other.
func offsets(t domain.Totals) []float64 {
	out := make([]float64, len(moneySeries))
	for k, s := range moneySeries {
		v := s.value(t)
		var before, same int
		for j, o := range moneySeries {
			if o.value(t) == v {
				same++
				if j < k {
					before++
				}
			}
		}
		out[k] = (float64(before) - float64(same-1)/2) * spread
	}
	return out
}

// moneyLines draws the step lines: the value after fact i holds across
// slot i.
func (c *chart) moneyLines() {
	offs := make([][]float64, c.n)
	for i, e := range c.rep.Entries {
		offs[i] = offsets(e.Totals)
	}
	c.b.WriteString(`<g class="lines">`)
	for k, s := range moneySeries {
		var d strings.Builder
		for i, e := range c.rep.Entries {
			yy := c.y(s.value(e.Totals)) + offs[i][k]
			if i == 0 {
				fmt.Fprintf(&d, "M%.1f %.1f", c.xAt(0), yy)
			} else {
				fmt.Fprintf(&d, " V%.1f", yy)
			}
			fmt.Fprintf(&d, " H%.1f", c.xAt(i+1))
		}
		fmt.Fprintf(&c.b, `<path class="series %s" data-series="%s" d="%s" fill="none" stroke="%s" stroke-width="%s"%s/>`,
			s.class, esc(s.name), d.String(), s.color, s.width, dashAttr(s.dash))
	}
	c.b.WriteString(`</g>`)
}

// facts draws markers for what did not apply, the x labels and the hover
// details.
func (c *chart) facts() {
	c.b.WriteString(`<g class="facts">`)
	top, band, labelTop := c.top, c.bandTop(), c.labelTop()
	for i, e := range c.rep.Entries {
		cx := c.xAt(i) + c.slot/2
		fmt.Fprintf(&c.b, `<g class="fact" data-revision="%d" data-disposition="%s">`, e.Revision, esc(string(e.Disposition)))
		fmt.Fprintf(&c.b, `<rect x="%.1f" y="%d" width="%.1f" height="%d" fill="#000000" fill-opacity="0"/>`, c.xAt(i), top, c.slot, band+bandH-top)
		if (e.Disposition != "" && e.Disposition != dispApplied) || e.Error != "" {
			fmt.Fprintf(&c.b, `<circle cx="%.1f" cy="%d" r="4" fill="#ffffff" stroke="#b3261e" stroke-width="2"/>`, cx, band-6)
		}
		switch lines := c.labels[i]; {
		case len(lines) == 0:
		case c.flat():
			fmt.Fprintf(&c.b, `<text class="x-label" x="%.1f" y="%d" text-anchor="middle" fill="#1b1f24">`, cx, labelTop)
			for j, l := range lines {
				weight, dy := "", lineH
				if j == 0 {
					weight, dy = ` font-weight="600"`, 0
				}
				fmt.Fprintf(&c.b, `<tspan x="%.1f" dy="%d"%s>%s</tspan>`, cx, dy, weight, esc(l))
			}
			c.b.WriteString(`</text>`)
		default:
			fmt.Fprintf(&c.b, `<text class="x-label" x="%.1f" y="%d" text-anchor="end" fill="#1b1f24" transform="rotate(-%d %.1f %d)">%s</text>`,
				cx, labelTop-4, labelAngle, cx, labelTop-4, esc(lines[0]))
		}
		fmt.Fprintf(&c.b, `<title>%s</title></g>`, esc(factTip(e, c.cur.Decimals)))
	}
	c.b.WriteString(`</g>`)
}

// wrapWords splits a CamelCase name into lines of at most width
// characters, at most lines of them; only a word longer than a line, or
// what is left past the last line, is cut.
func wrapWords(s string, width, lines int) []string {
	var words []string
	start := 0
	r := []rune(s)
	for i := 1; i < len(r); i++ {
		if unicode.IsUpper(r[i]) && !unicode.IsUpper(r[i-1]) {
			words = append(words, string(r[start:i]))
			start = i
		}
	}
	if len(r) > 0 {
		words = append(words, string(r[start:]))
	}
	var out []string
	cur := ""
	for _, w := range words {
		if cur != "" && len([]rune(cur+w)) > width {
			out = append(out, cur)
			cur = ""
		}
		cur += w
	}
	if cur != "" {
		out = append(out, cur)
	}
	if len(out) > lines {
		out[lines-1] = strings.Join(out[lines-1:], "")
		out = out[:lines]
	}
	for i := range out {
		out[i] = clipText(out[i], width)
	}
	return out
}

func sinDeg(d float64) float64 { return math.Sin(d * math.Pi / 180) }

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
	fmt.Fprintf(&t, "\ncaptured %s, refunded %s, charged back %s, reversed %s, net %s",
		formatMoney(e.Totals.Captured, decimals), formatMoney(e.Totals.Refunded, decimals),
		formatMoney(e.Totals.ChargedBack, decimals), formatMoney(e.Totals.Reversed, decimals),
		formatMoney(e.Totals.Net, decimals))
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
