package codec_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bookworm-ledger/ledger/domain"
	"github.com/bookworm-ledger/ledger/domain/codec"
)

func TestCompactFactRoundTrip(t *testing.T) {
	at := time.Date(2025, 8, 1, 10, 0, 0, 123456789, time.UTC)
	name, email := "Zoë \"Q\" <x>", ""
	const id, basket = "1a2b24a2-e46b-4c48-a772-05d2f3801d6a", "1792f9ee-1df6-49e1-a788-fcac2055c7e2"
	facts := []domain.Fact{
		{Type: domain.FactUserCheckedOut, OrderID: id, BasketID: basket, FullName: &name, Email: &email, Amount: 9999, HasAmount: true, At: at},
		{Type: domain.FactPaymentRefunded, OrderID: id, Amount: 5, HasAmount: true, ProviderRef: "p-1", Reason: "r", At: at},
		{Type: domain.FactPlacementTimedOut, OrderID: id, Attempt: 3, At: at},
		{Type: domain.FactOrderRestated, OrderID: id, At: at, Restated: &domain.Restatement{Status: domain.StatusRefunded,
			PreviousStatus: domain.StatusFulfilled, Money: domain.Totals{Captured: 1, Net: -2}, ReplayID: "x", Reason: "y"}},
	}
	for _, f := range facts {
		data, err := codec.EncodeFact(f, domain.Currency{Code: "EUR", Decimals: 3})
		require.NoError(t, err)
		c, ok := codec.CompactFact(string(f.Type), data)
		require.True(t, ok, f.Type)
		assert.Less(t, len(c), len(data))
		got, err := codec.DecodeCompactFact(string(f.Type), c)
		require.NoError(t, err)
		want, err := codec.DecodeFact(string(f.Type), data)
		require.NoError(t, err)
		assert.Equal(t, want, got)
		back, err := codec.AppendFactJSON(nil, string(f.Type), c)
		require.NoError(t, err)
		assert.Equal(t, string(data), string(back))
		_, err = codec.DecodeCompactFact(string(f.Type), c[:len(c)-1])
		assert.ErrorIs(t, err, domain.ErrInvalidFact)
	}
	// Not the codec's own bytes: no compact form.
	_, ok := codec.CompactFact(string(domain.FactPlacementTimedOut), []byte(`{"orderId":"`+id+`", "attempt":1,"at":"2025-08-01T10:00:00Z"}`))
	assert.False(t, ok)
}

func BenchmarkDecodeCompactFact(b *testing.B) {
	name, email := "John Doe", "john@example.com"
	f := domain.Fact{Type: domain.FactUserCheckedOut, OrderID: "1a2b24a2-e46b-4c48-a772-05d2f3801d6a", BasketID: "1792f9ee-1df6-49e1-a788-fcac2055c7e2",
		FullName: &name, Email: &email, Amount: 9999, HasAmount: true, At: time.Date(2025, 8, 1, 10, 0, 0, 123e6, time.UTC)}
	data, err := codec.EncodeFact(f, domain.Currency{Code: "USD", Decimals: 2})
	require.NoError(b, err)
	c, ok := codec.CompactFact(string(f.Type), data)
	require.True(b, ok)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := codec.DecodeCompactFact(string(f.Type), c); err != nil {
			b.Fatal(err)
		}
	}
}

// A damaged compact record errs (or decodes): it never panics.
func FuzzDecodeCompactFact(f *testing.F) {
	name := "Zoë"
	fact := domain.Fact{Type: domain.FactUserCheckedOut, OrderID: "1a2b24a2-e46b-4c48-a772-05d2f3801d6a", BasketID: "1792f9ee-1df6-49e1-a788-fcac2055c7e2",
		FullName: &name, Amount: 9999, HasAmount: true, At: time.Date(2025, 8, 1, 10, 0, 0, 0, time.UTC)}
	data, err := codec.EncodeFact(fact, domain.Currency{Code: "USD", Decimals: 2})
	require.NoError(f, err)
	c, ok := codec.CompactFact(string(fact.Type), data)
	require.True(f, ok)
	f.Add(c)
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := codec.DecodeCompactFact(string(fact.Type), b)
		if err != nil {
			assert.ErrorIs(t, err, domain.ErrInvalidFact)
			return
		}
		assert.Equal(t, fact.Type, got.Type)
		_, err = codec.AppendFactJSON(nil, string(fact.Type), b)
		assert.NoError(t, err)
	})
}
