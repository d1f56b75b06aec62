package main

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bookworm-ledger/ledger/cmd/internal/traffic"
	"github.com/bookworm-ledger/ledger/internal/testenv"
)

// The demo says which orders it published, where to look at one of each
// and when the orders that wait on the placement clock will expire, under
// the configured time-out.
func TestSimulateReportsOrderIDsLinksAndWhenTimeoutsFire(t *testing.T) {
	t.Parallel()
	const seed, n = "42", 30
	plan := traffic.Plan(42, n, traffic.Scenarios)
	cases := []struct {
		name, timeout, resent, expiresIn string
		hint                             bool
	}{
		{name: "default", timeout: "", hint: true},
		{name: "short", timeout: "10s", hint: false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			env := map[string]string{"LEDGER_AMQP_URL": testenv.Vhost(t), "LEDGER_HTTP_ADDR": "0.0.0.0:18080",
				"LEDGER_AMQP_DECLARE_CONSUMER_QUEUES": "false"}
			if tc.timeout != "" {
				env["LEDGER_RULES_PLACEMENT_TIMEOUT"] = tc.timeout
			}
			out, stderr, err := ledger(t, env, "simulate", "--orders", "30", "--rate", "5000", "--seed", seed)
			require.NoError(t, err, stderr)
			byScenario := map[traffic.Scenario][]string{}
			for _, o := range plan {
				byScenario[o.Scenario] = append(byScenario[o.Scenario], o.ID)
			}
			for s, ids := range byScenario {
				for _, id := range ids {
					assert.Contains(t, out, id, "scenario %s", s)
				}
				assert.Contains(t, out, "http://127.0.0.1:18080/ui/orders/"+ids[0], "one link per scenario (%s)", s)
			}
			if len(byScenario[traffic.Expired]) == 0 {
				t.Fatalf("seed %s has no expired order; pick another", seed)
			}
			want := "rules.placement_timeout=30m0s"
			if tc.timeout != "" {
				want = "rules.placement_timeout=" + tc.timeout
			}
			assert.Contains(t, out, want)
			assert.Contains(t, out, "INIT, then CLOSED at ")
			assert.Equal(t, tc.hint, strings.Contains(out, "LEDGER_RULES_PLACEMENT_TIMEOUT=10s"), out)
			assert.NotContains(t, out, "expired 5", "no claim that orders already expired")
		})
	}
}
