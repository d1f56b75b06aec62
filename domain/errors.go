package domain

import (
	"errors"
	"fmt"
)

// ErrInvalidFact is matched (errors.Is) by every error that rejects a message
// or a stored fact: a consumer dead-letters such a message, it never retries it.
var ErrInvalidFact = errors.New("invalid fact")

// ErrUnknownFactType is matched, together with ErrInvalidFact, when a type
// name is not one of the ledger's fact types.
var ErrUnknownFactType = errors.New("unknown fact type")

// ValidationError says which field of a message or fact is wrong and why.
// It matches ErrInvalidFact, and Err (when set, e.g. ErrNegativeAmount).
type ValidationError struct {
	Field   string // JSON field name ("orderId", "totalMoney"); "" for the whole body
	Problem string // what is wrong, lower case
	Err     error  // underlying cause, may be nil
}

func (e *ValidationError) Error() string {
	if e.Field == "" {
		return "invalid fact: " + e.Problem
	}
	return fmt.Sprintf("invalid fact: %s: %s", e.Field, e.Problem)
}

// Is makes errors.Is(err, ErrInvalidFact) true.
func (e *ValidationError) Is(target error) bool { return target == ErrInvalidFact }

// Unwrap returns the underlying cause.
func (e *ValidationError) Unwrap() error { return e.Err }

func invalid(field, problem string) error { return &ValidationError{Field: field, Problem: problem} }

func invalidErr(field string, err error) error {
	return &ValidationError{Field: field, Problem: err.Error(), Err: err}
}
