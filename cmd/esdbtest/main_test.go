package main

import (
	"bufio"
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bookworm-ledger/ledger/adapters/eventstoredb"
	"github.com/bookworm-ledger/ledger/domain"
)

// freeAddr is a 127.0.0.1 port nobody listens on now.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return addr
}

// The standalone server prints its connection string first, serves two
// clients the same data through the real EventStoreDB client, and stops
// when told to.
func TestStandaloneServerSharesOneStoreBetweenClients(t *testing.T) {
	addr := freeAddr(t)
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	out, outW := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-addr", addr}, outW, io.Discard)
		outW.Close()
	}()
	line, err := bufio.NewReader(out).ReadString('\n')
	require.NoError(t, err)
	conn := strings.TrimSpace(line)
	assert.Equal(t, "esdb://"+addr+"?tls=false", conn)
	go io.Copy(io.Discard, out)

	open := func() *eventstoredb.Log {
		l, err := eventstoredb.Open(ctx, eventstoredb.Config{ConnectionString: conn}, nil)
		require.NoError(t, err)
		t.Cleanup(func() { l.Close() })
		return l
	}
	a, b := open(), open()
	ev := domain.EventData{ID: "6f7d4f5e-2d7e-4c39-9b8e-0c5a7f1f3e01", Type: "Probe", Data: []byte(`{"n":1}`)}
	_, err = a.Append(ctx, "order-probe", domain.NoStream, ev)
	require.NoError(t, err)
	got, err := b.ReadStream(ctx, "order-probe", 0, domain.Forwards, 0)
	require.NoError(t, err)
	require.Len(t, got, 1, "the second client sees the first one's append")
	assert.Equal(t, ev.ID, got[0].ID)
	// The expected revision is the same for everyone: a second writer
	// that thinks the stream is new is refused.
	_, err = b.Append(ctx, "order-probe", domain.NoStream, domain.EventData{ID: "6f7d4f5e-2d7e-4c39-9b8e-0c5a7f1f3e02", Type: "Probe", Data: []byte(`{}`)})
	assert.ErrorIs(t, err, domain.ErrWrongExpectedVersion)

	stop()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("esdbtest did not stop")
	}
}

func TestStandaloneServerRefusesATakenAddress(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	err = run(context.Background(), []string{"-addr", l.Addr().String()}, io.Discard, io.Discard)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "listen")
}
