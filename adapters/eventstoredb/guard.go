package eventstoredb

import (
	"fmt"
	"runtime"
	"strings"

	"github.com/bookworm-ledger/ledger/domain"
)

// recoverClosed turns one panic of the v4.1.0 client into ErrUnavailable.
// After a failed discovery the client's connection loop exits, and calls
// that had already passed its closed check block for good sending to it;
// fail closes that client to set them free, which the client does by
// closing the channel they send on ("send on closed channel"). Such a call
// failed because the server was away: the caller retries like any outage.
// Any other panic is re-raised.
func recoverClosed(err *error) {
	r := recover()
	if r == nil {
		return
	}
	if re, ok := r.(runtime.Error); ok && strings.Contains(re.Error(), "send on closed channel") {
		*err = fmt.Errorf("%w: the client was replaced during the call after a failed discovery", domain.ErrUnavailable)
		return
	}
	panic(r)
}
