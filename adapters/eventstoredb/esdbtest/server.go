package esdbtest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	sf "github.com/EventStore/EventStore-Client-Go/v4/protos/serverfeatures"
	"github.com/EventStore/EventStore-Client-Go/v4/protos/shared"
	api "github.com/EventStore/EventStore-Client-Go/v4/protos/streams"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// ServerVersion is what ServerFeatures reports; the client parses the
// first three dot-separated parts with strconv.Atoi.
const ServerVersion = "24.10.0"

// Server is a running in-memory EventStoreDB stand-in.
//
// Departures from a real server (see the package tests for what holds):
//   - single node, no gossip, no cluster roles; requires-leader ignored
//     (the client never sends it anyway);
//   - no persistence, no scavenging, no projections (no $streams, $ce-…,
//     $et-… streams), no links to resolve; resolve_links is ignored;
//   - the committed-events cache used for idempotency with any and
//     stream_exists never forgets (the real one is an ~8 MiB LRU lost on
//     restart), so duplicates are caught in cases a real server may miss;
//   - only Append and Read are served: Delete, Tombstone and BatchAppend are
//     Unimplemented; there are no stream ACLs or $$stream metadata rules;
//   - authorization is simplified: with WithUser, anonymous calls may read
//     and write streams but not read or subscribe to $all;
//   - positions are synthetic byte offsets (commit == prepare); any
//     position is accepted as a start, not only record boundaries;
//   - catch-up and live subscriptions are served from one in-memory log,
//     so the end-of-catch-up checkpoint is the head at that moment and
//     caught_up is sent exactly once.
type Server struct {
	store    *store
	grpc     *grpc.Server
	lis      *listener
	tls      bool
	caFile   string
	tmpDir   string
	user     string
	password string

	mu     sync.Mutex
	faults map[string][]fault
	subs   int // open subscriptions (for tests)

	// runMu guards serving: Stop and Restart take the server down and up
	// again on the same address, keeping the data.
	runMu      sync.Mutex
	addr       string // fixed by the first listen
	srvOpts    []grpc.ServerOption
	noFeatures bool
	running    bool
	closed     bool
}

type fault struct {
	code     codes.Code
	msg      string
	trailers metadata.MD
}

// Option configures Start.
type Option func(*options)

type options struct {
	addr           string
	tls            bool
	user, password string
	noFeatures     bool
	noSystem       bool
}

// WithTLS serves TLS with a fresh self-signed certificate for 127.0.0.1;
// its PEM is at CAFile() and the connection string carries tlsCAFile.
func WithTLS() Option { return func(o *options) { o.tls = true } }

// WithUser turns on authentication (like a secure node): wrong basic-auth
// credentials are Unauthenticated, anonymous $all access is denied. The
// client only sends credentials over TLS, so use it with WithTLS.
func WithUser(user, password string) Option {
	return func(o *options) { o.user, o.password = user, password }
}

// WithAddr listens on addr (host:port) instead of a free port on
// 127.0.0.1: a server others connect to by a known address.
func WithAddr(addr string) Option { return func(o *options) { o.addr = addr } }

// WithoutServerFeatures leaves ServerFeatures unregistered, like a server
// older than 21.10 (the client then reports version 0.0.0).
func WithoutServerFeatures() Option { return func(o *options) { o.noFeatures = true } }

// WithoutSystemEvents starts with an empty log. By default the log starts
// with a few system events, as a real one always does.
func WithoutSystemEvents() Option { return func(o *options) { o.noSystem = true } }

// Start listens on 127.0.0.1 on a free port (or WithAddr's) and serves
// until ctx is done or Close is called.
func Start(ctx context.Context, opts ...Option) (*Server, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	s := &Server{store: newStore(), tls: o.tls, user: o.user, password: o.password, faults: map[string][]fault{}}
	if !o.noSystem {
		s.seedSystemEvents()
	}

	srvOpts := []grpc.ServerOption{
		// The client pings every 10 s even without streams; the default
		// policy would answer too_many_pings after ~30 s.
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: true}),
		grpc.MaxRecvMsgSize(17 << 20),
		grpc.UnaryInterceptor(s.unaryAuth),
		grpc.StreamInterceptor(s.streamAuth),
	}
	if o.tls {
		cert, err := s.selfSigned()
		if err != nil {
			return nil, fmt.Errorf("esdbtest: certificate: %w", err)
		}
		srvOpts = append(srvOpts, grpc.Creds(credentials.NewServerTLSFromCert(&cert)))
	}
	s.srvOpts, s.noFeatures, s.addr = srvOpts, o.noFeatures, "127.0.0.1:0"
	if o.addr != "" {
		s.addr = o.addr
	}
	if err := s.serve(); err != nil {
		s.removeTmp()
		return nil, err
	}
	go func() {
		<-ctx.Done()
		s.Close()
	}()
	return s, nil
}

