package main

import (
	"fmt"
	"io"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/bookworm-ledger/ledger/domain"
	"github.com/bookworm-ledger/ledger/projections"
)

// Tamper evidence: serve seals the log every seal.every; `ledger verify`
// recomputes the seals.

// sealer is the Sealer of log as configured (log nil: to validate).
func (c Config) sealer(log domain.EventLog) projections.Sealer {
	return projections.Sealer{Log: log, Every: c.Seal.Every, MaxFacts: c.Seal.MaxFacts}
}

func (a *app) verifyCmd() *cobra.Command {
	var asJSON bool
	var server string
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Check the stored history against its seals",
		Long: `Recompute the seals that 'ledger serve' appends to the log (every seal.every)
over the order events, and say whether the history they cover is intact.
Exits 0 when it is; otherwise non-zero, naming the first position that
differs: an event altered, missing or inserted, or a seal altered or out of
its chain. Facts after the last seal are counted, not checked. Keep the last
seal's hash (printed here) somewhere else: a rewrite of the whole history,
seals included, changes it.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, logger, err := a.toolSetup(cmd)
			if err != nil {
				return err
			}
			defer logger.Sync()
			ctx := cmd.Context()
			var rep projections.VerifyReport
			err = a.route(ctx, c, server, func() error {
				store, err := openStore(ctx, c, logger)
				if err != nil {
					return err
				}
				defer store.Close()
				rep, err = projections.Verify(ctx, store)
				return err
			}, func(base string) error {
				return apiClient{base: base}.getJSON(ctx, "/api/books/verify", nil, &rep)
			})
			if err != nil {
				return err
			}
			if asJSON {
				err = writeJSON(a.stdout, rep)
			} else {
				err = writeVerify(a.stdout, rep)
			}
			if err != nil {
				return err
			}
			if !rep.OK {
				return fmt.Errorf("the history differs from its seals: %s", rep.Difference)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the report as JSON")
	serverFlags(cmd.Flags(), &server, nil)
	return cmd
}

// writeVerify prints the report for people.
func writeVerify(out io.Writer, rep projections.VerifyReport) error {
	last := "nothing sealed yet (ledger serve seals every seal.every)"
	if rep.Seals > 0 {
		last = fmt.Sprintf("last seal through position %s, sealed %s, hash %s", rep.Through, rep.SealedAt.Format(time.RFC3339), rep.Hash)
	}
	var err error
	if rep.OK {
		_, err = fmt.Fprintf(out, "intact: %d seal(s) over %d fact(s); %d fact(s) after the last seal, not sealed yet\n%s\n",
			rep.Seals, rep.Sealed, rep.Unsealed, last)
		return err
	}
	_, err = fmt.Fprintf(out, "NOT INTACT: %s\nintact before it: %d seal(s) over %d fact(s); %s\n", rep.Difference, rep.Seals, rep.Sealed, last)
	return err
}

// sealer is serve's Sealer: it reports into the metrics and logs a
// failure once, when sealing starts failing, and again once it works.
func (s *service) sealer() projections.Sealer {
	m := newSealMetrics(s.metrics.reg)
	sl := s.cfg.sealer(s.store)
	failing := false // Observe runs on Run's goroutine only
	sl.Observe = func(res projections.SealResult, err error) {
		m.seals.Add(float64(res.Seals))
		m.facts.Add(float64(res.Facts))
		if res.Last != nil {
			m.last.Set(float64(res.Last.Through.Commit))
		}
		switch {
		case err != nil:
			m.failures.Inc()
			if !failing {
				s.logger.Warn("sealing the log failed; trying again every seal.every", zap.Duration("every", sl.Every), zap.Error(err))
			}
			failing = true
		case failing:
			failing = false
			s.logger.Info("sealing the log works again", zap.Int("facts", res.Facts))
		}
		if res.Seals > 0 {
			s.logger.Debug("log sealed", zap.Int("seals", res.Seals), zap.Int("facts", res.Facts),
				zap.Uint64("seq", res.Last.Seq), zap.Stringer("through", res.Last.Through))
		}
	}
	return sl
}

// sealMetrics are the Sealer's; registered by the service that runs it.
type sealMetrics struct {
	seals, facts, failures prometheus.Counter
	last                   prometheus.Gauge
}

func newSealMetrics(reg *prometheus.Registry) sealMetrics {
	m := sealMetrics{
		seals: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ledger_seals_total", Help: "Seals this instance appended to the log (tamper evidence)."}),
		facts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ledger_sealed_facts_total", Help: "Facts covered by the seals this instance appended."}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ledger_seal_failures_total", Help: "Sealing rounds that failed (tried again at the next seal.every)."}),
		last: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "ledger_seal_last_position", Help: "Commit position of the last sealed fact, as last read."}),
	}
	reg.MustRegister(m.seals, m.facts, m.failures, m.last)
	return m
}
