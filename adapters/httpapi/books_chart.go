package httpapi

import (
	"fmt"
	"strings"

	"github.com/bookworm-ledger/ledger/domain"
	"github.com/bookworm-ledger/ledger/projections"
)

// The books' period chart: per period, the money captured, refunded,
// charged back and reversed as bars side by side, each with a fill
// pattern of its own (colour is not the only cue), and the period's net
// as a line over them. Same frame, axis and escaping as the timeline.

const (
	// maxChartPeriods is how many periods one chart draws: the latest
	// ones; the picture says so when there are more (by month has fewer).
	maxChartPeriods = 93
	periodPlotH     = 240
	barFill         = 0.78 // share of a period's slot the bars take
	maxBarW         = 44   // so a few periods do not make slabs
)

// barSeries are the flows drawn as bars, in their order within a period;
// netSeries is the line.
var (
	barSeries = moneySeries[1:]
	netSeries = moneySeries[0]
	// barPatterns tell the bars apart without colour: solid, hatched
	// one way, the other way, and crossed.
	barPatterns = []string{"", `<path d="M0 6 L6 0" stroke-width="2"/>`, `<path d="M0 0 L6 6" stroke-width="2"/>`,
		`<path d="M3 0 V6 M0 3 H6" stroke-width="1.5"/>`}
)

// RenderPeriodChart draws a books report's periods as SVG. Every text is
// escaped; the picture carries no script and no external reference.
func RenderPeriodChart(rep projections.BooksReport, cur domain.Currency) []byte {
	c := &periodChart{rep: rep, cur: cur, periods: rep.Periods}
	if n := len(c.periods); n > maxChartPeriods {
		c.cut = n - maxChartPeriods
		c.periods = c.periods[c.cut:]
	}
	c.slot = float64(plotRight - plotLeft)
	if len(c.periods) > 0 {
		c.slot /= float64(len(c.periods))
	}
	c.layout()
	c.header()
	if len(c.periods) == 0 {
		fmt.Fprintf(&c.b, `<text class="empty" x="%d" y="%d" text-anchor="middle" fill="#5f6b7a">no money moved in these periods</text></svg>`,
			(plotLeft+plotRight)/2, c.top+periodPlotH/2)
		return []byte(c.b.String())
	}
	c.yAxis()
	c.bars()
	c.netLine()
	c.b.WriteString(`</svg>`)
	return []byte(c.b.String())
}

type periodChart struct {
	b       strings.Builder
	rep     projections.BooksReport
	cur     domain.Currency
	periods []projections.BooksRow
	cut     int // earlier periods not drawn
	slot    float64
	lo, hi  int64
	top     int
	every   int // label every n-th period
	labelH  int
	height  int
}

func (c *periodChart) bottom() int { return c.top + periodPlotH }

func (c *periodChart) flat() bool { return c.slot >= flatLabelSlot }

func (c *periodChart) xAt(i int) float64 { return plotLeft + float64(i)*c.slot }

func (c *periodChart) y(v int64) float64 {
	return float64(c.bottom()) - float64(v-c.lo)*float64(periodPlotH)/float64(c.hi-c.lo)
}

func (c *periodChart) layout() {
	c.top = legendTop + 18
	if c.cut > 0 {
		c.top += lineH
	}
	c.every = max(1, (len(c.periods)+maxXLabels-1)/maxXLabels)
	c.labelH = lineH + 4
	if !c.flat() {
		longest := 0
		for _, p := range c.periods {
			longest = max(longest, len(p.Period))
		}
		c.labelH = int(float64(longest*charPixels)*sinDeg(labelAngle)) + lineH
	}
	c.height = c.bottom() + 16 + c.labelH + 8
	if len(c.periods) == 0 {
		c.height = c.bottom() + 20
	}
}

