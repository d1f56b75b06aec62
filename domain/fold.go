package domain

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// Settlement is how a refund request settles.
type Settlement string

// Refund settlement modes.
const (
	// SettleImmediate: REFUNDING -> REFUNDED at once (a wallet refund;
	// BookWorm has no payment provider). PaymentRefunded/RefundFailed are
	// ignored.
	SettleImmediate Settlement = "immediate"
	// SettleProvider: REFUNDING waits for PaymentRefunded or
	// PaymentRefundFailed.
	SettleProvider Settlement = "provider"
)

// Rules configure the fold. The zero value of a field means its default.
type Rules struct {
	Currency             Currency
	PlacementTimeout     time.Duration // re-send PlaceOrderCommand after this long
	MaxPlacementAttempts int           // PlaceOrderCommand sends in all before the order expires
	RefundSettlement     Settlement
}

// DefaultRules: USD/2, 30 minutes, 3 sends, immediate settlement (BookWorm's
// MaxRetryTimeout and MaxAttempts).
func DefaultRules() Rules {
	return Rules{Currency: DefaultCurrency(), PlacementTimeout: 30 * time.Minute, MaxPlacementAttempts: 3, RefundSettlement: SettleImmediate}
}

// Validate reports every bad setting at once, each named by its key
// (placement_timeout, refund_settlement, ...).
func (r Rules) Validate() error {
	var errs []error
	if err := r.Currency.Validate(); err != nil {
		errs = append(errs, err)
	}
	if r.PlacementTimeout <= 0 {
		errs = append(errs, fmt.Errorf("placement_timeout %v: the placement timeout must be positive", r.PlacementTimeout))
	}
	if r.MaxPlacementAttempts < 1 {
		errs = append(errs, fmt.Errorf("max_placement_attempts %d: must be 1 or more", r.MaxPlacementAttempts))
	}
	if r.RefundSettlement != SettleImmediate && r.RefundSettlement != SettleProvider {
		errs = append(errs, fmt.Errorf("refund_settlement %q: want %q or %q", r.RefundSettlement, SettleImmediate, SettleProvider))
	}
	return errors.Join(errs...)
}

func (r Rules) norm() Rules {
	d := DefaultRules()
	if r.Currency.Code == "" {
		r.Currency = d.Currency
	}
	if r.PlacementTimeout <= 0 {
		r.PlacementTimeout = d.PlacementTimeout
	}
	if r.MaxPlacementAttempts < 1 {
		r.MaxPlacementAttempts = d.MaxPlacementAttempts
	}
	if r.RefundSettlement != SettleProvider {
		r.RefundSettlement = SettleImmediate
	}
	return r
}

// Event is a fact as read from its stream.
type Event struct {
	ID       string // event id (de-duplication key)
	Revision uint64 // position in the order's stream
	Fact     Fact
	// What the causing message's envelope said, as the reader decoded it
	// from the stored metadata. The fold ignores them (but keeps the
	// checkout's conversation); Intents carries them onto the outbound
	// messages as a MassTransit consumer would.
	MessageID      string // the envelope's message id
	CorrelationID  string // the envelope's own correlation id, "" when it had none
	ConversationID string // the envelope's conversation id, "" when it had none
}

// Conversation is the conversation the messages e causes belong to: the
// envelope's, or, when it started none, a new one derived from the event
// id (MassTransit starts a new conversation for a send outside one; the
// ledger derives it so a re-publish carries the same).
func (e Event) Conversation() string {
	if c, ok := CanonicalUUID(e.ConversationID); ok {
		return c
	}
	if e.ID == "" {
		return ""
	}
	return NameUUID("conversation", e.ID)
}

// Totals are an order's money, in minor units.
type Totals struct {
	Captured    int64 `json:"captured"` // the order total, once charged
	Refunded    int64 `json:"refunded"`
	ChargedBack int64 `json:"chargedBack"`
	Reversed    int64 `json:"reversed"` // chargebacks reversed (money back to the merchant)
	Net         int64 `json:"net"`      // Captured - Refunded - ChargedBack + Reversed
}

// outstanding is what can still be paid back: captured money not yet
// refunded or held by a chargeback.
func (t Totals) outstanding() int64 { return t.Captured - t.Refunded - t.ChargedBack + t.Reversed }

// Add returns t + o, field by field.
func (t Totals) Add(o Totals) Totals {
	return Totals{Captured: t.Captured + o.Captured, Refunded: t.Refunded + o.Refunded, ChargedBack: t.ChargedBack + o.ChargedBack,
		Reversed: t.Reversed + o.Reversed, Net: t.Net + o.Net}
}

