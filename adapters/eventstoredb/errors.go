package eventstoredb

import (
	"context"
	"errors"
	"fmt"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/bookworm-ledger/ledger/domain"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Errors beyond the port's, for conditions only a server has.
var (
	ErrAccessDenied    = errors.New("eventstoredb: access denied")
	ErrUnauthenticated = errors.New("eventstoredb: authentication failed")
	ErrUnsupported     = errors.New("eventstoredb: not supported by the server")
)

// classify maps a client error onto the port's errors, keeping the
// original in the chain (errors.As still finds *esdb.Error). It looks at
// *esdb.Error codes and, for what the client passes on raw (subscription
// drops, failed stream setup), at gRPC status codes; never at text.
// esdb.FromError is not used: in v4.1.0 it reports ok only for nil.
func classify(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, domain.ErrClosed) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	var e *esdb.Error
	if errors.As(err, &e) {
		if target := byCode(e.Code()); target != nil {
			return fmt.Errorf("%w: %w", target, err)
		}
	}
	if st, ok := status.FromError(err); ok && st.Code() != codes.OK {
		if target := byStatus(st.Code()); target != nil {
			return fmt.Errorf("%w: %w", target, err)
		}
	}
	return err
}

func byCode(c esdb.ErrorCode) error {
	switch c {
	case esdb.ErrorCodeWrongExpectedVersion:
		return domain.ErrWrongExpectedVersion
	case esdb.ErrorCodeResourceNotFound, esdb.ErrorCodeStreamDeleted:
		return domain.ErrStreamNotFound
	case esdb.ErrorUnavailable, esdb.ErrorCodeDeadlineExceeded, esdb.ErrorAborted,
		esdb.ErrorCodeConnectionClosed, esdb.ErrorCodeNotLeader:
		return domain.ErrUnavailable
	case esdb.ErrorCodeAccessDenied:
		return ErrAccessDenied
	case esdb.ErrorCodeUnauthenticated:
		return ErrUnauthenticated
	case esdb.ErrorCodeUnsupportedFeature:
		return ErrUnsupported
	}
	return nil // Unknown, parsing, internal: the original error stands
}

func byStatus(c codes.Code) error {
	switch c {
	case codes.Unavailable, codes.DeadlineExceeded, codes.Aborted, codes.ResourceExhausted:
		return domain.ErrUnavailable
	case codes.Canceled:
		return context.Canceled
	case codes.PermissionDenied:
		return ErrAccessDenied
	case codes.Unauthenticated:
		return ErrUnauthenticated
	case codes.Unimplemented:
		return ErrUnsupported
	case codes.NotFound:
		return domain.ErrStreamNotFound
	}
	return nil
}

// isCode reports whether err carries an *esdb.Error with code c.
func isCode(err error, c esdb.ErrorCode) bool {
	var e *esdb.Error
	return errors.As(err, &e) && e.Code() == c
}