func (c *periodChart) title() string {
	by := "day"
	if c.rep.By == projections.PeriodMonth {
		by = "month"
	}
	span := ""
	switch {
	case c.rep.From != "" && c.rep.To != "":
		span = ", " + c.rep.From + " to " + c.rep.To
	case c.rep.From != "":
		span = ", from " + c.rep.From
	case c.rep.To != "":
		span = ", up to " + c.rep.To
	}
	return "Money by " + by + span + booksAsOfLabel(c.rep.AsOf)
}

// header writes the frame, the patterns, the title and the legend.
func (c *periodChart) header() {
	title := c.title()
	fmt.Fprintf(&c.b, `<svg xmlns="http://www.w3.org/2000/svg" class="books-chart-svg" viewBox="0 0 %d %d" width="%d" height="%d" role="img" aria-label="%s" font-family="system-ui, sans-serif" font-size="11">`,
		chartW, c.height, chartW, c.height, esc(title))
	fmt.Fprintf(&c.b, `<title>%s</title><defs>`, esc(title))
	for i, s := range barSeries {
		if barPatterns[i] == "" {
			continue
		}
		fmt.Fprintf(&c.b, `<pattern id="books-fill-%d" width="6" height="6" patternUnits="userSpaceOnUse"><rect width="6" height="6" fill="%s" fill-opacity="0.35"/><g stroke="%s">%s</g></pattern>`,
			i, s.color, s.color, barPatterns[i])
	}
	c.b.WriteString(`</defs>`)
	fmt.Fprintf(&c.b, `<rect x="0" y="0" width="%d" height="%d" fill="#ffffff"/>`, chartW, c.height)
	fmt.Fprintf(&c.b, `<text x="%d" y="20" font-size="14" font-weight="600" fill="#1b1f24">%s</text>`, plotLeft, esc(title))
	c.b.WriteString(`<g class="legend">`)
	x := plotLeft
	for i, s := range barSeries {
		fmt.Fprintf(&c.b, `<g class="legend-item" data-series="%s"><rect x="%d" y="%d" width="14" height="10" fill="%s" stroke="%s"/><text x="%d" y="%d" fill="#1b1f24">%s</text></g>`,
			esc(s.name), x, legendTop-5, c.fill(i), s.color, x+20, legendTop+4, esc(s.name))
		x += 20 + len(s.name)*charPixels + 18
	}
	fmt.Fprintf(&c.b, `<g class="legend-item" data-series="%s"><line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="%s"/><circle cx="%d" cy="%d" r="3.5" fill="%s"/><text x="%d" y="%d" fill="#1b1f24">%s</text></g>`,
		esc(netSeries.name), x, legendTop, x+24, legendTop, netSeries.color, netSeries.width, x+12, legendTop, netSeries.color, x+30, legendTop+4, esc(netSeries.name))
	c.b.WriteString(`</g>`)
	fmt.Fprintf(&c.b, `<text x="%d" y="%d" fill="#5f6b7a" text-anchor="end">%s</text>`, plotRight, legendTop+4, esc(c.cur.Code))
	if c.cut > 0 {
		fmt.Fprintf(&c.b, `<text class="cut-note" x="%d" y="%d" fill="#5f6b7a">the last %d of %d periods; by month shows more at once</text>`,
			plotLeft, legendTop+4+lineH, len(c.periods), len(c.periods)+c.cut)
	}
}

func (c *periodChart) fill(i int) string {
	if barPatterns[i] == "" {
		return barSeries[i].color
	}
	return fmt.Sprintf("url(#books-fill-%d)", i)
}

// yAxis sets the range (zero always shown; a period's net may be below
// it) and draws the grid.
func (c *periodChart) yAxis() {
	for _, p := range c.periods {
		for _, s := range moneySeries {
			v := s.value(p.Money)
			c.lo, c.hi = min(c.lo, v), max(c.hi, v)
		}
	}
	step := niceStep(c.hi-c.lo, targetTicks)
	top := c.hi
	c.lo, c.hi = floorTo(c.lo, step), ceilTo(c.hi, step)
	if c.hi == c.lo || (top > 0 && c.hi-top < step/4) {
		c.hi += step // room above the tallest bar, clear of the legend
	}
	yGrid(&c.b, c.lo, c.hi, step, c.y, c.cur.Decimals)
}

