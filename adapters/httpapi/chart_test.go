package httpapi

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"math"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bookworm-ledger/ledger/domain"
	"github.com/bookworm-ledger/ledger/projections"
)

// sampleReport is a checkout, charge, fulfilment and full refund of 49.99,
// with one ignored fact whose type carries markup.
func sampleReport() projections.AuditReport {
	at := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	charged := domain.Totals{Captured: 4999, Net: 4999}
	refunded := domain.Totals{Captured: 4999, Refunded: 4999}
	entry := func(rev uint64, typ domain.FactType, before, after domain.Status, totals domain.Totals) projections.AuditEntry {
		return projections.AuditEntry{Revision: rev, EventID: "e" + strconv.FormatUint(rev, 10), Type: string(typ),
			At: at.Add(time.Duration(rev) * time.Minute), Disposition: domain.DispApplied,
			StatusBefore: before, StatusAfter: after, Totals: totals}
	}
	es := []projections.AuditEntry{
		entry(0, domain.FactUserCheckedOut, "", domain.StatusInit, domain.Totals{}),
		entry(1, domain.FactBasketDeletedComplete, domain.StatusInit, domain.StatusCharged, charged),
		entry(2, domain.FactOrderCompleted, domain.StatusCharged, domain.StatusFulfilled, charged),
		entry(3, `<script>alert("x")</script>`+"\x01", domain.StatusFulfilled, domain.StatusFulfilled, charged),
		entry(4, domain.FactOrderRefundRequested, domain.StatusFulfilled, domain.StatusRefunding, charged),
		entry(5, domain.FactPaymentRefunded, domain.StatusRefunding, domain.StatusRefunded, refunded),
	}
	es[3].Disposition, es[3].Reason = domain.DispIgnored, `never applies & <b>bold</b>`
	return projections.AuditReport{OrderID: "3f2c6a8e-1d4b-4c1e-9a7f-0b5e2d8c9a10", Stream: "order-3f2c6a8e-1d4b-4c1e-9a7f-0b5e2d8c9a10", Entries: es}
}

type svgElement struct {
	name  string
	attrs map[string]string
	text  string
}

// parseSVG checks the document is well-formed XML and returns its elements.
func parseSVG(t *testing.T, b []byte) []svgElement {
	t.Helper()
	dec := xml.NewDecoder(bytes.NewReader(b))
	var out []svgElement
	var stack []int
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err, "the chart must be well-formed XML")
		switch tok := tok.(type) {
		case xml.StartElement:
			el := svgElement{name: tok.Name.Local, attrs: map[string]string{}}
			for _, a := range tok.Attr {
				el.attrs[a.Name.Local] = a.Value
			}
			out = append(out, el)
			stack = append(stack, len(out)-1)
		case xml.EndElement:
			stack = stack[:len(stack)-1]
		case xml.CharData:
			if len(stack) > 0 {
				out[stack[len(stack)-1]].text += string(tok)
			}
		}
	}
	require.Equal(t, "svg", out[0].name)
	return out
}

