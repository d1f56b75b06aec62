package domain

import (
	"errors"
	"fmt"
	"math"
	"strconv"
)

// Money errors. They come wrapped with the offending text; test with errors.Is.
var (
	ErrMalformedAmount = errors.New("malformed amount")
	ErrNegativeAmount  = errors.New("negative amount")
	ErrTooPrecise      = errors.New("amount has more decimals than the currency")
	ErrAmountOverflow  = errors.New("amount out of range")
	ErrInvalidCurrency = errors.New("invalid currency")
)

// MaxDecimals is the largest currency scale the ledger accepts: 10^18 still
// fits an int64.
const MaxDecimals = 18

// Currency is the ledger's single configured currency. Amounts are int64
// minor units: 9999 with Decimals 2 is 99.99.
type Currency struct {
	Code     string // "USD"
	Decimals int    // digits after the decimal point; 2 for USD
}

// DefaultCurrency is USD with 2 decimals.
func DefaultCurrency() Currency { return Currency{Code: "USD", Decimals: 2} }

// Validate checks the code (1 to 16 of A-Z, 0-9, '_') and the decimals (0..18).
func (c Currency) Validate() error {
	var errs []error
	if c.Code == "" || len(c.Code) > 16 {
		errs = append(errs, fmt.Errorf("currency %q: %w: the code must have 1 to 16 characters", c.Code, ErrInvalidCurrency))
	} else {
		for i := 0; i < len(c.Code); i++ {
			ch := c.Code[i]
			if !(ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' || ch == '_') {
				errs = append(errs, fmt.Errorf("currency %q: %w: the code has only A-Z, 0-9 and '_'", c.Code, ErrInvalidCurrency))
				break
			}
		}
	}
	if c.Decimals < 0 || c.Decimals > MaxDecimals {
		errs = append(errs, fmt.Errorf("currency_decimals %d: %w: want 0..%d", c.Decimals, ErrInvalidCurrency, MaxDecimals))
	}
	return errors.Join(errs...)
}

// ParseAmount converts a JSON token to minor units: a number (100, 99.99)
// or a string holding a plain decimal ("99.99", MassTransit's form). The
// conversion is exact; it never goes through a float. Fraction digits
// beyond decimals are accepted only when they are zeros ("1.500" is 150
// with 2 decimals). Exponents, signs other than a zero "-0", whitespace,
// hex, NaN and Infinity are malformed.
func ParseAmount(raw []byte, decimals int) (int64, error) {
	if len(raw) > 0 && raw[0] == '"' {
		if len(raw) < 2 || raw[len(raw)-1] != '"' {
			return 0, fmt.Errorf("%w: %q: unterminated string", ErrMalformedAmount, clip(raw))
		}
		inner := raw[1 : len(raw)-1]
		for _, c := range inner {
			if c == '\\' || c == '"' {
				return 0, fmt.Errorf("%w: %q: escaped characters", ErrMalformedAmount, clip(raw))
			}
		}
		return parseDecimal(inner, decimals, false)
	}
	return parseDecimal(raw, decimals, true)
}

// ParseDecimal converts plain decimal text (digits, optionally '.' and
// digits) to minor units, exactly; see ParseAmount for the rules.
func ParseDecimal[T string | []byte](s T, decimals int) (int64, error) {
	return parseDecimal(s, decimals, false)
}

