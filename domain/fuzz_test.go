package domain_test

import (
	"errors"
	"math"
	"math/big"
	"regexp"
	"testing"

	"github.com/bookworm-ledger/ledger/domain"
)

var plainDecimal = regexp.MustCompile(`^-?[0-9]+(\.[0-9]+)?$`)

func FuzzParseAmount(f *testing.F) {
	for _, s := range []string{`100`, `99.99`, `"99.99"`, `"1.500"`, `1e3`, `"NaN"`, `"Infinity"`, `"+1"`, `""`, `" 1"`, `"0x1F"`,
		`-1`, `-0`, `"92233720368547758.07"`, `"92233720368547758.08"`, `0.000000000000000001`, `"1,5"`, `"١٢"`, `1.`, `.1`, `"\u0031"`} {
		f.Add(s, uint8(2))
	}
	f.Add(`123`, uint8(0))
	f.Add(`1.5`, uint8(18))
	f.Fuzz(func(t *testing.T, raw string, d uint8) {
		dec := int(d % 19)
		v, err := domain.ParseAmount([]byte(raw), dec)
		text := raw
		quoted := len(raw) >= 2 && raw[0] == '"' && raw[len(raw)-1] == '"'
		if quoted {
			text = raw[1 : len(raw)-1]
		}
		if !plainDecimal.MatchString(text) {
			if err == nil {
				t.Fatalf("%q accepted as %d", raw, v)
			}
			return
		}
		if !quoted && len(text) > 1 && (text[0] == '0' && text[1] != '.' || len(text) > 2 && text[:2] == "-0" && text[2] != '.') {
			if !errors.Is(err, domain.ErrMalformedAmount) {
				t.Fatalf("JSON number with a leading zero %q: %v", raw, err)
			}
			return
		}
		// Reference: exact rational arithmetic.
		r, ok := new(big.Rat).SetString(text)
		if !ok {
			t.Fatalf("big.Rat refused %q", text)
		}
		r.Mul(r, new(big.Rat).SetInt(new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(dec)), nil)))
		switch {
		case r.Sign() < 0:
			if !errors.Is(err, domain.ErrNegativeAmount) {
				t.Fatalf("%q: want negative, got %d %v", raw, v, err)
			}
		case !r.IsInt():
			if !errors.Is(err, domain.ErrTooPrecise) {
				t.Fatalf("%q: want too precise, got %d %v", raw, v, err)
			}
		case r.Num().Cmp(big.NewInt(math.MaxInt64)) > 0:
			if !errors.Is(err, domain.ErrAmountOverflow) {
				t.Fatalf("%q: want overflow, got %d %v", raw, v, err)
			}
		default:
			if err != nil || v != r.Num().Int64() {
				t.Fatalf("%q (%d decimals) = %d, %v; want %s", raw, dec, v, err, r.Num())
			}
			back, err := domain.ParseDecimal(domain.FormatMinor(v, dec), dec)
			if err != nil || back != v {
				t.Fatalf("format/parse %d: %d %v", v, back, err)
			}
		}
	})
}