// MustStart starts a server for a test or benchmark and closes it in
// tb.Cleanup.
func MustStart(tb testing.TB, opts ...Option) *Server {
	tb.Helper()
	s, err := Start(context.Background(), opts...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(s.Close)
	return s
}

// serve listens on s.addr and serves; runMu held or not yet shared.
func (s *Server) serve() error {
	lis, err := net.Listen("tcp", s.addr)
	if err != nil {
		return fmt.Errorf("esdbtest: listen: %w", err)
	}
	s.addr = lis.Addr().String()
	s.lis = newListener(lis)
	s.grpc = grpc.NewServer(s.srvOpts...)
	api.RegisterStreamsServer(s.grpc, &streamsServer{s: s})
	if !s.noFeatures {
		sf.RegisterServerFeaturesServer(s.grpc, featuresServer{})
	}
	s.running = true
	srv, l := s.grpc, s.lis
	go func() { _ = srv.Serve(l) }()
	return nil
}

// Addr is host:port; it stays the same across Stop and Restart.
func (s *Server) Addr() string {
	s.runMu.Lock()
	defer s.runMu.Unlock()
	return s.addr
}

// ConnectionString is the esdb:// URL the official client connects with.
func (s *Server) ConnectionString() string {
	if s.tls {
		return fmt.Sprintf("esdb://%s?tls=true&tlsCAFile=%s", s.Addr(), s.caFile)
	}
	return fmt.Sprintf("esdb://%s?tls=false", s.Addr())
}

// CAFile is the PEM of the certificate served with WithTLS ("" without).
func (s *Server) CAFile() string { return s.caFile }

// Close stops serving at once: open calls and subscriptions end with
// Unavailable on the client side. It returns once every connected client
// has closed its connection, so a call made after Close fails with
// Unavailable (connection refused) rather than a bare EOF.
func (s *Server) Close() {
	s.runMu.Lock()
	defer s.runMu.Unlock()
	if s.closed {
		return
	}
	s.closed = true
	s.stopLocked()
	s.removeTmp()
}

// Stop takes the server down as Close does (clients see it unavailable),
// but keeps its data and address for Restart: an outage of the store.
func (s *Server) Stop() {
	s.runMu.Lock()
	defer s.runMu.Unlock()
	s.stopLocked()
}

func (s *Server) stopLocked() {
	if !s.running {
		return
	}
	s.running = false
	s.lis.shutdown()
	s.grpc.Stop()
}

// Restart serves again, after Stop, on the same address with the same
// data (a client reconnects by itself). It fails after Close, or when the
// port was taken meanwhile.
func (s *Server) Restart() error {
	s.runMu.Lock()
	defer s.runMu.Unlock()
	if s.closed {
		return errors.New("esdbtest: restart of a closed server")
	}
	if s.running {
		return nil
	}
	return s.serve()
}

// FailNext makes the next call of method ("Append" or "Read") fail with
// code and message, plus trailer key/value pairs (e.g. "exception",
// "access-denied"), after the request has been received in full.
func (s *Server) FailNext(method string, code codes.Code, msg string, trailerKV ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults[method] = append(s.faults[method], fault{code: code, msg: msg, trailers: metadata.Pairs(trailerKV...)})
}

func (s *Server) takeFault(method string) (fault, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	q := s.faults[method]
	if len(q) == 0 {
		return fault{}, false
	}
	s.faults[method] = q[1:]
	return q[0], true
}

func (f fault) err(st grpc.ServerStream) error {
	if len(f.trailers) > 0 {
		st.SetTrailer(f.trailers)
	}
	return status.Error(f.code, f.msg)
}

// Subscriptions is the number of subscriptions being served.
func (s *Server) Subscriptions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.subs
}

func (s *Server) addSub(d int) {
	s.mu.Lock()
	s.subs += d
	s.mu.Unlock()
}

// Head is the position of the last record in the log (0 when empty).
func (s *Server) Head() uint64 {
	log, _ := s.store.snapshot()
	if len(log) == 0 {
		return 0
	}
	return log[len(log)-1].pos
}