// Sub returns t - o, field by field.
func (t Totals) Sub(o Totals) Totals {
	return Totals{Captured: t.Captured - o.Captured, Refunded: t.Refunded - o.Refunded, ChargedBack: t.ChargedBack - o.ChargedBack,
		Reversed: t.Reversed - o.Reversed, Net: t.Net - o.Net}
}

// DayFormat is the layout of a DayMove's day: the UTC calendar day.
const DayFormat = "2006-01-02"

// DayMove is the money an order's facts moved on one UTC day.
type DayMove struct {
	Day   string `json:"day"` // DayFormat, UTC
	Money Totals `json:"money"`
}

// State is an order's folded state.
type State struct {
	OrderID, BasketID string
	FullName, Email   *string
	Total             int64 // order total, minor units

	Status         Status
	PreviousStatus Status
	StatusReason   string

	Money         Totals
	PendingRefund int64 // provider settlement: the refund in flight while REFUNDING
	// Books are Money as double-entry balances (journal.go): each step
	// posts its money change, and the first fulfilment earns the revenue.
	Books Books

	// ConversationID is the checkout's conversation: the placement
	// time-outs the ledger appends continue it.
	ConversationID string

	PlacementAttempts int       // PlaceOrderCommands sent so far
	PlacementDeadline time.Time // zero: no placement clock running

	Held    []Event             // facts waiting for a prerequisite, in arrival order
	Ignored []Ignored           // facts that can never apply, with reasons
	Applied map[string]struct{} // ids of every fact seen (applied, held or ignored)
	Flags   []Flag              // money problems (refund above captured, refund/chargeback overlap)
	LastAt  time.Time           // latest fact time seen

	CreatedAt time.Time // the checkout fact's time; zero before the checkout
	// Days splits Money by the UTC day of the fact that moved it, oldest
	// day first, one entry per day; they sum to Money. Facts a fact
	// releases count on the releasing fact's day: that is when the money
	// moved for the ledger.
	Days []DayMove
}

// Ignored is a fact kept for the audit that can never apply.
type Ignored struct {
	Event  Event
	Reason string
}

// Flag marks a fact an operator should look at; the fact did not move money.
type Flag struct {
	EventID string
	Type    FactType
	Reason  string
}

// Disposition says what Evolve did with an event.
type Disposition string

// Dispositions.
const (
	DispApplied   Disposition = "applied"
	DispHeld      Disposition = "held"
	DispIgnored   Disposition = "ignored"
	DispDuplicate Disposition = "duplicate"
)

// AccelByte order event names.
const (
	EventOrderCreated            = "orderCreated"
	EventOrderCancelled          = "orderCancelled"
	EventOrderExpired            = "orderExpired"
	EventOrderCharged            = "orderCharged"
	EventOrderFulfilled          = "orderFulfilled"
	EventOrderFulfillFailed      = "orderFulfillFailed"
	EventOrderRefundRequested    = "orderRefundRequested"
	EventOrderRefunded           = "orderRefunded"
	EventOrderRefundFailed       = "orderRefundFailed"
	EventOrderChargeback         = "orderChargeback"
	EventOrderChargebackReversed = "orderChargebackReversed"
	EventOrderStatusUpdated      = "orderStatusUpdated"
)

// BookWorm commands the ledger sends.
const (
	CommandPlaceOrder           = "PlaceOrderCommand"
	CommandDeleteBasketComplete = "DeleteBasketCompleteCommand"
	CommandDeleteBasketFailed   = "DeleteBasketFailedCommand"
	CommandCompleteOrder        = "CompleteOrderCommand"
	CommandCancelOrder          = "CancelOrderCommand"
)

// AccelByteEvents and Commands list the outbound names.
func AccelByteEvents() []string {
	return []string{EventOrderCreated, EventOrderCancelled, EventOrderExpired, EventOrderCharged, EventOrderFulfilled,
		EventOrderFulfillFailed, EventOrderRefundRequested, EventOrderRefunded, EventOrderRefundFailed,
		EventOrderChargeback, EventOrderChargebackReversed, EventOrderStatusUpdated}
}

// Commands lists the BookWorm commands.
func Commands() []string {
	return []string{CommandPlaceOrder, CommandDeleteBasketComplete, CommandDeleteBasketFailed, CommandCompleteOrder, CommandCancelOrder}
}

