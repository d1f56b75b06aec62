package codec

import "github.com/bookworm-ledger/ledger/domain"

func invalid(field, problem string) error {
	return &domain.ValidationError{Field: field, Problem: problem}
}

func invalidErr(field string, err error) error {
	return &domain.ValidationError{Field: field, Problem: err.Error(), Err: err}
}

// clip shortens a value quoted in an error.
func clip[T string | []byte](s T) string {
	if len(s) > 40 {
		return string(s[:40]) + "..."
	}
	return string(s)
}
