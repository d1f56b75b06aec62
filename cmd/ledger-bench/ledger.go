package main

import (
	"bufio"
	"cmp"
	"context"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/bookworm-ledger/ledger/internal/testenv"
)

// What the bench reads from the `ledger serve` it runs: its metrics and its
// JSON log.

// countLogLevels counts warn and error lines in a JSON log.
func countLogLevels(log string) (warn, errs int) {
	sc := bufio.NewScanner(strings.NewReader(log))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		switch {
		case strings.Contains(l, `"level":"warn"`):
			warn++
		case strings.Contains(l, `"level":"error"`):
			errs++
		}
	}
	return warn, errs
}

// metric sums every sample of a Prometheus counter or gauge family; name
// may carry labels, then only that sample counts.
func metric(ctx context.Context, lp *testenv.Serve, name string) (float64, error) {
	m, err := lp.Metrics(ctx)
	if err != nil {
		return 0, err
	}
	var sum float64
	for k, v := range m {
		if k == name || strings.HasPrefix(k, name+"{") {
			sum += v
		}
	}
	return sum, nil
}

// metricLabel reads the sample of a family whose only label value is value.
func metricLabel(ctx context.Context, lp *testenv.Serve, name, value string) (float64, error) {
	return metric(ctx, lp, name+`{projection="`+value+`"}`)
}

// histogram is a Prometheus histogram: cumulative bucket counts by upper
// bound, sum and count.
type histogram struct {
	le         []float64
	cum        []float64
	sum, count float64
}

func (h histogram) minus(o histogram) histogram {
	out := histogram{le: h.le, cum: make([]float64, len(h.cum)), sum: h.sum - o.sum, count: h.count - o.count}
	for i := range h.cum {
		out.cum[i] = h.cum[i]
		if i < len(o.cum) {
			out.cum[i] -= o.cum[i]
		}
	}
	return out
}

// quantile is the upper bound of the bucket holding quantile q.
func (h histogram) quantile(q float64) time.Duration {
	for i, c := range h.cum {
		if c >= q*h.count {
			if math.IsInf(h.le[i], 1) {
				break
			}
			return time.Duration(h.le[i] * 1e9)
		}
	}
	return -1
}

// scrapeHistogram reads the unlabelled histogram name.
func scrapeHistogram(ctx context.Context, lp *testenv.Serve, name string) (histogram, error) {
	var h histogram
	m, err := lp.Metrics(ctx)
	if err != nil {
		return h, err
	}
	type bucket struct{ le, cum float64 }
	var bs []bucket
	for k, v := range m {
		bound, ok := strings.CutPrefix(k, name+`_bucket{le="`)
		if !ok {
			continue
		}
		le, err := strconv.ParseFloat(strings.TrimSuffix(bound, `"}`), 64)
		if err != nil {
			continue
		}
		bs = append(bs, bucket{le, v})
	}
	slices.SortFunc(bs, func(a, b bucket) int { return cmp.Compare(a.le, b.le) })
	for _, b := range bs {
		h.le, h.cum = append(h.le, b.le), append(h.cum, b.cum)
	}
	h.sum, h.count = m[name+"_sum"], m[name+"_count"]
	return h, nil
}