// Transition is one lifecycle step and what it sends.
type Transition struct {
	From, To   Status
	Cause      Event  // the fact that caused it (for a released held fact: that fact)
	Reason     string // AccelByte statusReason
	AccelByte  string // event name, "" if none
	Command    string // BookWorm command, "" if none or suppressed by the guard
	Suppressed string // the command the notification guard withheld, if any
}

// Outcome is what Evolve did with one event. Transitions include those of
// held facts the event released.
type Outcome struct {
	Disposition Disposition
	Reason      string
	Transitions []Transition
	Flags       []Flag
	Postings    []Posting // the journal lines of the step (its money change, its first fulfilment), nil when none
}

// Evolve applies one event to s. It is pure: it never changes s's slices or
// map (they are copied on write), reads no clock and is deterministic.
func Evolve(r Rules, s State, e Event) (State, Outcome) {
	var out Outcome
	m := machine{r: r.norm(), s: s, out: &out}
	m.step(e)
	return m.s, out
}

// Fold folds events, in stream order, from the empty state.
func Fold(r Rules, events []Event) State {
	m := machine{r: r.norm(), owned: true, daysOwned: true}
	m.s.Applied = make(map[string]struct{}, len(events))
	for _, e := range events {
		m.step(e)
	}
	return m.s
}

// Folder folds a stream incrementally, owning its state: each Apply updates
// it in place (no copies), so it is the cheap way to follow a stream and
// still get each event's Outcome. Not safe for concurrent use.
type Folder struct{ m machine }

// NewFolder starts from s (copied, so s stays untouched).
func NewFolder(r Rules, s State) *Folder {
	f := &Folder{m: machine{r: r.norm(), s: s}}
	f.m.own()
	return f
}

// Apply folds e and returns what happened.
func (f *Folder) Apply(e Event) Outcome {
	var out Outcome
	f.m.out = &out
	f.m.step(e)
	f.m.out = nil
	return out
}

// Fold folds e as Apply does without recording what happened: for a
// replay, which keeps only the state.
func (f *Folder) Fold(e Event) { f.m.step(e) }

// State returns a copy of the current state.
func (f *Folder) State() State { return f.m.s.clone() }

// Final returns the current state without copying it, for a fold that
// is done: f must not be used after.
func (f *Folder) Final() State { return f.m.s }

func (s State) clone() State {
	s.Applied = maps.Clone(s.Applied)
	s.Held = slices.Clone(s.Held)
	s.Ignored = slices.Clone(s.Ignored)
	s.Flags = slices.Clone(s.Flags)
	s.Days = slices.Clone(s.Days)
	return s
}

// machine evolves a state in place. Unless owned, the state's map and
// slices are shared with the caller and are copied before the first write.
type machine struct {
	r     Rules
	s     State
	owned bool
	// daysOwned: s.Days is the machine's own (addDay copies it first).
	daysOwned bool
	out       *Outcome // nil: nobody wants the outcome (Fold)
	// fulfilled: the step moved the order to FULFILLED (the books earn
	// its revenue).
	fulfilled bool
}

func (m *machine) own() {
	if m.owned {
		return
	}
	m.owned = true
	if m.s.Applied == nil {
		m.s.Applied = make(map[string]struct{}, 8)
	} else {
		m.s.Applied = maps.Clone(m.s.Applied)
	}
	m.s.Held = slices.Clone(m.s.Held) // removals write in place
	m.s.Ignored = slices.Clip(m.s.Ignored)
	m.s.Flags = slices.Clip(m.s.Flags)
}

func (m *machine) step(e Event) {
	if e.ID == "" {
		m.own()
		m.s.Ignored = append(m.s.Ignored, Ignored{Event: e, Reason: "event has no id"})
		m.result(DispIgnored, "event has no id")
		return
	}
	if _, dup := m.s.Applied[e.ID]; dup {
		m.result(DispDuplicate, "event already seen")
		return
	}
	m.own()
	m.s.Applied[e.ID] = struct{}{}
	if e.Fact.At.After(m.s.LastAt) {
		m.s.LastAt = e.Fact.At
	}
	before := m.s.Money
	m.fulfilled = false
	d, reason := m.try(&e)
	switch d {
	case DispApplied:
		m.release()
	case DispHeld:
		if m.s.Held == nil {
			m.s.Held = make([]Event, 0, 4)
		}
		m.s.Held = append(m.s.Held, e)
	case DispIgnored:
		if m.s.Ignored == nil {
			m.s.Ignored = make([]Ignored, 0, 4)
		}
		m.s.Ignored = append(m.s.Ignored, Ignored{Event: e, Reason: reason})
	}
	if m.s.Money != before {
		m.addDay(e.Fact.At, m.s.Money.Sub(before))
	}
	if m.s.Money != before || m.fulfilled && !m.s.Books.Recognized {
		m.book(m.s.Money.Sub(before))
	}
	m.result(d, reason)
}

