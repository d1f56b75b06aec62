package domain_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/bookworm-ledger/ledger/domain"
)

// Fold reaches the state Apply does, and Final is that state.
func TestFoldMatchesApply(t *testing.T) {
	h := newHistory(orderA)
	co := h.checkout()
	h.timeout(1, co.Fact.At.Add(30*time.Minute))
	h.complete() // before the charge: held
	h.charge()
	h.pay(domain.FactPaymentRefunded, 9999)
	h.add(co.Fact) // the same fact under a new id: ignored or flagged as Apply does
	applied := domain.NewFolder(domain.DefaultRules(), domain.State{})
	folded := domain.NewFolder(domain.DefaultRules(), domain.State{})
	for _, e := range h.events {
		applied.Apply(e)
		folded.Fold(e)
	}
	assert.Equal(t, applied.State(), folded.State())
	assert.Equal(t, applied.State(), folded.Final())
}
