package esdbtest

import (
	"net"
	"sync"
	"time"
)

// peerCloseLimit bounds how long Close waits for a client to close its
// end. A gRPC client closes within milliseconds of reading end-of-stream;
// the bound only keeps a stuck or non-gRPC peer from hanging Close, which
// then cuts it off as before.
const peerCloseLimit = 10 * time.Second

// listener is what the gRPC server serves: it keeps every accepted
// connection so that Close can take them down in an order the client
// observes (see shutdown).
type listener struct {
	net.Listener

	mu     sync.Mutex
	conns  map[*conn]struct{}
	closed bool
}

func newListener(l net.Listener) *listener {
	return &listener{Listener: l, conns: map[*conn]struct{}{}}
}

// Accept refuses connections once shutdown has begun, so a client that
// has seen the server go cannot reach it again.
func (l *listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	tc := &conn{Conn: c, l: l, gone: make(chan struct{})}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		_ = c.Close()
		return nil, net.ErrClosed
	}
	l.conns[tc] = struct{}{}
	return tc, nil
}

// shutdown stops accepting, then half-closes every connection (the client
// reads end-of-stream) and waits until each client has closed its end.
//
// A grpc-go client that reads end-of-stream marks its transport closing,
// taking it out of use for new calls, before it closes the socket; so once
// the server reads the client's close, a call made afterwards cannot start
// on the dead connection. Without this wait a call can start there before
// the client has read the close, and the client's Send then returns a bare
// io.EOF, which EventStore-Client-Go v4 reports as ErrorCodeUnknown
// instead of ErrorUnavailable.
func (l *listener) shutdown() {
	l.mu.Lock()
	l.closed = true
	conns := make([]*conn, 0, len(l.conns))
	for c := range l.conns {
		conns = append(conns, c)
	}
	l.mu.Unlock()
	_ = l.Listener.Close()

	for _, c := range conns {
		if tcp, ok := c.Conn.(*net.TCPConn); ok {
			_ = tcp.CloseWrite()
		} else {
			_ = c.Close()
		}
	}
	limit := time.NewTimer(peerCloseLimit)
	defer limit.Stop()
	for _, c := range conns {
		select {
		case <-c.gone:
		case <-limit.C:
			return
		}
	}
}

// conn reports when the peer has closed its end (a read fails) or the
// server has closed the connection.
type conn struct {
	net.Conn
	l        *listener
	gone     chan struct{}
	goneOnce sync.Once
}

func (c *conn) markGone() {
	c.goneOnce.Do(func() {
		close(c.gone)
		c.l.mu.Lock()
		delete(c.l.conns, c)
		c.l.mu.Unlock()
	})
}

func (c *conn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if err != nil {
		c.markGone()
	}
	return n, err
}

func (c *conn) Close() error {
	err := c.Conn.Close()
	c.markGone()
	return err
}
