package domain_test

import (
	"errors"
	"testing"

	"github.com/bookworm-ledger/ledger/domain"
)

func TestParseAmount(t *testing.T) {
	cases := []struct {
		raw  string
		dec  int
		want int64
		err  error
	}{
		{`100`, 2, 10000, nil},
		{`99.99`, 2, 9999, nil},
		{`"99.99"`, 2, 9999, nil},
		{`"100"`, 2, 10000, nil},
		{`0`, 2, 0, nil},
		{`"0.5"`, 2, 50, nil},
		{`"1.500"`, 2, 150, nil},
		{`1.50000000000000000000`, 2, 150, nil},
		{`"007"`, 2, 700, nil}, // a decimal string may carry leading zeros
		{`-0`, 2, 0, nil},
		{`"-0.00"`, 2, 0, nil},
		{`12345`, 0, 12345, nil},
		{`"92233720368547758.07"`, 2, 9223372036854775807, nil},
		{`"9223372036854775807"`, 0, 9223372036854775807, nil},
		{`0.000000000000000001`, 18, 1, nil},
		{`"92233720368547758.08"`, 2, 0, domain.ErrAmountOverflow},
		{`"9223372036854775808"`, 0, 0, domain.ErrAmountOverflow},
		{`100000000000000000000`, 2, 0, domain.ErrAmountOverflow},
		{`-1`, 2, 0, domain.ErrNegativeAmount},
		{`"-0.01"`, 2, 0, domain.ErrNegativeAmount},
		{`-99999999999999999999999`, 2, 0, domain.ErrNegativeAmount},
		{`1.001`, 2, 0, domain.ErrTooPrecise},
		{`"0.0000001"`, 2, 0, domain.ErrTooPrecise},
		{`1.5`, 0, 0, domain.ErrTooPrecise},
		{`1e3`, 2, 0, domain.ErrMalformedAmount},
		{`1E3`, 2, 0, domain.ErrMalformedAmount},
		{`"1e3"`, 2, 0, domain.ErrMalformedAmount},
		{`1.0e-2`, 2, 0, domain.ErrMalformedAmount},
		{`"NaN"`, 2, 0, domain.ErrMalformedAmount},
		{`"Infinity"`, 2, 0, domain.ErrMalformedAmount},
		{`"-Infinity"`, 2, 0, domain.ErrMalformedAmount},
		{`"+1"`, 2, 0, domain.ErrMalformedAmount},
		{`+1`, 2, 0, domain.ErrMalformedAmount},
		{`""`, 2, 0, domain.ErrMalformedAmount},
		{``, 2, 0, domain.ErrMalformedAmount},
		{`" 1"`, 2, 0, domain.ErrMalformedAmount},
		{`"1 "`, 2, 0, domain.ErrMalformedAmount},
		{`"0x10"`, 2, 0, domain.ErrMalformedAmount},
		{`"1,000.00"`, 2, 0, domain.ErrMalformedAmount},
		{`".5"`, 2, 0, domain.ErrMalformedAmount},
		{`"5."`, 2, 0, domain.ErrMalformedAmount},
		{`"1.2.3"`, 2, 0, domain.ErrMalformedAmount},
		{`"-"`, 2, 0, domain.ErrMalformedAmount},
		{`007`, 2, 0, domain.ErrMalformedAmount}, // not a JSON number
		{`"\u0031"`, 2, 0, domain.ErrMalformedAmount},
		{`"1`, 2, 0, domain.ErrMalformedAmount},
		{`null`, 2, 0, domain.ErrMalformedAmount},
		{`true`, 2, 0, domain.ErrMalformedAmount},
		{`1`, -1, 0, domain.ErrInvalidCurrency},
		{`1`, 19, 0, domain.ErrInvalidCurrency},
	}
	for _, c := range cases {
		got, err := domain.ParseAmount([]byte(c.raw), c.dec)
		if c.err != nil {
			if !errors.Is(err, c.err) {
				t.Errorf("ParseAmount(%s, %d) = %d, %v; want %v", c.raw, c.dec, got, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("ParseAmount(%s, %d) = %d, %v; want %d", c.raw, c.dec, got, err, c.want)
		}
	}
}

func TestParseDecimalMatchesFormat(t *testing.T) {
	for _, dec := range []int{0, 1, 2, 3, 8, 18} {
		for _, v := range []int64{0, 1, 9, 10, 99, 100, 9999, 10000, 123456789, 9223372036854775807} {
			s := domain.FormatMinor(v, dec)
			got, err := domain.ParseDecimal(s, dec)
			if err != nil || got != v {
				t.Errorf("ParseDecimal(FormatMinor(%d, %d) = %q) = %d, %v", v, dec, s, got, err)
			}
		}
	}
}

func TestFormatMinor(t *testing.T) {
	cases := []struct {
		v    int64
		dec  int
		want string
	}{
		{9999, 2, "99.99"}, {100, 2, "1.00"}, {5, 2, "0.05"}, {0, 2, "0.00"}, {-5, 2, "-0.05"},
		{-123456, 2, "-1234.56"}, {42, 0, "42"}, {1, 3, "0.001"},
		{-9223372036854775808, 2, "-92233720368547758.08"},
	}
	for _, c := range cases {
		if got := domain.FormatMinor(c.v, c.dec); got != c.want {
			t.Errorf("FormatMinor(%d, %d) = %q, want %q", c.v, c.dec, got, c.want)
		}
	}
}

func TestCurrencyValidate(t *testing.T) {
	if err := domain.DefaultCurrency().Validate(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []domain.Currency{{"", 2}, {"usd", 2}, {"USD", -1}, {"USD", 19}, {"TOO_LONG_CURRENCY_CODE", 2}} {
		if err := c.Validate(); !errors.Is(err, domain.ErrInvalidCurrency) {
			t.Errorf("%+v: got %v", c, err)
		}
	}
}
