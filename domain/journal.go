package domain

import (
	"encoding/json"
	"fmt"
)

// The books: every money movement of an order as balanced double-entry
// postings over a small chart of accounts, in the ledger's currency and
// minor units. The fold keeps each order's balances (State.Books); the
// postings of one fact are its Outcome.Postings.
//
// Revenue is earned when the order is fulfilled: money captured before
// that is owed to the customer (deferred revenue), and what a refund or
// chargeback takes back before it comes off the deferred balance; after
// it, off revenue through the contra accounts.
//
//	capture x            Dr payments_clearing x   Cr deferred_revenue x
//	fulfilment           Dr deferred_revenue d    Cr revenue d      (d: the deferred balance)
//	refund x             Dr refunds x (deferred_revenue before fulfilment)   Cr payments_clearing x
//	chargeback x         Dr chargebacks x (deferred_revenue before)          Cr payments_clearing x
//	chargeback reversed  Dr payments_clearing x   Cr chargebacks x (deferred_revenue before)
//
// So per order the clearing balance is the order's Net, and the other
// four accounts hold -Net between them: every order, and the sum of all
// of them, nets to zero.

// Account is one account of the chart.
type Account uint8

// The chart of accounts, in the order reports list them.
const (
	AccountPaymentsClearing Account = iota // asset: money taken through the payment provider
	AccountDeferredRevenue                 // liability: captured, not yet earned (order not fulfilled)
	AccountRevenue                         // income: earned at fulfilment
	AccountRefunds                         // contra-revenue: refunds of earned revenue
	AccountChargebacks                     // contra-revenue: chargebacks of earned revenue, net of reversals

	NumAccounts = 5
)

type accountInfo struct {
	name, code, title string
	normal            Side
}

var chart = [NumAccounts]accountInfo{
	{"payments_clearing", "1100", "Payments clearing", Debit},
	{"deferred_revenue", "2100", "Deferred revenue", Credit},
	{"revenue", "4000", "Revenue", Credit},
	{"refunds", "4100", "Refunds", Debit},
	{"chargebacks", "4200", "Chargebacks", Debit},
}

// Accounts returns the chart in report order.
func Accounts() []Account {
	return []Account{AccountPaymentsClearing, AccountDeferredRevenue, AccountRevenue, AccountRefunds, AccountChargebacks}
}

// Valid reports whether a is in the chart.
func (a Account) Valid() bool { return a < NumAccounts }

// Name is the account's identifier in JSON, CSV and the API.
func (a Account) Name() string {
	if !a.Valid() {
		return fmt.Sprintf("account(%d)", uint8(a))
	}
	return chart[a].name
}

// Code is the account's number in the chart.
func (a Account) Code() string {
	if !a.Valid() {
		return ""
	}
	return chart[a].code
}

// Title is the account's name for people.
func (a Account) Title() string {
	if !a.Valid() {
		return a.Name()
	}
	return chart[a].title
}

// Normal is the side the account's balance normally sits on.
func (a Account) Normal() Side {
	if !a.Valid() {
		return Debit
	}
	return chart[a].normal
}

func (a Account) String() string { return a.Name() }

// MarshalText writes the account's name.
func (a Account) MarshalText() ([]byte, error) {
	if !a.Valid() {
		return nil, fmt.Errorf("account %d is not in the chart", uint8(a))
	}
	return []byte(a.Name()), nil
}

// UnmarshalText reads an account's name.
func (a *Account) UnmarshalText(b []byte) error {
	acc, ok := LookupAccount(string(b))
	if !ok {
		return fmt.Errorf("unknown account %q", clip(b))
	}
	*a = acc
	return nil
}

// LookupAccount resolves an account's name.
func LookupAccount(name string) (Account, bool) {
	for i, info := range chart {
		if info.name == name {
			return Account(i), true
		}
	}
	return 0, false
}

// Side is the side of a posting.
type Side uint8

// Sides.
const (
	Debit Side = iota
	Credit
)

func (s Side) String() string {
	if s == Credit {
		return "credit"
	}
	return "debit"
}

// MarshalText writes "debit" or "credit".
func (s Side) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText reads "debit" or "credit".
func (s *Side) UnmarshalText(b []byte) error {
	switch string(b) {
	case "debit":
		*s = Debit
	case "credit":
		*s = Credit
	default:
		return fmt.Errorf("unknown side %q", clip(b))
	}
	return nil
}

// Entry names the rule a posting comes from, so the journal reads as
// "capture", "refund", ... and each kind can be summed on its own (a
// capture and a reversal before fulfilment post to the same accounts).
type Entry uint8

// Entries, in the order Post makes them; the zero Entry is unnamed.
const (
	EntryCapture     Entry = iota + 1 // money captured
	EntryRecognition                  // deferred revenue earned at fulfilment
	EntryRefund                       // money refunded
	EntryChargeback                   // money taken back by a chargeback
	EntryReversal                     // chargeback reversed: money back to the merchant
)

var entryNames = [...]string{"", "capture", "recognition", "refund", "chargeback", "reversal"}

func (e Entry) String() string {
	if int(e) < len(entryNames) {
		return entryNames[e]
	}
	return fmt.Sprintf("entry(%d)", uint8(e))
}

// MarshalText writes the entry's name.
func (e Entry) MarshalText() ([]byte, error) {
	if e == 0 || int(e) >= len(entryNames) {
		return nil, fmt.Errorf("entry %d is not a posting rule", uint8(e))
	}
	return []byte(entryNames[e]), nil
}

