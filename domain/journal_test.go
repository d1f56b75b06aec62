package domain_test

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/bookworm-ledger/ledger/domain"
)

const (
	acctClearing    = domain.AccountPaymentsClearing
	acctDeferred    = domain.AccountDeferredRevenue
	acctRevenue     = domain.AccountRevenue
	acctRefunds     = domain.AccountRefunds
	acctChargebacks = domain.AccountChargebacks
)

// postPair is the two lines of one movement: x from dr's debit to cr's credit.
func postPair(kind domain.Entry, dr, cr domain.Account, x int64) []domain.Posting {
	return []domain.Posting{{Account: dr, Side: domain.Debit, Amount: x, Entry: kind},
		{Account: cr, Side: domain.Credit, Amount: x, Entry: kind}}
}

func postLines(pairs ...[]domain.Posting) []domain.Posting {
	var out []domain.Posting
	for _, p := range pairs {
		out = append(out, p...)
	}
	return out
}

// booksOf builds balances from account/amount pairs (debit positive).
func booksOf(recognized bool, kv ...any) domain.Books {
	b := domain.Books{Recognized: recognized}
	for i := 0; i < len(kv); i += 2 {
		b.Balance[kv[i].(domain.Account)] = int64(kv[i+1].(int))
	}
	return b
}

var (
	booksCaptured = booksOf(false, acctClearing, 9999, acctDeferred, -9999)
	booksEarned   = booksOf(true, acctClearing, 9999, acctRevenue, -9999)
)

func TestPostRules(t *testing.T) {
	cases := []struct {
		name      string
		from      domain.Books
		delta     domain.Totals
		fulfilled bool
		want      []domain.Posting
		after     domain.Books
	}{
		{"capture", domain.Books{}, domain.Totals{Captured: 9999, Net: 9999}, false,
			postPair(domain.EntryCapture, acctClearing, acctDeferred, 9999), booksCaptured},
		{"fulfilment earns the deferred balance", booksCaptured, domain.Totals{}, true,
			postPair(domain.EntryRecognition, acctDeferred, acctRevenue, 9999), booksEarned},
		{"a second fulfilment posts nothing", booksEarned, domain.Totals{}, true, nil, booksEarned},
		{"fulfilment with nothing deferred only marks the books", domain.Books{}, domain.Totals{}, true, nil, booksOf(true)},
		{"refund before fulfilment comes off deferred revenue", booksCaptured, domain.Totals{Refunded: 4000, Net: -4000}, false,
			postPair(domain.EntryRefund, acctDeferred, acctClearing, 4000), booksOf(false, acctClearing, 5999, acctDeferred, -5999)},
		{"refund after fulfilment goes to refunds", booksEarned, domain.Totals{Refunded: 4000, Net: -4000}, false,
			postPair(domain.EntryRefund, acctRefunds, acctClearing, 4000), booksOf(true, acctClearing, 5999, acctRevenue, -9999, acctRefunds, 4000)},
		{"chargeback before fulfilment comes off deferred revenue", booksCaptured, domain.Totals{ChargedBack: 9999, Net: -9999}, false,
			postPair(domain.EntryChargeback, acctDeferred, acctClearing, 9999), booksOf(false)},
		{"chargeback after fulfilment goes to chargebacks", booksEarned, domain.Totals{ChargedBack: 9999, Net: -9999}, false,
			postPair(domain.EntryChargeback, acctChargebacks, acctClearing, 9999), booksOf(true, acctRevenue, -9999, acctChargebacks, 9999)},
		{"reversal before fulfilment goes back to deferred revenue", booksOf(false), domain.Totals{Reversed: 9999, Net: 9999}, false,
			postPair(domain.EntryReversal, acctClearing, acctDeferred, 9999), booksCaptured},
		{"reversal after fulfilment comes off chargebacks", booksOf(true, acctRevenue, -9999, acctChargebacks, 9999),
			domain.Totals{Reversed: 4000, Net: 4000}, false,
			postPair(domain.EntryReversal, acctClearing, acctChargebacks, 4000), booksOf(true, acctClearing, 4000, acctRevenue, -9999, acctChargebacks, 5999)},
		{"one step: capture, then fulfilment, then what is paid back", domain.Books{},
			domain.Totals{Captured: 9999, Refunded: 1000, ChargedBack: 2000, Reversed: 500, Net: 7499}, true,
			postLines(postPair(domain.EntryCapture, acctClearing, acctDeferred, 9999), postPair(domain.EntryRecognition, acctDeferred, acctRevenue, 9999),
				postPair(domain.EntryRefund, acctRefunds, acctClearing, 1000), postPair(domain.EntryChargeback, acctChargebacks, acctClearing, 2000),
				postPair(domain.EntryReversal, acctClearing, acctChargebacks, 500)),
			booksOf(true, acctClearing, 7499, acctRevenue, -9999, acctRefunds, 1000, acctChargebacks, 1500)},
		{"one step before fulfilment: everything through deferred revenue", domain.Books{},
			domain.Totals{Captured: 9999, Refunded: 1000, ChargedBack: 2000, Reversed: 500, Net: 7499}, false,
			postLines(postPair(domain.EntryCapture, acctClearing, acctDeferred, 9999), postPair(domain.EntryRefund, acctDeferred, acctClearing, 1000),
				postPair(domain.EntryChargeback, acctDeferred, acctClearing, 2000), postPair(domain.EntryReversal, acctClearing, acctDeferred, 500)),
			booksOf(false, acctClearing, 7499, acctDeferred, -7499)},
		{"a negative refund (taken back) flips the sides", booksOf(true, acctClearing, 5999, acctRevenue, -9999, acctRefunds, 4000),
			domain.Totals{Refunded: -4000, Net: 4000}, false, postPair(domain.EntryRefund, acctClearing, acctRefunds, 4000), booksEarned},
		{"a negative capture flips the sides", booksCaptured, domain.Totals{Captured: -9999, Net: -9999}, false,
			postPair(domain.EntryCapture, acctDeferred, acctClearing, 9999), booksOf(false)},
		{"recognition of a debit deferred balance flips the sides", booksOf(false, acctClearing, -100, acctDeferred, 100), domain.Totals{}, true,
			postPair(domain.EntryRecognition, acctRevenue, acctDeferred, 100), booksOf(true, acctClearing, -100, acctRevenue, 100)},
		{"nothing moved", booksCaptured, domain.Totals{}, false, nil, booksCaptured},
		{"Net is not read", booksCaptured, domain.Totals{Net: 123}, false, nil, booksCaptured},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			after, got := c.from.Post(c.delta, c.fulfilled)
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("postings\n got %+v\nwant %+v", got, c.want)
			}
			if after != c.after {
				t.Errorf("books\n got %+v\nwant %+v", after, c.after)
			}
			if after.Sum() != 0 && c.from.Sum() == 0 {
				t.Errorf("books stopped balancing: %+v", after)
			}
			if err := checkPostings(got); err != "" {
				t.Error(err)
			}
		})
	}
}

