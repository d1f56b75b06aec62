package httpapi

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/bookworm-ledger/ledger/domain"
	"github.com/bookworm-ledger/ledger/projections"
)

// The stream browser's questions, answered from Deps.Index: the order
// listing with filters, the overview and the money by day.

// maxCursor bounds the opaque cursor taken from a request.
const maxCursor = 512

// recentOrders is how many recently active orders the overview lists.
const recentOrders = 10

var orderSorts = []projections.OrderSort{projections.SortByID, projections.SortByActivity, projections.SortByAmount}

type ordersBody struct {
	Orders []projections.Summary `json:"orders"`
	// Next is the next page: pass it as cursor= with the same status,
	// sort and prefix (or as after= when paging by id without them).
	Next string `json:"next,omitempty"`
}

// orderQuery reads the listing parameters; ok is false when none of the
// index's own (status, sort, prefix, cursor) is there.
func orderQuery(r *http.Request) (q projections.OrderQuery, ok bool, err error) {
	v := r.URL.Query()
	for _, name := range []string{"status", "sort", "prefix", "cursor"} {
		if v.Has(name) {
			ok = true
		}
	}
	if raw := v.Get("status"); raw != "" {
		q.Status = domain.Status(strings.ToUpper(raw))
		if !q.Status.Valid() {
			return q, ok, badRequest("status: want one of " + joinStatuses(domain.Statuses()))
		}
	}
	if raw := v.Get("sort"); raw != "" {
		q.Sort = projections.OrderSort(strings.ToLower(raw))
		if !slices.Contains(orderSorts, q.Sort) {
			return q, ok, badRequest("sort: want one of id, activity, amount")
		}
	}
	if raw := v.Get("prefix"); raw != "" {
		p, valid := parseOrderIDPrefix(raw)
		if !valid {
			return q, ok, badRequest("prefix: want the start of an order id (hex digits and dashes, as in 3f2c6a8e-1d4b)")
		}
		q.Prefix = p
	}
	q.Cursor = v.Get("cursor")
	if len(q.Cursor) > maxCursor || strings.ContainsFunc(q.Cursor, func(c rune) bool { return c <= ' ' || c > '~' }) {
		return q, ok, badRequest("cursor: pass back the next value of the previous page")
	}
	if ok && v.Has("after") {
		return q, ok, badRequest("after: pages the listing by id; with status, sort, prefix or cursor use cursor")
	}
	return q, ok, nil
}

func joinStatuses(ss []domain.Status) string {
	names := make([]string, len(ss))
	for i, s := range ss {
		names[i] = string(s)
	}
	return strings.Join(names, ", ")
}

// parseOrderIDPrefix accepts the start of a canonical UUID, any case, and
// returns it lower-case.
func parseOrderIDPrefix(s string) (string, bool) {
	if len(s) == 0 || len(s) > 36 {
		return "", false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return "", false
			}
		default:
			if !isHex(c) {
				return "", false
			}
		}
	}
	return strings.ToLower(s), true
}

