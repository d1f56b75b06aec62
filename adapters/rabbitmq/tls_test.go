package rabbitmq_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"

	"github.com/bookworm-ledger/ledger/adapters/rabbitmq"
	"github.com/bookworm-ledger/ledger/domain"
)

// tlsFront terminates TLS in front of the local broker: the adapter speaks
// real amqps to it, with a CA file, and the broker behind stays plain. It
// counts connections so the test knows traffic went through TLS.
func tlsFront(t *testing.T) (addr, caFile string, conns *atomic.Int64) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ledger test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	require.NoError(t, err)
	ca, err := x509.ParseCertificate(caDER)
	require.NoError(t, err)
	srvKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	srvDER, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "localhost"},
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}, ca, &srvKey.PublicKey, caKey)
	require.NoError(t, err)

	caFile = filepath.Join(t.TempDir(), "ca.pem")
	require.NoError(t, os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o600))

	l, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{srvDER}, PrivateKey: srvKey}},
		MinVersion:   tls.VersionTLS12,
	})
	require.NoError(t, err)
	t.Cleanup(func() { l.Close() })
	conns = &atomic.Int64{}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				if err := c.(*tls.Conn).Handshake(); err != nil {
					return
				}
				conns.Add(1)
				up, err := net.Dial("tcp", "127.0.0.1:5672")
				if err != nil {
					return
				}
				defer up.Close()
				go func() { _, _ = io.Copy(up, c) }()
				_, _ = io.Copy(c, up)
			}()
		}
	}()
	return l.Addr().String(), caFile, conns
}

func TestAMQPSWithCAFile(t *testing.T) {
	addr, caFile, conns := tlsFront(t)
	e := newEnv(t, func(c *rabbitmq.Config) {
		u, err := url.Parse(c.URL)
		require.NoError(t, err)
		u.Scheme, u.Host = "amqps", addr // the test's vhost, through the TLS front
		c.URL = u.String()
		c.TLS.CAFile = caFile
		c.TLS.ServerName = "localhost"
	})
	b := e.broker(nil)
	assert.True(t, b.Connected())
	assert.GreaterOrEqual(t, conns.Load(), int64(1), "the adapter connected through TLS")

	// A message goes in through TLS and reaches the handler.
	col := &collector{}
	startConsumer(t, b, col.handle)
	e.publishRaw(e.inbound("UserCheckedOutIntegrationEvent"), amqp.Publishing{
		ContentType: domain.ContentTypeJSON, MessageId: "tls-1",
		Body: []byte(`{"orderId":"0196a6b0-0000-7000-8000-000000000001","basketId":"0196a6b0-0000-7000-8000-000000000002","totalMoney":1}`),
	})
	got := col.waitIDs(t, []string{"tls-1"})
	assert.Equal(t, "UserCheckedOutIntegrationEvent", got["tls-1"].Type)
}

func TestAMQPSRejectsAnUntrustedServer(t *testing.T) {
	addr, _, _ := tlsFront(t)
	cfg := rabbitmq.Config{URL: "amqps://guest:guest@" + addr + "/", Queue: "tls-untrusted", ReconnectMin: 10 * time.Millisecond, ReconnectMax: 50 * time.Millisecond}
	b, err := rabbitmq.New(cfg, zaptest.NewLogger(t))
	require.NoError(t, err)
	defer b.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	err = b.Connect(ctx)
	require.Error(t, err, "the system roots do not trust the test CA")
	assert.Contains(t, err.Error(), "certificate", "the error names the TLS failure")
	assert.NotContains(t, err.Error(), "guest:guest", "credentials stay out of errors")
	assert.False(t, strings.Contains(err.Error(), "@"+addr) && strings.Contains(err.Error(), "guest@"), "no user in the error")
}