// book posts a step's money change to the books; the postings go to the
// outcome only when one is wanted, so Fold does not allocate for them.
func (m *machine) book(delta Totals) {
	j := m.s.Books.post(delta, m.fulfilled)
	if m.out != nil && j.n > 0 {
		m.out.Postings = append(m.out.Postings, j.lines[:j.n]...)
	}
}

// addDay adds delta to the day of at, keeping Days sorted with one entry
// per day. Facts mostly come in date order, so the search starts from the
// last day; only a new day's name is allocated.
func (m *machine) addDay(at time.Time, delta Totals) {
	if !m.daysOwned {
		m.s.Days = slices.Clone(m.s.Days) // shared with the caller: a day is added to in place
		m.daysOwned = true
	}
	var buf [len(DayFormat)]byte
	day := at.UTC().AppendFormat(buf[:0], DayFormat)
	days := m.s.Days
	i := len(days)
	for i > 0 && string(day) < days[i-1].Day {
		i--
	}
	if i > 0 && string(day) == days[i-1].Day {
		days[i-1].Money = days[i-1].Money.Add(delta)
		return
	}
	m.s.Days = slices.Insert(days, i, DayMove{Day: string(day), Money: delta})
}

func (m *machine) result(d Disposition, reason string) {
	if m.out != nil {
		m.out.Disposition, m.out.Reason = d, reason
	}
}

// release retries held facts after a change, oldest first, until none applies.
func (m *machine) release() {
	for progress := true; progress; {
		progress = false
		for i := range m.s.Held {
			h := m.s.Held[i]
			d, reason := m.try(&h)
			if d == DispHeld {
				continue
			}
			m.s.Held = slices.Delete(m.s.Held, i, i+1)
			if d == DispIgnored {
				m.s.Ignored = append(m.s.Ignored, Ignored{Event: h, Reason: reason})
			}
			progress = true
			break
		}
	}
}

func (m *machine) transition(e *Event, to Status, reason, event, command, suppressed string) {
	from := m.s.Status
	if to == StatusFulfilled {
		m.fulfilled = true
	}
	if from != to {
		m.s.PreviousStatus = from
		m.s.Status = to
		m.s.StatusReason = reason
	}
	if m.out != nil {
		m.out.Transitions = append(m.out.Transitions, Transition{From: from, To: to, Cause: *e, Reason: reason,
			AccelByte: event, Command: command, Suppressed: suppressed})
	}
}

func (m *machine) flag(e *Event, reason string) {
	fl := Flag{EventID: e.ID, Type: e.Fact.Type, Reason: reason}
	m.s.Flags = append(m.s.Flags, fl)
	if m.out != nil {
		m.out.Flags = append(m.out.Flags, fl)
	}
}

func (m *machine) money(minor int64) string { return FormatMinor(minor, m.r.Currency.Decimals) }

func (m *machine) setNet() {
	t := &m.s.Money
	t.Net = t.Captured - t.Refunded - t.ChargedBack + t.Reversed
}

// guarded returns the notification command, or "" and the withheld name:
// BookWorm notifies only when both e-mail and full name are non-blank.
func (m *machine) guarded(command string) (send, suppressed string) {
	if CanNotify(m.s.FullName, m.s.Email) {
		return command, ""
	}
	return "", command
}

// CanNotify is BookWorm's guard: both e-mail and full name present and not
// blank (C# string.IsNullOrWhiteSpace).
func CanNotify(fullName, email *string) bool {
	return fullName != nil && email != nil && strings.TrimSpace(*fullName) != "" && strings.TrimSpace(*email) != ""
}