func parseDecimal[T string | []byte](s T, decimals int, jsonNumber bool) (int64, error) {
	if decimals < 0 || decimals > MaxDecimals {
		return 0, fmt.Errorf("%w: %d decimals, want 0..%d", ErrInvalidCurrency, decimals, MaxDecimals)
	}
	if len(s) == 0 {
		return 0, fmt.Errorf("%w: empty", ErrMalformedAmount)
	}
	i := 0
	neg := s[0] == '-'
	if neg {
		i = 1
	}
	intStart := i
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	intEnd := i
	fracStart, fracEnd := i, i
	if intEnd > intStart && i < len(s) && s[i] == '.' {
		i++
		fracStart = i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		fracEnd = i
	}
	if intEnd == intStart || i != len(s) || (fracStart > intEnd && fracEnd == fracStart) {
		return 0, fmt.Errorf("%w: %q: %s", ErrMalformedAmount, clip(s), whyMalformed(s))
	}
	if jsonNumber && intEnd-intStart > 1 && s[intStart] == '0' {
		return 0, fmt.Errorf("%w: %q: leading zero", ErrMalformedAmount, clip(s))
	}
	if neg {
		for k := intStart; k < fracEnd; k++ {
			if s[k] >= '1' && s[k] <= '9' {
				return 0, fmt.Errorf("%w: %q", ErrNegativeAmount, clip(s))
			}
		}
	}
	for k := fracStart + decimals; k < fracEnd; k++ {
		if s[k] != '0' {
			return 0, fmt.Errorf("%w: %q has %d decimals, the currency %d", ErrTooPrecise, clip(s), fracEnd-fracStart, decimals)
		}
	}
	var v uint64
	const limit = uint64(math.MaxInt64)
	add := func(d byte) bool {
		x := uint64(d - '0')
		if v > (limit-x)/10 {
			return false
		}
		v = v*10 + x
		return true
	}
	for k := intStart; k < intEnd; k++ {
		if !add(s[k]) {
			return 0, fmt.Errorf("%w: %q does not fit int64 minor units", ErrAmountOverflow, clip(s))
		}
	}
	for k := 0; k < decimals; k++ {
		d := byte('0')
		if fracStart+k < fracEnd {
			d = s[fracStart+k]
		}
		if !add(d) {
			return 0, fmt.Errorf("%w: %q does not fit int64 minor units", ErrAmountOverflow, clip(s))
		}
	}
	return int64(v), nil
}

// whyMalformed names the most likely problem, for the error text only.
func whyMalformed[T string | []byte](s T) string {
	hasDot := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == 'e' || c == 'E':
			if i > 0 && s[i-1] >= '0' && s[i-1] <= '9' || i > 0 && s[i-1] == '.' {
				return "exponent form"
			}
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == 0xa0:
			return "whitespace"
		case c == '+':
			return "explicit '+' sign"
		case (c == 'x' || c == 'X') && i > 0 && s[i-1] == '0':
			return "hex"
		case c == ',' || c == '_' || c == '\'':
			return "digit grouping"
		case c == 'N' || c == 'n' || c == 'I' || c == 'i':
			return "not a number"
		case c == '.':
			if hasDot {
				return "two decimal points"
			}
			hasDot = true
		}
	}
	return "not a plain decimal (digits, optionally '.' and digits)"
}

func clip[T string | []byte](s T) string {
	if len(s) > 40 {
		return string(s[:40]) + "..."
	}
	return string(s)
}

// FormatMinor renders minor units as exact decimal text: 9999,2 -> "99.99";
// 100,2 -> "1.00"; -5,2 -> "-0.05".
func FormatMinor(minor int64, decimals int) string {
	return string(AppendMinor(nil, minor, decimals))
}

// AppendMinor appends FormatMinor's text to dst.
func AppendMinor(dst []byte, minor int64, decimals int) []byte {
	if decimals < 0 {
		decimals = 0
	}
	var u uint64
	if minor < 0 {
		dst = append(dst, '-')
		u = uint64(-(minor + 1)) + 1
	} else {
		u = uint64(minor)
	}
	var buf [48]byte
	digits := strconv.AppendUint(buf[:0], u, 10)
	if decimals == 0 {
		return append(dst, digits...)
	}
	if len(digits) <= decimals {
		dst = append(dst, '0', '.')
		for k := len(digits); k < decimals; k++ {
			dst = append(dst, '0')
		}
		return append(dst, digits...)
	}
	cut := len(digits) - decimals
	dst = append(dst, digits[:cut]...)
	dst = append(dst, '.')
	return append(dst, digits[cut:]...)
}
