package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/bookworm-ledger/ledger/adapters/rabbitmq"
	"github.com/bookworm-ledger/ledger/domain"
	"github.com/bookworm-ledger/ledger/projections"
)

var _ projections.Elector = (*rabbitmq.Elector)(nil)

// openPublisher builds the lifecycle publisher and, with
// leader.election=rabbitmq, the leadership that runs it (and the
// time-outs) only while this instance holds the broker's lease. Its
// checkpoint and parked lanes then live in the shared store: a new leader
// goes on from where the last one was confirmed, holding the lanes it
// parked, and a deposed one cannot move the checkpoint.
func (s *service) openPublisher() error {
	c := s.cfg
	pub := rabbitmq.NewPublisher(s.broker, c.publisherConfig())
	lc := projections.LifecycleConfig{Rules: c.rules(), Outbound: c.outbound(), Parking: s.rm, Observer: s.projectionObserver()}
	if c.Leader.Election != electionRabbitMQ {
		s.lifecycle = projections.NewLifecycle(s.store, pub, s.rm, lc)
		return nil
	}
	elector, err := s.broker.Elector(c.leaseConfig())
	if err != nil {
		return fmt.Errorf("leader lease: %w", err)
	}
	s.shared = projections.NewSharedCheckpoint(s.store, projections.LifecycleName, s.instance)
	lc.Parking, lc.CheckpointEvery = projections.NewSharedParks(s.store), c.Leader.CheckpointEvery
	s.lifecycle = projections.NewLifecycle(s.store, pub, s.shared, lc)
	s.leadership = projections.NewLeadership(projections.LeadershipConfig{
		Instance: s.instance,
		Elector:  elector,
		Claim: func(ctx context.Context) error {
			_, err := s.shared.Claim(ctx, s.localCheckpoint)
			return err
		},
		Parts:    map[string]func(context.Context) error{projections.LifecycleName: s.lifecycle.Run, "timeouts": s.timeouts().Run},
		Observer: leadershipLog{s.logger},
	})
	return nil
}

// localCheckpoint seeds the shared checkpoint on the first start with an
// election: the publisher's checkpoint this instance kept in its read
// model until then, so that it does not publish everything again.
func (s *service) localCheckpoint(ctx context.Context) (*domain.Position, error) {
	return s.rm.Checkpoint(ctx, projections.LifecycleName)
}

func (s *service) timeouts() *projections.Timeouts {
	return projections.NewTimeouts(s.store, s.rm, projections.TimeoutsConfig{Currency: s.cfg.currency(), Observer: s.projectionObserver()})
}

// role is this instance's part: with an election, what the leadership
// says; without one, a publishing instance leads from its start.
func (s *service) role() projections.LeaderStatus {
	if s.leadership != nil {
		st := s.leadership.Status()
		if w := s.writer.Load(); !st.Leading && st.Leader == "" && w != nil && *w != s.instance {
			st.Leader = *w // the checkpoint's last writer: a follower hears no beats
		}
		return st
	}
	st := projections.LeaderStatus{Instance: s.instance, Since: s.started, Leading: s.lifecycle != nil}
	if st.Leading {
		st.Leader = s.instance
	}
	return st
}

// watchWriter notes who writes the shared checkpoint, for a follower to
// name the leader.
func (s *service) watchWriter(ctx context.Context) {
	if s.shared == nil {
		return
	}
	if w, _, err := s.shared.Writer(ctx); err == nil {
		s.writer.Store(&w)
	}
}

// publishing reports whether the publisher runs here now.
func (s *service) publishing() bool { return s.lifecycle != nil && s.role().Leading }

// roleNote is /readyz's line on the role.
func roleNote(st projections.LeaderStatus) string {
	role := "follower"
	if st.Leading {
		role = "leader"
	}
	note := fmt.Sprintf("%s since %s (%d role changes), instance %s", role, st.Since.UTC().Format(time.RFC3339), st.Changes, st.Instance)
	if !st.Leading && st.Leader != "" {
		note += ", leader " + st.Leader
	}
	return note
}

// leadershipLog logs every term: the chaos harness reads these lines to
// prove that no two instances published at once.
type leadershipLog struct{ log *zap.Logger }

func (l leadershipLog) Acquired(instance string, at time.Time) {
	l.log.Info("leadership acquired", zap.String("instance", instance), zap.Time("at", at))
}

func (l leadershipLog) Lost(instance string, held time.Duration, reason error) {
	fields := []zap.Field{zap.String("instance", instance), zap.Duration("held", held)}
	if reason != nil {
		fields = append(fields, zap.String("reason", reason.Error()))
	}
	if errors.Is(reason, projections.ErrFenced) {
		l.log.Warn("leadership lost", fields...)
		return
	}
	l.log.Info("leadership lost", fields...)
}

// registerRole exports the role: whether this instance leads, since when,
// and how many times its role changed. The id is a label of its own
// ("instance" is Prometheus's target label).
func (m *metrics) registerRole(instance string, role func() projections.LeaderStatus) {
	info := prometheus.NewGauge(prometheus.GaugeOpts{Name: "ledger_instance_info", Help: "This instance's id (value 1).",
		ConstLabels: prometheus.Labels{"id": instance}})
	info.Set(1)
	m.reg.MustRegister(info,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "ledger_leader",
			Help: "1 while this instance runs the lifecycle publisher and the time-outs."}, func() float64 {
			if role().Leading {
				return 1
			}
			return 0
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "ledger_leader_since_seconds",
			Help: "When this instance's current role (leader or follower) began, Unix time."}, func() float64 {
			return float64(role().Since.UnixNano()) / 1e9
		}),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "ledger_leader_changes_total",
			Help: "Times this instance became leader or stopped being one."}, func() float64 {
			return float64(role().Changes)
		}))
}
