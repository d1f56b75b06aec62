package esdbtest_test

import (
	"context"
	"testing"
	"time"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bookworm-ledger/ledger/adapters/eventstoredb/esdbtest"
)

// A stopped server is an outage: the client sees it unavailable, and once
// it is restarted on the same address the same client carries on with the
// data it wrote before.
func TestStopRestartKeepsAddressAndData(t *testing.T) {
	s := esdbtest.MustStart(t, esdbtest.WithoutSystemEvents())
	c := client(t, s.ConnectionString())
	ctx := context.Background()
	addr := s.Addr()
	id := uuid.New()
	_, err := c.AppendToStream(ctx, "s", esdb.AppendToStreamOptions{}, ev(id, "T"))
	require.NoError(t, err)

	s.Stop()
	_, err = c.AppendToStream(ctx, "s", esdb.AppendToStreamOptions{}, ev(uuid.New(), "T"))
	assert.Equal(t, esdb.ErrorUnavailable, code(t, err), "down")

	require.NoError(t, s.Restart())
	assert.Equal(t, addr, s.Addr())
	require.Eventually(t, func() bool {
		_, err := c.AppendToStream(ctx, "s", esdb.AppendToStreamOptions{}, ev(id, "T"))
		return err == nil
	}, 20*time.Second, 100*time.Millisecond, "the client reconnects")
	evs, err := readAllOf(c.ReadStream(ctx, "s", esdb.ReadStreamOptions{}, 10))
	require.NoError(t, err)
	require.Len(t, evs, 1, "the event written before the outage is kept, its retry is a duplicate")
	assert.Equal(t, id, evs[0].Event.EventID)

	s.Close()
	assert.Error(t, s.Restart(), "closed for good")
}