// The AccelByte statusReason of each transition: what happened, in words a
// person reads (specs/lifecycle.md lists them). A fact that gives its own
// reason (payment facts, fulfilment failures, refund requests) adds it
// after a colon.
const (
	ReasonCheckedOut          = "checked out: order placed"
	ReasonCharged             = "basket deleted: payment captured"
	ReasonBasketDeleteFailed  = "basket deletion failed: order cancelled"
	ReasonCancelledBeforePay  = "order cancelled before payment"
	ReasonFulfilled           = "order completed: fulfilled"
	ReasonFulfillFailed       = "fulfilment failed"
	ReasonCancelRefund        = "order cancelled: refund requested"
	ReasonCancelRefunded      = "order cancelled: refunded"
	ReasonRefundRequested     = "refund requested"
	ReasonRefundedImmediately = "refund settled immediately"
	ReasonRefunded            = "refund settled by provider"
	ReasonRefundFailed        = "refund failed"
	ReasonChargeback          = "chargeback received"
	ReasonChargebackReversed  = "chargeback reversed"
	reasonExpiredFormat       = "placement expired after %d attempts"
	reasonResentFormat        = "placement re-sent after time-out %d"
	reasonRestatedPrefix      = "restated after replay "
)

// because is base, with the fact's own reason after a colon when it has one.
func because(base string, f *Fact) string {
	if r := strings.TrimSpace(f.Reason); r != "" {
		return base + ": " + r
	}
	return base
}

const (
	whyNotCreated = "order not checked out yet"
	whyNotCharged = "order not charged yet"
	whyClosed     = "order is closed"
)

var whyStatusText = func() map[Status]string {
	m := map[Status]string{}
	for _, st := range Statuses() {
		m[st] = "not applicable to an order in " + string(st)
	}
	return m
}()

func whyStatus(st Status) string { return whyStatusText[st] }

// try decides one fact against the current state, applying it when it can:
// the checks every fact passes, then the method of its type.
func (m *machine) try(e *Event) (Disposition, string) {
	f := &e.Fact
	info, ok := infoOf(f.Type)
	if !ok {
		return DispIgnored, fmt.Sprintf("unknown fact type %q", clip(string(f.Type)))
	}
	// Facts come validated (codec.DecodeMessage, codec.DecodeFact); these
	// cheap checks keep a hand-built bad fact from moving money.
	if f.Amount < 0 || info.amount == AmountRequired && !f.HasAmount || !f.HasAmount && f.Amount != 0 ||
		f.HasAmount && f.Amount == 0 && info.provider {
		return DispIgnored, "invalid fact: bad amount"
	}
	if m.s.OrderID != "" && f.OrderID != m.s.OrderID {
		return DispIgnored, fmt.Sprintf("fact for order %s in the stream of order %s", clip(f.OrderID), m.s.OrderID)
	}
	st := m.s.Status
	if st == "" && f.Type != FactUserCheckedOut {
		if f.Type == FactOrderRestated && f.Restated == nil {
			return DispIgnored, "restatement without content"
		}
		return DispHeld, whyNotCreated
	}
	switch f.Type {
	case FactUserCheckedOut:
		return m.checkedOut(e)
	case FactPlacementTimedOut:
		return m.placementTimedOut(e)
	case FactBasketDeletedComplete:
		return m.basketDeleted(e)
	case FactBasketDeletedFailed:
		return m.basketDeleteFailed(e)
	case FactOrderCompleted:
		return m.completed(e)
	case FactOrderCancelled:
		return m.cancelled(e)
	case FactOrderRefundRequested:
		return m.refundRequested(e)
	case FactPaymentRefunded:
		return m.refunded(e)
	case FactPaymentRefundFailed:
		return m.refundFailed(e)
	case FactPaymentChargeback:
		return m.chargeback(e)
	case FactPaymentChargebackReversed:
		return m.chargebackReversed(e)
	case FactOrderFulfillFailed:
		return m.fulfillFailed(e)
	case FactOrderRestated:
		return m.restated(e)
	}
	return DispIgnored, fmt.Sprintf("unknown fact type %q", clip(string(f.Type)))
}

// checkedOut creates the order and starts the placement clock.
func (m *machine) checkedOut(e *Event) (Disposition, string) {
	f := &e.Fact
	st := m.s.Status
	if st != "" {
		return DispIgnored, "order already checked out"
	}
	m.s.OrderID, m.s.BasketID = f.OrderID, f.BasketID
	m.s.FullName, m.s.Email = f.FullName, f.Email
	m.s.Total = f.Amount
	m.s.CreatedAt = f.At
	m.s.ConversationID = e.Conversation()
	m.s.PlacementAttempts = 1
	m.s.PlacementDeadline = f.At.Add(m.r.PlacementTimeout)
	m.transition(e, StatusInit, because(ReasonCheckedOut, f), EventOrderCreated, CommandPlaceOrder, "")
	return DispApplied, ""
}