// bars draws each period's group of bars, its label and its figures on
// hover.
func (c *periodChart) bars() {
	c.b.WriteString(`<g class="periods">`)
	zero := c.y(0)
	barW := min(c.slot*barFill/float64(len(barSeries)), maxBarW)
	groupW := barW * float64(len(barSeries))
	labelTop := c.bottom() + 16
	for i, p := range c.periods {
		fmt.Fprintf(&c.b, `<g class="period" data-period="%s" data-orders="%d" data-net="%d">`, esc(p.Period), p.Orders, p.Money.Net)
		fmt.Fprintf(&c.b, `<rect x="%.1f" y="%d" width="%.1f" height="%d" fill="#000000" fill-opacity="0"/>`, c.xAt(i), c.top, c.slot, periodPlotH)
		x0 := c.xAt(i) + (c.slot-groupW)/2
		for k, s := range barSeries {
			v := s.value(p.Money)
			top, h := c.y(v), zero-c.y(v)
			if h < 0 { // a restatement can take money back: a bar below zero
				top, h = zero, -h
			}
			fmt.Fprintf(&c.b, `<rect class="bar %s" data-series="%s" data-value="%d" x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s" stroke="%s" stroke-width="0.8"/>`,
				s.class, esc(s.name), v, x0+float64(k)*barW, top, max(barW-1, 0.5), h, c.fill(k), s.color)
		}
		if i%c.every == 0 {
			cx := c.xAt(i) + c.slot/2
			if c.flat() {
				fmt.Fprintf(&c.b, `<text class="x-label" x="%.1f" y="%d" text-anchor="middle" fill="#1b1f24">%s</text>`, cx, labelTop, esc(p.Period))
			} else {
				fmt.Fprintf(&c.b, `<text class="x-label" x="%.1f" y="%d" text-anchor="end" fill="#1b1f24" transform="rotate(-%d %.1f %d)">%s</text>`,
					cx, labelTop-4, labelAngle, cx, labelTop-4, esc(p.Period))
			}
		}
		fmt.Fprintf(&c.b, `<title>%s</title></g>`, esc(c.tip(p)))
	}
	c.b.WriteString(`</g>`)
}

// netLine joins the periods' net, a dot on each.
func (c *periodChart) netLine() {
	var d strings.Builder
	var dots strings.Builder
	for i, p := range c.periods {
		cx, cy := c.xAt(i)+c.slot/2, c.y(p.Money.Net)
		if i == 0 {
			fmt.Fprintf(&d, "M%.1f %.1f", cx, cy)
		} else {
			fmt.Fprintf(&d, " L%.1f %.1f", cx, cy)
		}
		fmt.Fprintf(&dots, `<circle cx="%.1f" cy="%.1f" r="3.5" fill="%s" stroke="#ffffff"/>`, cx, cy, netSeries.color)
	}
	fmt.Fprintf(&c.b, `<g class="net"><path class="series %s" data-series="%s" d="%s" fill="none" stroke="%s" stroke-width="%s"/>%s</g>`,
		netSeries.class, esc(netSeries.name), d.String(), netSeries.color, netSeries.width, dots.String())
}

func (c *periodChart) tip(p projections.BooksRow) string {
	m := func(v int64) string { return formatMoney(v, c.cur.Decimals) }
	t := p.Money
	return fmt.Sprintf("%s: %d orders checked out\ncaptured %s, refunded %s, charged back %s, reversed %s, net %s %s",
		p.Period, p.Orders, m(t.Captured), m(t.Refunded), m(t.ChargedBack), m(t.Reversed), m(t.Net), c.cur.Code)
}