// checkPostings checks postings: positive amounts on chart accounts, a named
// entry, and debits == credits overall and per entry.
func checkPostings(ps []domain.Posting) string {
	per := map[domain.Entry]int64{}
	var sum int64
	for _, p := range ps {
		if p.Amount <= 0 || !p.Account.Valid() || p.Entry.String() == "" || strings.HasPrefix(p.Entry.String(), "entry(") {
			return "bad posting " + postingsJSON(p)
		}
		per[p.Entry] += p.Signed()
		sum += p.Signed()
	}
	for k, v := range per {
		if v != 0 {
			return "entry " + k.String() + " does not balance: " + postingsJSON(ps)
		}
	}
	if sum != 0 {
		return "postings do not balance: " + postingsJSON(ps)
	}
	return ""
}

func postingsJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return err.Error()
	}
	return string(b)
}

// TestFoldPostsEachStep: the outcome of each step carries its postings;
// State.Books add them up.
func TestFoldPostsEachStep(t *testing.T) {
	h := newHistory(orderA)
	h.checkout()
	h.charge()
	h.complete()
	h.pay(domain.FactPaymentChargeback, 4000)
	h.pay(domain.FactPaymentChargebackReversed, 4000)
	h.pay(domain.FactOrderRefundRequested, 0)
	h.complete() // ignored: posts nothing
	s, _, outs := evolveAll(t, immediate, h.events)
	want := [][]domain.Posting{
		nil,
		postPair(domain.EntryCapture, acctClearing, acctDeferred, 9999),
		postPair(domain.EntryRecognition, acctDeferred, acctRevenue, 9999),
		postPair(domain.EntryChargeback, acctChargebacks, acctClearing, 4000),
		postPair(domain.EntryReversal, acctClearing, acctChargebacks, 4000),
		postPair(domain.EntryRefund, acctRefunds, acctClearing, 9999),
		nil,
	}
	for i, out := range outs {
		if !reflect.DeepEqual(out.Postings, want[i]) {
			t.Errorf("step %d (%s): postings\n got %+v\nwant %+v", i, h.events[i].Fact.Type, out.Postings, want[i])
		}
	}
	if wantBooks := booksOf(true, acctRevenue, -9999, acctRefunds, 9999); s.Books != wantBooks {
		t.Errorf("books %+v, want %+v", s.Books, wantBooks)
	}
	if f := domain.Fold(immediate, h.events); f.Books != s.Books {
		t.Errorf("Fold books %+v, Evolve books %+v", f.Books, s.Books)
	}
}