func TestRenderTimeline(t *testing.T) {
	rep := sampleReport()
	svg := RenderTimeline(rep, domain.DefaultCurrency())
	els := parseSVG(t, svg)

	assert.NotContains(t, string(svg), "<script", "markup from the report is escaped")
	assert.NotContains(t, string(svg), "<b>")
	assert.NotContains(t, string(svg), "\x01")
	assert.NotContains(t, string(svg), "href", "no external references")

	var statuses []string
	paths := map[string]string{}
	var yLabels []string
	var markers, factGroups int
	for _, el := range els {
		switch {
		case el.name == "g" && el.attrs["class"] == "status-step":
			statuses = append(statuses, el.attrs["data-status"])
		case el.name == "path":
			paths[strings.TrimPrefix(el.attrs["class"], "series ")] = el.attrs["d"]
		case el.name == "circle":
			markers++
		case el.name == "g" && el.attrs["class"] == "fact":
			factGroups++
		case el.name == "text" && el.attrs["text-anchor"] == "end" && el.attrs["x"] == strconv.Itoa(plotLeft-8):
			yLabels = append(yLabels, el.text)
		}
	}
	assert.Equal(t, []string{"INIT", "CHARGED", "FULFILLED", "REFUNDING", "REFUNDED"}, statuses)
	assert.Len(t, paths, 5)
	assert.Equal(t, 6, factGroups)
	assert.Equal(t, 1, markers, "one marker for the ignored fact")
	assert.Equal(t, []string{"0.00", "10.00", "20.00", "30.00", "40.00", "50.00"}, yLabels)

	// One legend row: the plot spans 56..250. The top of the scale is
	// 50.00, zero is at the bottom. Series with equal values in a slot lie
	// side by side, spread apart in the legend's order.
	top := legendTop + 18
	yOf := func(minor int64, off float64) string {
		return strconv.FormatFloat(float64(top+plotH)-float64(minor)*float64(plotH)/5000+off, 'f', 1, 64)
	}
	// Slot by slot: all at zero; net = captured; the same; the same; the
	// same; captured = refunded with net back at zero.
	assert.Equal(t, []string{yOf(0, -6), yOf(4999, -1.5), yOf(4999, -1.5), yOf(4999, -1.5), yOf(4999, -1.5), yOf(0, -3)}, stepLevels(paths["series-net"]))
	assert.Equal(t, []string{yOf(0, -3), yOf(4999, 1.5), yOf(4999, 1.5), yOf(4999, 1.5), yOf(4999, 1.5), yOf(4999, -1.5)}, stepLevels(paths["series-captured"]))
	assert.Equal(t, []string{yOf(0, 0), yOf(0, -3), yOf(0, -3), yOf(0, -3), yOf(0, -3), yOf(4999, 1.5)}, stepLevels(paths["series-refunded"]))
	assert.Equal(t, []string{yOf(0, 3), yOf(0, 0), yOf(0, 0), yOf(0, 0), yOf(0, 0), yOf(0, 0)}, stepLevels(paths["series-chargedback"]))
	assert.Equal(t, []string{yOf(0, 6), yOf(0, 3), yOf(0, 3), yOf(0, 3), yOf(0, 3), yOf(0, 3)}, stepLevels(paths["series-reversed"]))

	// Each series has a dash pattern of its own (net alone is solid), and
	// the legend gives each one's final value.
	dashes := map[string]bool{}
	for _, el := range els {
		if el.name == "path" {
			assert.False(t, dashes[el.attrs["stroke-dasharray"]], "dash pattern %q used twice", el.attrs["stroke-dasharray"])
			dashes[el.attrs["stroke-dasharray"]] = true
		}
	}
	var legend []string
	for i, el := range els {
		if el.name == "g" && el.attrs["class"] == "legend-item" {
			legend = append(legend, els[i+2].text)
		}
	}
	assert.Equal(t, []string{"net 0.00", "captured 49.99", "refunded 49.99", "charged back 0.00", "reversed 0.00"}, legend)

	// Flat labels wrap the type at its words instead of cutting it.
	var labels []string
	for i, el := range els {
		if el.name == "text" && el.attrs["class"] == "x-label" {
			var lines []string
			for _, ts := range els[i+1:] {
				if ts.name != "tspan" {
					break
				}
				lines = append(lines, ts.text)
			}
			labels = append(labels, strings.Join(lines, "|"))
		}
	}
	assert.Contains(t, labels, "#1|BasketDeleted|Complete")
	for _, l := range labels {
		if !strings.HasPrefix(l, "#3|") { // the markup type has no words to wrap at
			assert.NotContains(t, l, "…", "a label was cut: %s", l)
		}
	}
	height, err := strconv.Atoi(els[0].attrs["height"])
	require.NoError(t, err)
	assert.Greater(t, height, top+plotH+bandGap+bandH+16+2*lineH, "room for two-line labels")

	// The hover text of the ignored fact says why, escaped.
	assert.Contains(t, string(svg), "never applies &amp; &lt;b&gt;bold&lt;/b&gt;")
}

var levelRE = regexp.MustCompile(`(?:M[0-9.]+ |V)([0-9.-]+)`)

// stepLevels returns the y of each slot of a step path.
func stepLevels(d string) []string {
	var out []string
	for _, m := range levelRE.FindAllStringSubmatch(d, -1) {
		out = append(out, m[1])
	}
	return out
}

