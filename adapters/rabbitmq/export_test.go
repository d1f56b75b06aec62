package rabbitmq

// CloseConnForTest drops the live connection from the client side; the
// supervisor sees it as lost and reconnects.
func CloseConnForTest(b *Broker) {
	b.mu.Lock()
	s := b.cur
	b.mu.Unlock()
	if s != nil {
		_ = s.conn.Close()
	}
}

// InputAddressForTest and StackTraceForTest expose the fault header values
// (faults.go) to the golden tests.
var (
	InputAddressForTest = inputAddress
	StackTraceForTest   = stackTrace
)