// placementTimedOut re-sends PlaceOrderCommand, or expires the order
// after the last attempt.
func (m *machine) placementTimedOut(e *Event) (Disposition, string) {
	f := &e.Fact
	st := m.s.Status
	if st != StatusInit {
		return DispIgnored, "placement clock stopped: order is " + string(st)
	}
	if m.s.PlacementDeadline.IsZero() {
		return DispIgnored, "placement clock stopped"
	}
	switch {
	case f.Attempt < m.s.PlacementAttempts:
		return DispIgnored, fmt.Sprintf("time-out %d already counted", f.Attempt)
	case f.Attempt > m.s.PlacementAttempts:
		return DispHeld, fmt.Sprintf("waits for time-out %d", m.s.PlacementAttempts)
	case f.At.Before(m.s.PlacementDeadline):
		return DispIgnored, "time-out before the deadline " + m.s.PlacementDeadline.Format(time.RFC3339Nano)
	}
	if m.s.PlacementAttempts < m.r.MaxPlacementAttempts {
		m.s.PlacementAttempts++
		m.s.PlacementDeadline = f.At.Add(m.r.PlacementTimeout)
		reason := ""
		if m.out != nil { // the state keeps no reason for INIT -> INIT
			reason = fmt.Sprintf(reasonResentFormat, f.Attempt)
		}
		m.transition(e, StatusInit, reason, "", CommandPlaceOrder, "")
		return DispApplied, ""
	}
	m.s.PlacementDeadline = time.Time{}
	send, withheld := m.guarded(CommandCancelOrder)
	m.transition(e, StatusClosed, fmt.Sprintf(reasonExpiredFormat, m.s.PlacementAttempts), EventOrderExpired, send, withheld)
	return DispApplied, ""
}

// basketDeleted is the charge: INIT -> CHARGED.
func (m *machine) basketDeleted(e *Event) (Disposition, string) {
	f := &e.Fact
	st := m.s.Status
	if st == StatusInit {
		m.stopClock()
		if f.Amount != m.s.Total {
			m.flag(e, fmt.Sprintf("charged total %s differs from the checkout total %s", m.money(f.Amount), m.money(m.s.Total)))
		}
		m.s.Total = f.Amount
		m.s.Money.Captured = f.Amount
		m.setNet()
		m.transition(e, StatusCharged, because(ReasonCharged, f), EventOrderCharged, CommandDeleteBasketComplete, "")
		return DispApplied, ""
	}
	if st == StatusClosed {
		m.flag(e, "basket deleted (charge) after the order closed")
		return DispIgnored, whyClosed
	}
	return DispIgnored, "order already charged"
}

// basketDeleteFailed cancels the order before the charge.
func (m *machine) basketDeleteFailed(e *Event) (Disposition, string) {
	f := &e.Fact
	st := m.s.Status
	if st == StatusInit {
		m.stopClock()
		m.s.Email = f.Email
		m.transition(e, StatusClosed, because(ReasonBasketDeleteFailed, f), EventOrderCancelled, CommandDeleteBasketFailed, "")
		return DispApplied, ""
	}
	if st == StatusClosed {
		return DispIgnored, whyClosed
	}
	return DispIgnored, "order already charged"
}

// completed fulfils a charged order.
func (m *machine) completed(e *Event) (Disposition, string) {
	f := &e.Fact
	st := m.s.Status
	switch st {
	case StatusInit:
		m.stopClock()
		return DispHeld, whyNotCharged
	case StatusCharged, StatusFulfillFailed:
		m.s.FullName, m.s.Email = f.FullName, f.Email
		send, withheld := m.guarded(CommandCompleteOrder)
		m.transition(e, StatusFulfilled, because(ReasonFulfilled, f), EventOrderFulfilled, send, withheld)
		return DispApplied, ""
	case StatusFulfilled:
		return DispIgnored, "order already fulfilled"
	case StatusClosed:
		return DispIgnored, whyClosed
	}
	return DispIgnored, whyStatus(st)
}