func (s *Server) listOrders(w http.ResponseWriter, r *http.Request) {
	q, indexed, err := orderQuery(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	limit, err := pageLimit(r, 50, s.cfg.MaxPageSize)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	after := r.URL.Query().Get("after")
	if s.deps.Index == nil || (!indexed && after != "") {
		if indexed {
			writeError(w, http.StatusNotImplemented, "filtering, sorting and searching orders need the order index, which this process does not have; page by id with after=")
			return
		}
		s.ordersByID(w, r, after, limit)
		return
	}
	q.Limit = limit
	page, err := s.deps.Index.Orders(r.Context(), q)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	body := ordersBody{Orders: page.Orders, Next: page.Next}
	if body.Orders == nil {
		body.Orders = []projections.Summary{}
	}
	writeJSON(w, http.StatusOK, body)
}

// ordersByID pages the read model in order-id order (after= the last id).
func (s *Server) ordersByID(w http.ResponseWriter, r *http.Request, after string, limit int) {
	if after != "" {
		id, ok := parseOrderID(after)
		if !ok {
			writeError(w, http.StatusBadRequest, "after: want an order id (UUID)")
			return
		}
		after = id
	}
	rows, err := s.deps.Orders.Summaries(r.Context(), after, limit+1)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	body := ordersBody{Orders: rows}
	if len(rows) > limit {
		body.Orders = rows[:limit]
		body.Next = rows[limit-1].OrderID
	}
	if body.Orders == nil {
		body.Orders = []projections.Summary{}
	}
	writeJSON(w, http.StatusOK, body)
}

const noIndex = "the order index is not available in this process"

// dayLayout is how days are written: the UTC date.
const dayLayout = domain.DayFormat

func parseDay(name, raw string) (string, error) {
	if raw == "" {
		return "", nil
	}
	d, err := time.Parse(dayLayout, raw)
	if err != nil || d.Format(dayLayout) != raw {
		return "", badRequest(name + ": want a date like 2025-11-20 (UTC)")
	}
	return raw, nil
}

type daysBody struct {
	From  string                  `json:"from,omitempty"`
	To    string                  `json:"to,omitempty"`
	Days  []projections.DayTotals `json:"days"`
	Total dayTotal                `json:"total"` // the days listed, added up
}

type dayTotal struct {
	Orders int           `json:"orders"`
	Money  domain.Totals `json:"money"`
}

// days answers what moved on each UTC day from..to (both optional,
// inclusive), oldest first, and their sum.
func (s *Server) days(w http.ResponseWriter, r *http.Request) {
	v := r.URL.Query()
	from, err := parseDay("from", v.Get("from"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	to, err := parseDay("to", v.Get("to"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if from != "" && to != "" && to < from {
		writeError(w, http.StatusBadRequest, "to: must not be before from")
		return
	}
	if s.deps.Index == nil {
		writeError(w, http.StatusNotImplemented, noIndex)
		return
	}
	s.writeDays(w, r, from, to)
}

func (s *Server) writeDays(w http.ResponseWriter, r *http.Request, from, to string) {
	days, err := s.deps.Index.Days(r.Context(), from, to)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	body := daysBody{From: from, To: to, Days: days}
	if body.Days == nil {
		body.Days = []projections.DayTotals{}
	}
	for _, d := range days {
		body.Total.Orders += d.Orders
		body.Total.Money = addTotals(body.Total.Money, d.Money)
	}
	writeJSON(w, http.StatusOK, body)
}

func addTotals(a, b domain.Totals) domain.Totals {
	return domain.Totals{Captured: a.Captured + b.Captured, Refunded: a.Refunded + b.Refunded,
		ChargedBack: a.ChargedBack + b.ChargedBack, Reversed: a.Reversed + b.Reversed, Net: a.Net + b.Net}
}

type statusCount struct {
	Status domain.Status `json:"status"`
	Count  int           `json:"count"`
}

type moneyOverview struct {
	Today       domain.Totals `json:"today"`
	TodayOrders int           `json:"todayOrders"` // orders checked out today
	All         domain.Totals `json:"all"`
}

// section is a part of the overview that comes from an optional
// dependency: Available says it is wired, Error that it could not be
// read just now (the cause is logged, not shown: it may name hosts).
type section struct {
	Available bool   `json:"available"`
	Error     string `json:"error,omitempty"`
}

type lagJSON struct {
	Name   string `json:"name"`
	Behind int64  `json:"behind"` // log positions between the head and the projection
}

type lagSection struct {
	section
	Projections []lagJSON `json:"projections"`
}

type queueCount struct {
	Queue string `json:"queue"`
	Count int    `json:"count"`
}

type deadLetterSection struct {
	section
	Queues []queueCount `json:"queues"`
}

type parkedSection struct {
	section
	Orders int `json:"orders"`
	Lanes  int `json:"lanes"`
}

type overviewBody struct {
	Today    string        `json:"today"` // the UTC day "today" means, 2006-01-02
	Orders   int           `json:"orders"`
	ByStatus []statusCount `json:"byStatus"` // every status in lifecycle order, zeros too
	// NoCheckout counts orders with facts but no checkout yet (no status).
	NoCheckout int           `json:"noCheckout"`
	Money      moneyOverview `json:"money"`
	// Recent are the most recently active orders, newest first.
	Recent      []projections.Summary `json:"recent"`
	Lag         lagSection            `json:"lag"`
	DeadLetters deadLetterSection     `json:"deadLetters"`
	Parked      parkedSection         `json:"parked"`
}

// overview answers the home page in one call. The index's figures are
// required; lag, dead letters and parked orders are each optional and
// bounded by ReadyTimeout, so a broker away does not hold the page.
func (s *Server) overview(w http.ResponseWriter, r *http.Request) {
	if s.deps.Index == nil {
		writeError(w, http.StatusNotImplemented, noIndex)
		return
	}
	ctx := r.Context()
	now := time.Now
	if s.deps.Clock != nil {
		now = s.deps.Clock
	}
	body := overviewBody{Today: now().UTC().Format(dayLayout)}
	var (
		wg                    sync.WaitGroup
		ov                    projections.Overview
		today                 []projections.DayTotals
		recent                projections.OrderPage
		ovErr, dayErr, recErr error
	)
	wg.Go(func() { ov, ovErr = s.deps.Index.Overview(ctx) })
	wg.Go(func() { today, dayErr = s.deps.Index.Days(ctx, body.Today, body.Today) })
	wg.Go(func() {
		recent, recErr = s.deps.Index.Orders(ctx, projections.OrderQuery{Sort: projections.SortByActivity, Limit: recentOrders})
	})
	wg.Go(func() { body.Lag = s.lagSection(ctx) })
	wg.Go(func() { body.DeadLetters = s.deadLetterSection(ctx) })
	wg.Go(func() { body.Parked = s.parkedSection(ctx) })
	wg.Wait()
	if err := errors.Join(ovErr, dayErr, recErr); err != nil {
		s.fail(w, r, fmt.Errorf("overview: %w", err))
		return
	}
	body.Orders, body.Money.All = ov.Orders, ov.Money
	for _, st := range domain.Statuses() {
		body.ByStatus = append(body.ByStatus, statusCount{Status: st, Count: ov.ByStatus[st]})
	}
	body.NoCheckout = ov.ByStatus[""]
	for _, d := range today {
		if d.Day == body.Today {
			body.Money.Today, body.Money.TodayOrders = d.Money, d.Orders
		}
	}
	body.Recent = recent.Orders
	if len(body.Recent) > recentOrders {
		body.Recent = body.Recent[:recentOrders]
	}
	if body.Recent == nil {
		body.Recent = []projections.Summary{}
	}
	writeJSON(w, http.StatusOK, body)
}

// readSection runs fn under ReadyTimeout; a panic or an error is logged
// and becomes the section's short message.
func readSection[T any](s *Server, ctx context.Context, what string, fn func(context.Context) (T, error)) (T, section) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.ReadyTimeout)
	defer cancel()
	type answer struct {
		v   T
		err error
	}
	done := make(chan answer, 1)
	go func() {
		defer func() {
			if p := recover(); p != nil {
				done <- answer{err: fmt.Errorf("%s panicked: %v", what, p)}
			}
		}()
		v, err := fn(ctx)
		done <- answer{v, err}
	}()
	var a answer
	select {
	case a = <-done:
	case <-ctx.Done():
		a.err = ctx.Err()
	}
	if a.err == nil {
		return a.v, section{Available: true}
	}
	s.log.Warn("overview section failed", zap.String("section", what), zap.Error(a.err))
	msg := "could not be read just now"
	if errors.Is(a.err, context.DeadlineExceeded) {
		msg = "no answer within " + s.cfg.ReadyTimeout.String()
	}
	var zero T
	return zero, section{Available: true, Error: msg}
}

func (s *Server) lagSection(ctx context.Context) lagSection {
	lag := s.deps.Lag
	if lag == nil {
		lag = s.readModelLag
	}
	m, sec := readSection(s, ctx, "lag", lag)
	out := lagSection{section: sec, Projections: []lagJSON{}}
	for _, name := range slices.Sorted(maps.Keys(m)) {
		out.Projections = append(out.Projections, lagJSON{Name: name, Behind: m[name]})
	}
	return out
}

// readModelLag is what the server knows by itself: the log's head
// against the read model's checkpoint.
func (s *Server) readModelLag(ctx context.Context) (map[string]int64, error) {
	head, ok, err := s.deps.Log.Head(ctx)
	if err != nil {
		return nil, fmt.Errorf("log head: %w", err)
	}
	if !ok {
		return map[string]int64{projections.ReadModelName: 0}, nil
	}
	cp, err := s.deps.Orders.Checkpoint(ctx, projections.ReadModelName)
	if err != nil {
		return nil, fmt.Errorf("read model checkpoint: %w", err)
	}
	behind := int64(head.Commit) + 1
	if cp != nil {
		behind = max(0, int64(head.Commit)-int64(cp.Commit))
	}
	return map[string]int64{projections.ReadModelName: behind}, nil
}

func (s *Server) deadLetterSection(ctx context.Context) deadLetterSection {
	if s.deps.DeadLetterDepth == nil {
		return deadLetterSection{Queues: []queueCount{}}
	}
	queues, sec := readSection(s, ctx, "dead letters", func(ctx context.Context) ([]queueCount, error) {
		var out []queueCount
		for _, q := range []string{DeadLetterError, DeadLetterSkipped} {
			n, err := s.deps.DeadLetterDepth(ctx, q)
			if err != nil {
				return nil, fmt.Errorf("depth of the %s queue: %w", q, err)
			}
			out = append(out, queueCount{Queue: q, Count: n})
		}
		return out, nil
	})
	if queues == nil {
		queues = []queueCount{}
	}
	return deadLetterSection{section: sec, Queues: queues}
}

func (s *Server) parkedSection(ctx context.Context) parkedSection {
	if s.deps.Parked == nil {
		return parkedSection{}
	}
	lanes, sec := readSection(s, ctx, "parked", s.deps.Parked)
	if sec.Error != "" {
		return parkedSection{section: sec}
	}
	b := newParkedBody(lanes)
	return parkedSection{section: sec, Orders: b.Orders, Lanes: b.Lanes}
}

// asOfParam reads ?as_of= (projections.ParseAsOf): an RFC 3339 time or a
// date (the end of that UTC day); zero when absent.
func asOfParam(r *http.Request) (time.Time, error) {
	t, err := projections.ParseAsOf(r.URL.Query().Get("as_of"))
	if err != nil {
		return t, badRequest("as_of: " + err.Error())
	}
	return t, nil
}

// auditOf is the order's audit, as of ?as_of= when given.
func (s *Server) auditOf(r *http.Request, id string) (projections.AuditReport, error) {
	asOf, err := asOfParam(r)
	if err != nil {
		return projections.AuditReport{}, err
	}
	return s.deps.Audit(r.Context(), id, asOf)
}

// summaryAsOf is an order's row as the facts recorded by AsOf make it.
type summaryAsOf struct {
	projections.Summary
	AsOf time.Time `json:"asOf"`
}

// orderAsOf answers /api/orders/{id}?as_of=: the row folded from the
// facts recorded by then, not the read model's (which has them all).
func (s *Server) orderAsOf(w http.ResponseWriter, r *http.Request, id string) {
	asOf, err := asOfParam(r)
	if err == nil && asOf.IsZero() {
		err = badRequest("as_of: want a moment; leave the parameter out for the read model's row")
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	rep, err := s.deps.Audit(r.Context(), id, asOf)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, summaryAsOf{Summary: rep.Final, AsOf: asOf})
}