// AppendSystemEvent writes an event to a system stream (name starting
// with "$"), as the server itself does for stats, users or scavenges.
func (s *Server) AppendSystemEvent(stream, eventType string) error {
	if !isSystem(stream) {
		return errors.New("esdbtest: not a system stream")
	}
	var id [16]byte
	_, _ = rand.Read(id[:])
	id[6] = id[6]&0x0f | 0x40
	id[8] = id[8]&0x3f | 0x80
	s.store.append(stream, expectation{kind: expectAny}, []proposed{{id: id, typ: eventType, isJSON: true, data: []byte(`{}`)}})
	return nil
}

// seedSystemEvents writes what a fresh secure node has in $all before
// any user event.
func (s *Server) seedSystemEvents() {
	_ = s.AppendSystemEvent("$users", "$UserCreated")
	_ = s.AppendSystemEvent("$user-admin", "$User")
	_ = s.AppendSystemEvent("$$$scavenges", "$metadata")
}

// authorize applies the authentication middleware's rules: bad
// credentials are Unauthenticated before the handler runs; missing ones
// mean the anonymous user.
func (s *Server) authorize(ctx context.Context) (anonymous bool, err error) {
	if s.user == "" {
		return false, nil
	}
	md, _ := metadata.FromIncomingContext(ctx)
	vals := md.Get("authorization")
	if len(vals) == 0 {
		return true, nil
	}
	want := "Basic " + base64.StdEncoding.EncodeToString([]byte(s.user+":"+s.password))
	if subtle.ConstantTimeCompare([]byte(vals[0]), []byte(want)) != 1 {
		return false, status.Error(codes.Unauthenticated, "Bad HTTP authentication credentials")
	}
	return false, nil
}

type anonKey struct{}

func (s *Server) unaryAuth(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	if info.FullMethod == sf.ServerFeatures_GetSupportedMethods_FullMethodName {
		return h(ctx, req) // asked without credentials
	}
	anon, err := s.authorize(ctx)
	if err != nil {
		return nil, err
	}
	return h(context.WithValue(ctx, anonKey{}, anon), req)
}

type authedStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (a authedStream) Context() context.Context { return a.ctx }

func (s *Server) streamAuth(srv any, st grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	anon, err := s.authorize(st.Context())
	if err != nil {
		drain(st)
		return err
	}
	return h(srv, authedStream{ServerStream: st, ctx: context.WithValue(st.Context(), anonKey{}, anon)})
}

// drain reads the rest of a request the server refuses. The client sees
// the refusal's status only once it has sent its whole request; a status
// that arrives sooner makes its next Send return a bare io.EOF, which
// EventStore-Client-Go v4 reports as ErrorCodeUnknown.
func drain(st grpc.ServerStream) {
	for st.RecvMsg(new(shared.Empty)) == nil {
	}
}

func isAnonymous(ctx context.Context) bool {
	v, _ := ctx.Value(anonKey{}).(bool)
	return v
}

func accessDenied(st grpc.ServerStream) error {
	st.SetTrailer(metadata.Pairs("exception", "access-denied"))
	return status.Error(codes.PermissionDenied, "Access Denied")
}

// selfSigned makes a certificate for 127.0.0.1 and writes its PEM to a
// temporary CA file.
func (s *Server) selfSigned() (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "esdbtest"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:              []string{"localhost"},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	dir, err := os.MkdirTemp("", "esdbtest-")
	if err != nil {
		return tls.Certificate{}, err
	}
	s.tmpDir = dir
	s.caFile = filepath.Join(dir, "ca.pem")
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	if err := os.WriteFile(s.caFile, certPEM, 0o600); err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

func (s *Server) removeTmp() {
	if s.tmpDir != "" {
		_ = os.RemoveAll(s.tmpDir)
	}
}

type featuresServer struct {
	sf.UnimplementedServerFeaturesServer
}

// GetSupportedMethods answers like a 24.10 node, with lower-cased names.
func (featuresServer) GetSupportedMethods(context.Context, *shared.Empty) (*sf.SupportedMethods, error) {
	const streams = "event_store.client.streams.streams"
	return &sf.SupportedMethods{
		EventStoreServerVersion: ServerVersion,
		Methods: []*sf.SupportedMethod{
			{ServiceName: streams, MethodName: "read"},
			{ServiceName: streams, MethodName: "append"},
		},
	}, nil
}
