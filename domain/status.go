package domain

// Status is an order's financial status, AccelByte's order status enum
// (without DELETED, which no fact produces). The zero Status "" means the
// order has not been created yet.
type Status string

// The statuses of the lifecycle fold.
const (
	StatusInit               Status = "INIT"
	StatusCharged            Status = "CHARGED"
	StatusFulfilled          Status = "FULFILLED"
	StatusFulfillFailed      Status = "FULFILL_FAILED"
	StatusRefunding          Status = "REFUNDING"
	StatusRefunded           Status = "REFUNDED"
	StatusRefundFailed       Status = "REFUND_FAILED"
	StatusChargeback         Status = "CHARGEBACK"
	StatusChargebackReversed Status = "CHARGEBACK_REVERSED"
	StatusClosed             Status = "CLOSED"
)

// Statuses returns every status, in lifecycle order.
func Statuses() []Status {
	return []Status{StatusInit, StatusCharged, StatusFulfilled, StatusFulfillFailed, StatusRefunding,
		StatusRefunded, StatusRefundFailed, StatusChargeback, StatusChargebackReversed, StatusClosed}
}

// Valid reports whether s is one of the ten statuses (the zero Status is not).
func (s Status) Valid() bool {
	switch s {
	case StatusInit, StatusCharged, StatusFulfilled, StatusFulfillFailed, StatusRefunding,
		StatusRefunded, StatusRefundFailed, StatusChargeback, StatusChargebackReversed, StatusClosed:
		return true
	}
	return false
}
