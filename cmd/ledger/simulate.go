package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/bookworm-ledger/ledger/adapters/rabbitmq"
	"github.com/bookworm-ledger/ledger/cmd/internal/traffic"
)

func (a *app) simulateCmd() *cobra.Command {
	var orders, dupEvery int
	var rate float64
	var seed uint64
	var timeouts bool
	cmd := &cobra.Command{
		Use:   "simulate",
		Short: "Publish a realistic mix of BookWorm and payment traffic to the broker",
		Long: `Publish orders that walk every lifecycle path: fulfilled, cancelled before
and after the charge, basket failures, refunds, chargebacks (won and lost),
fulfilment failures, in all three envelopes, with money as numbers and as
strings, and some redeliveries. --timeouts adds orders that never get past
checkout, to watch placement time-outs (start the service with
LEDGER_RULES_PLACEMENT_TIMEOUT=10s to see them expire within a minute).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, logger, err := a.toolSetup(cmd)
			if err != nil {
				return err
			}
			defer logger.Sync()
			return a.simulate(cmd.Context(), c, logger, orders, rate, seed, timeouts, dupEvery)
		},
	}
	cmd.Flags().IntVar(&orders, "orders", 50, "orders to simulate")
	cmd.Flags().Float64Var(&rate, "rate", 100, "messages per second")
	cmd.Flags().Uint64Var(&seed, "seed", uint64(time.Now().UnixNano()), "random seed (same seed, same traffic)")
	cmd.Flags().BoolVar(&timeouts, "timeouts", true, "include orders that time out in placement")
	cmd.Flags().IntVar(&dupEvery, "duplicate-every", 10, "republish every n-th message with the same id (0: never)")
	return cmd
}

func (a *app) simulate(ctx context.Context, c Config, logger *zap.Logger, n int, rate float64, seed uint64, timeouts bool, dupEvery int) error {
	b, err := rabbitmq.New(brokerConfig(c, nil), logger.Named("amqp"))
	if err != nil {
		return err
	}
	defer b.Close()
	if err := b.Connect(ctx); err != nil {
		return fmt.Errorf("connect to broker %s: %w", redactURL(c.AMQP.URL), err)
	}
	// Declaring the ledger's topology first means nothing is lost if the
	// service is not running yet: its queue holds the traffic.
	if err := b.DeclareTopology(ctx); err != nil {
		return err
	}
	mix := []traffic.Scenario(nil)
	if timeouts {
		mix = traffic.Scenarios
	}
	plan := traffic.Plan(seed, n, mix)
	r := rand.New(rand.NewPCG(seed, 7))
	envs := []traffic.Envelope{traffic.MassTransit, traffic.MassTransit, traffic.CloudEvents, traffic.Bare}

	// Interleave orders: each round sends the next step of every order that
	// has one, so orders progress side by side as in a real shop.
	interval := time.Duration(float64(time.Second) / max(rate, 0.1))
	sent, dups := 0, 0
	start := time.Now()
	for step := 0; ; step++ {
		any := false
		for _, o := range plan {
			if step >= len(o.Steps) {
				continue
			}
			any = true
			w, err := traffic.Encode(o.Steps[step], envs[r.IntN(len(envs))], traffic.MessageID(o.ID, step), time.Now())
			if err != nil {
				return err
			}
			pubs := []rabbitmq.Publication{w.Publication()}
			if dupEvery > 0 && (sent+1)%dupEvery == 0 {
				pubs = append(pubs, w.Publication()) // a redelivery: same id
				dups++
			}
			if err := b.Publish(ctx, pubs); err != nil {
				return fmt.Errorf("publish: %w", err)
			}
			sent++
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(interval):
			}
		}
		if !any {
			break
		}
	}
	return writeDemoReport(a.stdout, demoSummary{plan: plan, sent: sent, dups: dups, at: start, cfg: c})
}