// UnmarshalText reads an entry's name.
func (e *Entry) UnmarshalText(b []byte) error {
	for i, name := range entryNames {
		if i > 0 && name == string(b) {
			*e = Entry(i)
			return nil
		}
	}
	return fmt.Errorf("unknown entry %q", clip(b))
}

// Posting is one line of a journal entry. Amount is positive, minor units.
type Posting struct {
	Account Account `json:"account"`
	Side    Side    `json:"side"`
	Amount  int64   `json:"amount"`
	Entry   Entry   `json:"entry,omitempty"` // the rule that made it
}

// Signed is the posting's effect on a balance kept debit-positive.
func (p Posting) Signed() int64 {
	if p.Side == Credit {
		return -p.Amount
	}
	return p.Amount
}

// Books are an order's account balances: debit positive, credit negative,
// so a balanced set sums to zero. Recognized is set once the order's
// revenue has been earned (its first fulfilment).
type Books struct {
	Balance    [NumAccounts]int64
	Recognized bool
}

// Of returns the balance of a (debit positive).
func (b Books) Of(a Account) int64 {
	if !a.Valid() {
		return 0
	}
	return b.Balance[a]
}

// Sum is the sum of every balance: zero when the books balance.
func (b Books) Sum() int64 {
	var s int64
	for _, v := range b.Balance {
		s += v
	}
	return s
}

// Add returns b's balances plus o's (Recognized is b's).
func (b Books) Add(o Books) Books {
	for i := range b.Balance {
		b.Balance[i] += o.Balance[i]
	}
	return b
}

// Sub returns b's balances minus o's (Recognized is b's).
func (b Books) Sub(o Books) Books {
	for i := range b.Balance {
		b.Balance[i] -= o.Balance[i]
	}
	return b
}

// IsZero reports whether every balance is zero and revenue not recognized.
func (b Books) IsZero() bool { return b == Books{} }

type booksJSON struct {
	Recognized bool             `json:"recognized,omitempty"`
	Balances   map[string]int64 `json:"balances"`
}

// MarshalJSON writes the balances by account name.
func (b Books) MarshalJSON() ([]byte, error) {
	out := booksJSON{Recognized: b.Recognized, Balances: make(map[string]int64, NumAccounts)}
	for _, a := range Accounts() {
		out.Balances[a.Name()] = b.Balance[a]
	}
	return json.Marshal(out)
}

// UnmarshalJSON reads what MarshalJSON writes.
func (b *Books) UnmarshalJSON(data []byte) error {
	var in booksJSON
	if err := json.Unmarshal(data, &in); err != nil {
		return err
	}
	*b = Books{Recognized: in.Recognized}
	for name, v := range in.Balances {
		a, ok := LookupAccount(name)
		if !ok {
			return fmt.Errorf("books: unknown account %q", clip(name))
		}
		b.Balance[a] = v
	}
	return nil
}

// maxPostings is the most postings one Post makes: two lines for each of
// capture, recognition, refund, chargeback and reversal.
const maxPostings = 10

// entry is what one Post writes, kept in an array so the fold can update
// the balances without allocating.
type entry struct {
	lines [maxPostings]Posting
	n     int
}

// line posts x from the debit of dr to the credit of cr; a negative x
// (a movement taken back) flips the sides, zero posts nothing.
func (j *entry) line(b *Books, kind Entry, dr, cr Account, x int64) {
	if x == 0 {
		return
	}
	if x < 0 {
		dr, cr, x = cr, dr, -x
	}
	b.Balance[dr] += x
	b.Balance[cr] -= x
	j.lines[j.n] = Posting{Account: dr, Side: Debit, Amount: x, Entry: kind}
	j.lines[j.n+1] = Posting{Account: cr, Side: Credit, Amount: x, Entry: kind}
	j.n += 2
}

// post applies the posting rules for a money change delta (and, when
// fulfilled, the order's fulfilment) to b, in rule order: captures, then
// recognition, then what is paid back, so money a step captures and pays
// back after the fulfilment comes off revenue.
func (b *Books) post(delta Totals, fulfilled bool) entry {
	var j entry
	j.line(b, EntryCapture, AccountPaymentsClearing, AccountDeferredRevenue, delta.Captured)
	if fulfilled && !b.Recognized {
		b.Recognized = true
		j.line(b, EntryRecognition, AccountDeferredRevenue, AccountRevenue, -b.Balance[AccountDeferredRevenue])
	}
	refunds, chargebacks := AccountRefunds, AccountChargebacks
	if !b.Recognized {
		refunds, chargebacks = AccountDeferredRevenue, AccountDeferredRevenue
	}
	j.line(b, EntryRefund, refunds, AccountPaymentsClearing, delta.Refunded)
	j.line(b, EntryChargeback, chargebacks, AccountPaymentsClearing, delta.ChargedBack)
	j.line(b, EntryReversal, AccountPaymentsClearing, chargebacks, delta.Reversed)
	return j
}

// Post books a money change delta of an order whose books are b (and,
// when fulfilled, its fulfilment): the new books and the postings, a
// debit and a credit of the same amount per movement, nil when nothing
// moved. Pure. delta.Net is not read: it follows from the other fields.
func (b Books) Post(delta Totals, fulfilled bool) (Books, []Posting) {
	j := b.post(delta, fulfilled)
	if j.n == 0 {
		return b, nil
	}
	return b, append([]Posting(nil), j.lines[:j.n]...)
}