// cancelled closes an order before the charge and refunds what is still
// captured after it.
func (m *machine) cancelled(e *Event) (Disposition, string) {
	f := &e.Fact
	st := m.s.Status
	switch st {
	case StatusInit:
		m.stopClock()
		m.s.FullName, m.s.Email = f.FullName, f.Email
		send, withheld := m.guarded(CommandCancelOrder)
		m.transition(e, StatusClosed, because(ReasonCancelledBeforePay, f), EventOrderCancelled, send, withheld)
		return DispApplied, ""
	case StatusCharged, StatusFulfilled, StatusFulfillFailed, StatusChargebackReversed, StatusRefundFailed:
		// The guard reads the names the cancel carries, as BookWorm maps them first.
		prevName, prevEmail := m.s.FullName, m.s.Email
		m.s.FullName, m.s.Email = f.FullName, f.Email
		send, withheld := m.guarded(CommandCancelOrder)
		d, why := m.requestRefund(e, m.s.Money.outstanding(), send, withheld)
		if d != DispApplied {
			m.s.FullName, m.s.Email = prevName, prevEmail
		}
		return d, why
	}
	return m.noRefund(e, st, "cancel")
}

// refundRequested refunds the amount asked, or all that is still captured.
func (m *machine) refundRequested(e *Event) (Disposition, string) {
	f := &e.Fact
	st := m.s.Status
	switch st {
	case StatusInit:
		return DispHeld, whyNotCharged
	case StatusCharged, StatusFulfilled, StatusFulfillFailed, StatusChargebackReversed, StatusRefundFailed:
		amount := m.s.Money.outstanding()
		if f.HasAmount {
			amount = f.Amount
		}
		return m.requestRefund(e, amount, "", "")
	}
	return m.noRefund(e, st, "refund requested")
}

// noRefund says why an order in st starts no refund for what (a cancel
// or a refund request).
func (m *machine) noRefund(e *Event, st Status, what string) (Disposition, string) {
	switch st {
	case StatusChargeback:
		m.flag(e, what+" during a chargeback: the money was already paid back by the chargeback")
		return DispIgnored, "order is charged back"
	case StatusRefunding:
		return DispIgnored, "refund already in progress"
	case StatusRefunded:
		return DispIgnored, "order already refunded"
	}
	return DispIgnored, whyClosed
}

// refunded settles the refund in progress (provider settlement).
func (m *machine) refunded(e *Event) (Disposition, string) {
	f := &e.Fact
	st := m.s.Status
	if m.r.RefundSettlement == SettleImmediate {
		return DispIgnored, "refunds settle immediately (refund settlement immediate)"
	}
	switch st {
	case StatusRefunding:
		if f.Amount > m.s.Money.outstanding() {
			m.flag(e, fmt.Sprintf("refund %s above the %s still captured", m.money(f.Amount), m.money(m.s.Money.outstanding())))
			return DispIgnored, "refund above what was captured"
		}
		if f.Amount != m.s.PendingRefund {
			m.flag(e, fmt.Sprintf("refunded %s, requested %s", m.money(f.Amount), m.money(m.s.PendingRefund)))
		}
		m.s.Money.Refunded += f.Amount
		m.setNet()
		m.s.PendingRefund = 0
		m.transition(e, StatusRefunded, because(ReasonRefunded, f), EventOrderRefunded, "", "")
		return DispApplied, ""
	case StatusRefunded:
		m.flag(e, "second refund result for a refunded order")
		return DispIgnored, "order already refunded"
	case StatusClosed:
		return DispIgnored, whyClosed
	}
	return DispHeld, "no refund in progress yet"
}

// refundFailed ends the refund in progress without money moving (provider
// settlement).
func (m *machine) refundFailed(e *Event) (Disposition, string) {
	f := &e.Fact
	st := m.s.Status
	if m.r.RefundSettlement == SettleImmediate {
		return DispIgnored, "refunds settle immediately (refund settlement immediate)"
	}
	switch st {
	case StatusRefunding:
		m.s.PendingRefund = 0
		m.transition(e, StatusRefundFailed, because(ReasonRefundFailed, f), EventOrderRefundFailed, "", "")
		return DispApplied, ""
	case StatusRefunded:
		return DispIgnored, "order already refunded"
	case StatusClosed:
		return DispIgnored, whyClosed
	}
	return DispHeld, "no refund in progress yet"
}