func TestRenderTimelineNegativeAndEmpty(t *testing.T) {
	rep := projections.AuditReport{OrderID: "x", Entries: []projections.AuditEntry{
		{Revision: 0, Disposition: domain.DispApplied, StatusAfter: domain.StatusCharged, Totals: domain.Totals{Captured: 1000, Net: 1000}},
		{Revision: 1, Disposition: domain.DispApplied, StatusAfter: domain.StatusChargeback, Totals: domain.Totals{Captured: 1000, ChargedBack: 1000, Refunded: 1000, Net: -1000}},
	}}
	svg := string(RenderTimeline(rep, domain.Currency{Code: "JPY", Decimals: 0}))
	parseSVG(t, []byte(svg))
	assert.Contains(t, svg, ">-1000<", "the scale reaches below zero for a negative net")
	assert.Contains(t, svg, ">1000<")

	empty := RenderTimeline(projections.AuditReport{OrderID: "y"}, domain.DefaultCurrency())
	els := parseSVG(t, empty)
	var texts []string
	for _, el := range els {
		if el.name == "text" {
			texts = append(texts, el.text)
		}
	}
	assert.Contains(t, texts, "no facts")
}

func TestRenderTimelineManyFacts(t *testing.T) {
	rep := projections.AuditReport{OrderID: "z"}
	for i := range 300 {
		rep.Entries = append(rep.Entries, projections.AuditEntry{Revision: uint64(i), Type: string(domain.FactPaymentChargebackReversed),
			Disposition: domain.DispApplied, StatusAfter: domain.StatusChargebackReversed, Totals: domain.Totals{Captured: int64(i) * 100}})
	}
	els := parseSVG(t, RenderTimeline(rep, domain.DefaultCurrency()))
	var labels, facts int
	for _, el := range els {
		if el.name == "text" && strings.Contains(el.attrs["transform"], "rotate") {
			labels++
		}
		if el.name == "g" && el.attrs["class"] == "fact" {
			facts++
		}
	}
	assert.Equal(t, 300, facts, "every fact keeps its hover area")
	assert.Positive(t, labels)
	assert.LessOrEqual(t, labels, maxXLabels, "labels are thinned out")
	// The tilted labels fit: the widest reaches no further down than the
	// picture and no further left than its edge.
	height, err := strconv.Atoi(els[0].attrs["height"])
	require.NoError(t, err)
	w := float64(maxLabel * charPixels)
	for _, el := range els {
		if el.name == "text" && strings.Contains(el.attrs["transform"], "rotate") {
			x, err := strconv.ParseFloat(el.attrs["x"], 64)
			require.NoError(t, err)
			y, err := strconv.ParseFloat(el.attrs["y"], 64)
			require.NoError(t, err)
			assert.GreaterOrEqual(t, x-w*math.Cos(labelAngle*math.Pi/180), 0.0, el.text)
			assert.LessOrEqual(t, y+w*math.Sin(labelAngle*math.Pi/180), float64(height), el.text)
		}
	}
}

func TestWrapWords(t *testing.T) {
	assert.Equal(t, []string{"BasketDeleted", "Complete"}, wrapWords("BasketDeletedComplete", 14, 3))
	assert.Equal(t, []string{"PaymentChargeback", "Reversed"}, wrapWords("PaymentChargebackReversed", 17, 3))
	assert.Equal(t, []string{"Payment", "Chargeback", "Reversed"}, wrapWords("PaymentChargebackReversed", 10, 3))
	assert.Equal(t, []string{"Pay", "Cha…"}, wrapWords("PayChargebackReversed", 4, 2), "past the last line it is cut")
	assert.Equal(t, []string{"<script>"}, wrapWords("<script>", 10, 3))
	assert.Empty(t, wrapWords("", 10, 3))
}

func TestNiceStep(t *testing.T) {
	for _, c := range []struct{ span, want int64 }{
		{0, 100}, {1, 1}, {5, 1}, {6, 2}, {10, 2}, {11, 5}, {4999, 1000}, {5000, 1000}, {5001, 2000}, {123456789, 50000000},
	} {
		assert.Equal(t, c.want, niceStep(c.span, 5), "span %d", c.span)
	}
	assert.Equal(t, int64(-2000), floorTo(-1500, 1000))
	assert.Equal(t, int64(-1000), ceilTo(-1500, 1000))
	assert.Equal(t, int64(2000), ceilTo(1001, 1000))
}