// TestFoldBooksReleasedFacts: a completion and a refund request that
// overtook the charge are released by it; the charge's step posts the
// capture, the recognition and the refund in that order.
func TestFoldBooksReleasedFacts(t *testing.T) {
	h := newHistory(orderA)
	h.checkout()
	charge := h.charge()
	complete := h.complete()
	refund := h.pay(domain.FactOrderRefundRequested, 2500)
	events := []domain.Event{h.events[0], complete, refund, charge}
	s, _, outs := evolveAll(t, immediate, events)
	for i, out := range outs[:3] {
		if out.Postings != nil {
			t.Errorf("step %d posted %+v before the charge", i, out.Postings)
		}
	}
	want := postLines(postPair(domain.EntryCapture, acctClearing, acctDeferred, 9999), postPair(domain.EntryRecognition, acctDeferred, acctRevenue, 9999),
		postPair(domain.EntryRefund, acctRefunds, acctClearing, 2500))
	if !reflect.DeepEqual(outs[3].Postings, want) {
		t.Errorf("charge step postings\n got %+v\nwant %+v", outs[3].Postings, want)
	}
	if wantBooks := booksOf(true, acctClearing, 7499, acctRevenue, -9999, acctRefunds, 2500); s.Books != wantBooks || s.Books.Of(acctClearing) != s.Money.Net {
		t.Errorf("books %+v, want %+v (money %+v)", s.Books, wantBooks, s.Money)
	}
}

// TestFoldBooksUnfulfilledOrder: a refund before fulfilment comes off
// deferred revenue, nothing is earned; provider settlement books the
// refund when the provider settles it, not when it is requested.
func TestFoldBooksUnfulfilledOrder(t *testing.T) {
	h := newHistory(orderA)
	h.checkout()
	h.charge()
	h.pay(domain.FactOrderRefundRequested, 0)
	h.pay(domain.FactPaymentRefunded, 9999)
	s, _, outs := evolveAll(t, provider, h.events)
	if outs[2].Postings != nil {
		t.Errorf("refund request posted %+v before the provider settled", outs[2].Postings)
	}
	if want := postPair(domain.EntryRefund, acctDeferred, acctClearing, 9999); !reflect.DeepEqual(outs[3].Postings, want) {
		t.Errorf("settlement postings %+v, want %+v", outs[3].Postings, want)
	}
	if !s.Books.IsZero() {
		t.Errorf("a refunded unfulfilled order keeps books %+v", s.Books)
	}
}

