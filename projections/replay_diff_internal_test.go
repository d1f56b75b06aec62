package projections

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bookworm-ledger/ledger/domain"
)

// sliceRows is a DiffLister over rows sorted by order id.
type sliceRows []Summary

func (s sliceRows) DiffRows(_ context.Context, after string, limit int, out []DiffRow) ([]DiffRow, error) {
	for _, r := range s {
		if r.OrderID > after && limit > 0 {
			out = append(out, DiffRow{OrderID: r.OrderID, Status: r.Status, Total: r.Total, Money: r.Money})
			limit--
		}
	}
	return out, nil
}

func (s sliceRows) Summary(_ context.Context, id string) (Summary, bool, error) {
	i, ok := slices.BinarySearchFunc(s, id, func(r Summary, id string) int { return strings.Compare(r.OrderID, id) })
	if !ok {
		return Summary{}, false, nil
	}
	return s[i], true, nil
}

func (s sliceRows) Summaries(ctx context.Context, after string, limit int) ([]Summary, error) {
	var out []Summary
	for _, r := range s {
		if r.OrderID > after && len(out) < limit {
			out = append(out, r)
		}
	}
	return out, nil
}

// The diff over DiffListers finds what the one over whole rows finds,
// across pages: changed and new orders, not those only the current model has.
func TestDiffRowsMatchesDiffModels(t *testing.T) {
	defer func(p int) { diffPage = p }(diffPage)
	diffPage = 3
	row := func(id string, st domain.Status, net int64) Summary {
		return Summary{OrderID: id, Stream: "order-" + id, Status: st, Total: 5, Money: domain.Totals{Net: net}, Facts: 2}
	}
	cur := sliceRows{row("a", domain.StatusInit, 0), row("b", domain.StatusCharged, 5), row("c", domain.StatusInit, 0),
		row("d", domain.StatusCharged, 5), row("f", domain.StatusRefunded, 0), row("h", domain.StatusInit, 0)}
	next := sliceRows{row("a", domain.StatusInit, 0), row("b", domain.StatusFulfilled, 5), row("d", domain.StatusCharged, 4),
		row("e", domain.StatusInit, 0), row("f", domain.StatusRefunded, 0), row("g", domain.StatusInit, 0), row("h", domain.StatusInit, 0)}
	want, err := diffModels(context.Background(), cur, next)
	require.NoError(t, err)
	got, err := diffRows(context.Background(), cur, next)
	require.NoError(t, err)
	assert.Equal(t, want, got)
	ids := make([]string, len(got))
	for i, c := range got {
		ids[i] = c.OrderID
	}
	assert.Equal(t, []string{"b", "d", "e", "g"}, ids)
	assert.Nil(t, got[2].Before, "e is new")
	assert.Equal(t, domain.StatusCharged, got[0].Before.Status)
}
