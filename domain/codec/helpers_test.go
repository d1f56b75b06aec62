package codec_test

import (
	"strings"
	"time"

	"github.com/bookworm-ledger/ledger/domain"
)

const (
	orderA  = "0198c0de-5a1e-7c3b-9f4e-2d6a8b1c3e5f"
	basketA = "0198c0dd-1f2e-7a4b-8c6d-0e1f2a3b4c5d"
)

var (
	t0  = time.Date(2025, 8, 1, 10, 0, 0, 123000000, time.UTC)
	usd = domain.DefaultCurrency()
)

func ptr(s string) *string { return &s }

func manyKeys(n int) string {
	var b strings.Builder
	for i := 0; i < n; i++ {
		b.WriteString(`,"k` + strings.Repeat("x", i) + `":1`)
	}
	return b.String()
}