// TestFolderModesKeepTheSameBooks: Folder.Fold (no outcome) keeps the
// books as Folder.Apply and Evolve do.
func TestFolderModesKeepTheSameBooks(t *testing.T) {
	h := newHistory(orderA)
	h.checkout()
	h.charge()
	h.pay(domain.FactPaymentChargeback, 9999)
	h.pay(domain.FactPaymentChargebackReversed, 5000)
	h.complete() // not applicable in CHARGEBACK_REVERSED: nothing booksEarned
	applied, folded := domain.NewFolder(immediate, domain.State{}), domain.NewFolder(immediate, domain.State{})
	var journal []domain.Posting
	for _, e := range h.events {
		journal = append(journal, applied.Apply(e).Postings...)
		folded.Fold(e)
		if a, f := applied.State().Books, folded.State().Books; a != f {
			t.Fatalf("after %s: Apply books %+v, Fold books %+v", e.Fact.Type, a, f)
		}
	}
	want := postLines(postPair(domain.EntryCapture, acctClearing, acctDeferred, 9999), postPair(domain.EntryChargeback, acctDeferred, acctClearing, 9999),
		postPair(domain.EntryReversal, acctClearing, acctDeferred, 5000))
	if !reflect.DeepEqual(journal, want) {
		t.Errorf("journal\n got %+v\nwant %+v", journal, want)
	}
	if got, wantBooks := folded.Final().Books, booksOf(false, acctClearing, 5000, acctDeferred, -5000); got != wantBooks {
		t.Errorf("books %+v, want %+v", got, wantBooks)
	}
}

func TestPostingJSON(t *testing.T) {
	p := domain.Posting{Account: acctDeferred, Side: domain.Credit, Amount: 9999, Entry: domain.EntryCapture}
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"account":"deferred_revenue","side":"credit","amount":9999,"entry":"capture"}`; string(b) != want {
		t.Errorf("posting JSON %s, want %s", b, want)
	}
	var back domain.Posting
	if err := json.Unmarshal(b, &back); err != nil || back != p {
		t.Errorf("round trip %+v %v", back, err)
	}
	if b, _ := json.Marshal(domain.Posting{Account: acctRevenue, Side: domain.Debit, Amount: 1}); strings.Contains(string(b), "entry") {
		t.Errorf("an unnamed entry is written: %s", b)
	}
	for _, bad := range []string{`{"account":"cash","side":"debit","amount":1}`, `{"account":"revenue","side":"left","amount":1}`,
		`{"account":"revenue","side":"debit","amount":1,"entry":"gift"}`} {
		if err := json.Unmarshal([]byte(bad), &back); err == nil {
			t.Errorf("%s accepted as %+v", bad, back)
		}
	}
	if _, err := json.Marshal(domain.Posting{Entry: domain.Entry(9)}); err == nil {
		t.Error("an entry outside the rules marshalled")
	}
}

func TestBooksJSON(t *testing.T) {
	b := booksOf(true, acctClearing, 5999, acctRevenue, -9999, acctRefunds, 4000)
	data, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"recognized":true,"balances":{"chargebacks":0,"deferred_revenue":0,"payments_clearing":5999,"refunds":4000,"revenue":-9999}}`
	if string(data) != want {
		t.Errorf("books JSON %s, want %s", data, want)
	}
	var back domain.Books
	if err := json.Unmarshal(data, &back); err != nil || back != b {
		t.Errorf("round trip %+v %v", back, err)
	}
	if err := json.Unmarshal([]byte(`{"balances":{"cash":1}}`), &back); err == nil {
		t.Error("unknown account accepted")
	}
}

func TestChart(t *testing.T) {
	want := []struct {
		name, code string
		normal     domain.Side
	}{{"payments_clearing", "1100", domain.Debit}, {"deferred_revenue", "2100", domain.Credit}, {"revenue", "4000", domain.Credit},
		{"refunds", "4100", domain.Debit}, {"chargebacks", "4200", domain.Debit}}
	accts := domain.Accounts()
	if len(accts) != domain.NumAccounts || len(want) != domain.NumAccounts {
		t.Fatalf("%d accounts", len(accts))
	}
	for i, a := range accts {
		if a.Name() != want[i].name || a.Code() != want[i].code || a.Normal() != want[i].normal || a.Title() == "" {
			t.Errorf("account %d: %s %s %s %q", i, a.Name(), a.Code(), a.Normal(), a.Title())
		}
		if back, ok := domain.LookupAccount(a.Name()); !ok || back != a {
			t.Errorf("lookup %s: %v %v", a.Name(), back, ok)
		}
	}
	if bad := domain.Account(domain.NumAccounts); bad.Valid() || bad.Code() != "" || (domain.Books{}).Of(bad) != 0 {
		t.Errorf("account %d treated as valid", bad)
	}
	x := booksOf(false, acctClearing, 10, acctDeferred, -10)
	if y := x.Add(x).Sub(x); y != x || x.Add(x).Of(acctClearing) != 20 {
		t.Errorf("Add/Sub: %+v", y)
	}
}
