package domain

import (
	"fmt"
	"time"
)

// ParseTime reads RFC 3339 (any fraction up to 9 digits). Without an
// offset (a .NET DateTime of unspecified kind) the time is taken as UTC.
func ParseTime(b []byte) (time.Time, error) {
	if t, ok := parseUTC(b); ok {
		return t, nil
	}
	s := string(b)
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		var err2 error
		t, err2 = time.ParseInLocation("2006-01-02T15:04:05.999999999", s, time.UTC)
		if err2 != nil {
			return time.Time{}, fmt.Errorf("%q is not an RFC 3339 date-time", clip(s))
		}
	}
	return t.UTC(), nil
}

// parseUTC is the fast path for the form the ledger writes:
// YYYY-MM-DDTHH:MM:SS[.fraction]Z.
func parseUTC(b []byte) (time.Time, bool) {
	if len(b) < 20 || b[len(b)-1] != 'Z' || b[4] != '-' || b[7] != '-' || b[10] != 'T' || b[13] != ':' || b[16] != ':' {
		return time.Time{}, false
	}
	num := func(i, n int) int {
		v := 0
		for _, c := range b[i : i+n] {
			if c < '0' || c > '9' {
				return -1
			}
			v = v*10 + int(c-'0')
		}
		return v
	}
	year, month, day := num(0, 4), num(5, 2), num(8, 2)
	hour, minute, sec := num(11, 2), num(14, 2), num(17, 2)
	if year < 0 || month < 1 || month > 12 || day < 1 || day > 31 || hour < 0 || hour > 23 || minute < 0 || minute > 59 || sec < 0 || sec > 59 {
		return time.Time{}, false
	}
	nsec := 0
	if len(b) > 20 {
		frac := b[19 : len(b)-1]
		if frac[0] != '.' || len(frac) < 2 || len(frac) > 10 {
			return time.Time{}, false
		}
		for i := 1; i < 10; i++ {
			nsec *= 10
			if i < len(frac) {
				c := frac[i]
				if c < '0' || c > '9' {
					return time.Time{}, false
				}
				nsec += int(c - '0')
			}
		}
	}
	t := time.Date(year, time.Month(month), day, hour, minute, sec, nsec, time.UTC)
	if t.Day() != day { // 31 February and the like
		return time.Time{}, false
	}
	return t, true
}
