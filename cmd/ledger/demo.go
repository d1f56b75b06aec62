package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/bookworm-ledger/ledger/cmd/internal/traffic"
)

// demoIDs is how many order ids per scenario the report lists in full;
// beyond it the orders page lists them all.
const demoIDs = 10

// demoSummary is what `ledger simulate` published.
type demoSummary struct {
	plan       []traffic.Order
	sent, dups int
	at         time.Time // when publishing began
	cfg        Config
}

// writeDemoReport says, per scenario, which orders were published, where
// to look at one of each, and when the orders that wait on a clock will
// change (the placement time-out is the configured one, not a guess).
func writeDemoReport(out io.Writer, d demoSummary) error {
	ids := map[traffic.Scenario][]string{}
	for _, o := range d.plan {
		ids[o.Scenario] = append(ids[o.Scenario], o.ID)
	}
	base := "http://" + localAddr(d.cfg.HTTP.Addr)
	fmt.Fprintf(out, "published %d messages (+%d redeliveries) for %d orders, starting %s\n\n",
		d.sent, d.dups, len(d.plan), d.at.UTC().Format(time.TimeOnly+" MST"))
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "SCENARIO\tORDERS\tENDS IN\tONE TO OPEN")
	for _, s := range traffic.Scenarios {
		if len(ids[s]) == 0 {
			continue
		}
		fmt.Fprintf(w, "%s\t%d\t%s\t%s\n", s, len(ids[s]), demoOutcome(s, d), base+"/ui/orders/"+ids[s][0])
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if n := len(ids[traffic.Expired]); n > 0 {
		fmt.Fprintf(out, "\n%s\n", demoTimeouts(d, n))
	}
	fmt.Fprintln(out, "\norder ids:")
	for _, s := range traffic.Scenarios {
		list := ids[s]
		if len(list) == 0 {
			continue
		}
		more := ""
		if len(list) > demoIDs {
			more = fmt.Sprintf(" … and %d more (%s/ui/orders)", len(list)-demoIDs, base)
			list = list[:demoIDs]
		}
		fmt.Fprintf(out, "  %-18s %s%s\n", s, strings.Join(list, " "), more)
	}
	fmt.Fprintf(out, "\nbrowse them all: %s/  (ledger serve must be running with the same configuration)\n", base)
	return nil
}

// demoOutcome is the status a scenario ends in; an expired order is INIT
// until its last placement time-out.
func demoOutcome(s traffic.Scenario, d demoSummary) string {
	if s != traffic.Expired {
		return traffic.FinalStatus[s]
	}
	return "INIT, then " + traffic.FinalStatus[s] + " at " + demoExpiry(d).UTC().Format(time.TimeOnly)
}

// demoExpiry is when an order checked out at d.at expires: the ledger
// re-sends PlaceOrderCommand after each time-out until the last attempt.
func demoExpiry(d demoSummary) time.Time {
	return d.at.Add(time.Duration(d.cfg.Rules.MaxPlacementAttempts) * d.cfg.Rules.PlacementTimeout)
}

func demoTimeouts(d demoSummary, n int) string {
	t, attempts := d.cfg.Rules.PlacementTimeout, d.cfg.Rules.MaxPlacementAttempts
	var resent []string
	for i := 1; i < attempts; i++ {
		resent = append(resent, d.at.Add(time.Duration(i)*t).UTC().Format(time.TimeOnly))
	}
	msg := fmt.Sprintf("the %d expired-scenario orders never get past checkout. With rules.placement_timeout=%s and\n"+
		"rules.max_placement_attempts=%d (if ledger serve runs with the same settings), the ledger re-sends\n"+
		"PlaceOrderCommand at %s and expires them (CLOSED, orderExpired) at about %s UTC",
		n, t, attempts, orList(resent), demoExpiry(d).UTC().Format(time.TimeOnly))
	if total := time.Duration(attempts) * t; total > 5*time.Minute {
		msg += fmt.Sprintf(".\nTo watch it happen within a minute, start the service with LEDGER_RULES_PLACEMENT_TIMEOUT=10s "+
			"(now it takes %s)", total)
	}
	return msg
}

func orList(xs []string) string {
	switch len(xs) {
	case 0:
		return "no time"
	case 1:
		return xs[0]
	}
	return strings.Join(xs[:len(xs)-1], ", ") + " and " + xs[len(xs)-1]
}