// chargeback pays money back to the buyer, up to what is still captured.
func (m *machine) chargeback(e *Event) (Disposition, string) {
	f := &e.Fact
	st := m.s.Status
	switch st {
	case StatusInit:
		return DispHeld, whyNotCharged
	case StatusCharged, StatusFulfilled, StatusFulfillFailed, StatusChargebackReversed, StatusRefundFailed:
		if out := m.s.Money.outstanding(); f.Amount > out {
			m.flag(e, fmt.Sprintf("chargeback %s above the %s not yet paid back", m.money(f.Amount), m.money(out)))
			return DispIgnored, "chargeback above what is still captured"
		}
		m.s.Money.ChargedBack += f.Amount
		m.setNet()
		m.transition(e, StatusChargeback, because(ReasonChargeback, f), EventOrderChargeback, "", "")
		return DispApplied, ""
	case StatusRefunding:
		return DispHeld, "refund in progress; waits for its result"
	case StatusRefunded:
		m.flag(e, "chargeback on a refunded order: the same money would be paid back twice")
		return DispIgnored, "order already refunded"
	case StatusChargeback:
		m.flag(e, "second chargeback while charged back")
		return DispIgnored, "order already charged back"
	}
	return DispIgnored, whyClosed
}

// chargebackReversed gives the merchant back charged-back money.
func (m *machine) chargebackReversed(e *Event) (Disposition, string) {
	f := &e.Fact
	st := m.s.Status
	switch st {
	case StatusChargeback:
		if open := m.s.Money.ChargedBack - m.s.Money.Reversed; f.Amount > open {
			m.flag(e, fmt.Sprintf("reversal %s above the %s charged back", m.money(f.Amount), m.money(open)))
			return DispIgnored, "reversal above the chargeback"
		}
		m.s.Money.Reversed += f.Amount
		m.setNet()
		m.transition(e, StatusChargebackReversed, because(ReasonChargebackReversed, f), EventOrderChargebackReversed, "", "")
		return DispApplied, ""
	case StatusRefunded:
		return DispIgnored, "order already refunded"
	case StatusClosed:
		return DispIgnored, whyClosed
	}
	return DispHeld, "no chargeback yet"
}

// fulfillFailed marks a charged order whose fulfilment failed.
func (m *machine) fulfillFailed(e *Event) (Disposition, string) {
	f := &e.Fact
	st := m.s.Status
	switch st {
	case StatusInit:
		return DispHeld, whyNotCharged
	case StatusCharged:
		m.transition(e, StatusFulfillFailed, because(ReasonFulfillFailed, f), EventOrderFulfillFailed, "", "")
		return DispApplied, ""
	case StatusFulfillFailed:
		return DispIgnored, "fulfilment already failed"
	case StatusClosed:
		return DispIgnored, whyClosed
	}
	return DispIgnored, whyStatus(st)
}

// restated tells the world what a replay changed.
func (m *machine) restated(e *Event) (Disposition, string) {
	f := &e.Fact
	st := m.s.Status
	r := f.Restated
	if r == nil {
		return DispIgnored, "restatement without content"
	}
	if r.Status != st {
		m.flag(e, fmt.Sprintf("restatement says %s, the fold derives %s", r.Status, st))
	}
	reason := r.Reason
	if reason == "" {
		reason = reasonRestatedPrefix + r.ReplayID
	}
	// The fold already reflects the fix; the restatement tells the world
	// what changed since it last heard (From = what it was told).
	if m.out != nil {
		m.out.Transitions = append(m.out.Transitions, Transition{From: r.PreviousStatus, To: st, Cause: *e,
			Reason: reason, AccelByte: EventOrderStatusUpdated})
	}
	return DispApplied, ""
}

func (m *machine) stopClock() { m.s.PlacementDeadline = time.Time{} }

// requestRefund moves the order to REFUNDING and, with immediate
// settlement, straight on to REFUNDED. A refund above what is still
// captured is flagged and not applied.
func (m *machine) requestRefund(e *Event, amount int64, send, withheld string) (Disposition, string) {
	if out := m.s.Money.outstanding(); amount > out {
		m.flag(e, fmt.Sprintf("refund %s above the %s still captured", m.money(amount), m.money(out)))
		return DispIgnored, "refund above what was captured"
	}
	f := &e.Fact
	requested, settled := ReasonRefundRequested, ReasonRefundedImmediately
	if f.Type == FactOrderCancelled {
		requested, settled = ReasonCancelRefund, ReasonCancelRefunded
	}
	m.transition(e, StatusRefunding, because(requested, f), EventOrderRefundRequested, send, withheld)
	if m.r.RefundSettlement == SettleImmediate {
		m.s.Money.Refunded += amount
		m.setNet()
		m.transition(e, StatusRefunded, because(settled, f), EventOrderRefunded, "", "")
		return DispApplied, ""
	}
	m.s.PendingRefund = amount
	return DispApplied, ""
}
