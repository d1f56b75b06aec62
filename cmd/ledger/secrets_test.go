package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bookworm-ledger/ledger/cmd/internal/traffic"
	"github.com/bookworm-ledger/ledger/cmd/ledger-chaos/harness"
	"github.com/bookworm-ledger/ledger/internal/testenv"
)

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// brokerUser creates a broker user with a password, allowed on vhost only,
// deleted when t ends. It returns the vhost URL with those credentials.
func brokerUser(t *testing.T, vhostURL, secret string) (string, string) {
	t.Helper()
	vhost, err := testenv.VhostOf(vhostURL)
	require.NoError(t, err)
	user := "ledger-secrets-" + randHex(4)
	ctx := context.Background()
	_, err = testenv.Ctl(ctx, "add_user", user, secret)
	require.NoError(t, err)
	t.Cleanup(func() { _, _ = testenv.Ctl(context.Background(), "delete_user", user) })
	_, err = testenv.Ctl(ctx, "set_permissions", "-p", vhost, user, ".*", ".*", ".*")
	require.NoError(t, err)
	u, err := url.Parse(vhostURL)
	require.NoError(t, err)
	u.User = url.UserPassword(user, secret)
	secretURL := u.String()
	require.NoError(t, testenv.WaitDial(ctx, secretURL, 10*time.Second), "dial as %s", user)
	return secretURL, user
}

// anyEmail is wider than the scrubber's pattern on purpose.
var anyEmail = regexp.MustCompile(`[A-Za-z0-9._%+\-]+(@|%40|\\u0040)[A-Za-z0-9\-]+(\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}`)

// TestSecretsNeverReachTheLogs runs the service at debug level, in both log
// formats, with a password in its AMQP URL and traffic full of e-mail
// addresses, some of it malformed so that it is dead-lettered and logged
// with the error, plus a forced reconnect and HTTP requests naming e-mail
// addresses. Neither the password nor an address may appear; their
// redacted forms must, so that silence cannot pass for safety.
func TestSecretsNeverReachTheLogs(t *testing.T) {
	t.Parallel()
	for _, format := range []string{"console", "json"} {
		t.Run(format, func(t *testing.T) {
			t.Parallel()
			guestURL := testenv.Vhost(t)
			vhost, err := testenv.VhostOf(guestURL)
			require.NoError(t, err)
			core := randHex(12) // the part of the password no log may contain, in any encoding
			secret := "Pw." + core + "~!"
			secretURL, user := brokerUser(t, guestURL, secret)
			token := "tok-" + randHex(12)
			in := startLedger(t, secretURL, t.TempDir(), "LEDGER_LOG_LEVEL=debug", "LEDGER_LOG_FORMAT="+format, "LEDGER_HTTP_TOKEN="+token)
			require.NoError(t, harness.PrepareCapture(guestURL))

			// Good traffic: every checkout and completion carries an e-mail.
			orders := traffic.Plan(uint64(time.Now().UnixNano()), 3, []traffic.Scenario{traffic.Fulfilled})
			var emails []string
			for step := 0; step < 3; step++ {
				for i, o := range orders {
					emails = append(emails, o.Email)
					id := traffic.MessageID(o.ID, step)
					w, err := traffic.Encode(o.Steps[step], []traffic.Envelope{traffic.MassTransit, traffic.CloudEvents, traffic.Bare}[i%3], id, time.Now())
					require.NoError(t, err)
					publish(t, guestURL, w)
				}
				time.Sleep(200 * time.Millisecond)
			}

			// Malformed traffic whose errors quote e-mail addresses: the
			// currency value, the message id, the type name.
			bad := []struct {
				email string
				p     amqp.Publishing
				ex    string
			}{
				{"victim.one@evil-corp.example", amqp.Publishing{ContentType: "application/json", MessageId: "bad-currency-" + core[:6],
					Body: []byte(`{"orderId":"` + orders[0].ID + `","basketId":"` + orders[0].BasketID + `","email":"victim.one@evil-corp.example","fullName":"V","totalMoney":1,"currency":"victim.one@evil-corp.example"}`)},
					"BookWorm.Contracts:UserCheckedOutIntegrationEvent"},
				{"victim.two@evil-corp.example", amqp.Publishing{ContentType: "application/json", MessageId: "victim.two@evil-corp.example",
					Body: []byte(`{"orderId":"not-a-uuid","email":"victim.two@evil-corp.example","totalMoney":1}`)},
					"BookWorm.Contracts:UserCheckedOutIntegrationEvent"},
				{"spy+three@evil-corp.example", amqp.Publishing{ContentType: "application/json", MessageId: "bad-type-" + core[:6],
					Type: "spy+three@evil-corp.example", Body: []byte(`{"orderId":"` + orders[0].ID + `","email":"spy+three@evil-corp.example"}`)},
					"BookWorm.Contracts:UserCheckedOutIntegrationEvent"},
			}
			_, ch := testenv.Dial(t, guestURL)
			for _, b := range bad {
				emails = append(emails, b.email)
				require.NoError(t, ch.PublishWithContext(context.Background(), b.ex, "", false, false, b.p))
			}

			// HTTP requests that name e-mail addresses (logged at debug).
			base := in.URL()
			for _, p := range []string{"/api/orders/alice.http@example.com", "/api/orders?after=bob.http%40example.com", "/api/streams/order-carol.http@example.com"} {
				resp, err := http.Get(base + p)
				require.NoError(t, err)
				resp.Body.Close()
			}
			emails = append(emails, "alice.http@example.com", "bob.http@example.com", "carol.http@example.com")

			// A lost connection: the reconnect path logs too.
			require.NoError(t, testenv.CloseConnections(context.Background(), vhost, "secrets test"))
			waitReconnected(t, in, 1)

			require.NoError(t, harness.WaitQuiet(context.Background(), guestURL, base, 60*time.Second))
			stopLedger(t, in)
			logs := in.Logs()
			require.NotEmpty(t, logs)

			// The log really is at debug level, in the asked format.
			lines := strings.Split(strings.TrimSpace(logs), "\n")
			debug := 0
			for _, l := range lines {
				var rec map[string]any
				isJSON := json.Unmarshal([]byte(l), &rec) == nil
				if format == "json" {
					require.True(t, isJSON, "json log line: %s", l)
					if rec["level"] == "debug" {
						debug++
					}
				} else {
					require.False(t, isJSON, "console log line: %s", l)
					if strings.Contains(l, "\tDEBUG\t") {
						debug++
					}
				}
			}
			assert.Positive(t, debug, "debug lines logged")

			// Secrets absent...
			assert.NotContains(t, logs, core, "password (or part of it) in the log")
			assert.NotContains(t, logs, token, "HTTP token in the log")
			for _, e := range emails {
				assert.NotContains(t, logs, e)
				local, domain, _ := strings.Cut(e, "@")
				assert.NotContains(t, logs, url.QueryEscape(e))
				assert.NotContains(t, logs, local+`\u0040`+domain)
			}
			assert.Empty(t, anyEmail.FindAllString(logs, 5), "e-mail addresses in the log")
			// ...and their redacted forms present.
			assert.Contains(t, logs, user+":xxxxx@", "the broker URL is logged, redacted")
			assert.Contains(t, logs, "<email>", "the e-mail addresses in the dead-lettered messages' errors are logged, redacted")
			assert.Contains(t, logs, "message parked")
		})
	}
}

// TestSecretsWrongPasswordNeverPrinted: a service that cannot log in keeps
// retrying and, when stopped, prints its error outside the logger (main's
// last words); the password must not be in either.
func TestSecretsWrongPasswordNeverPrinted(t *testing.T) {
	t.Parallel()
	guestURL := testenv.Vhost(t)
	secret := "Pw." + randHex(12)
	secretURL, _ := brokerUser(t, guestURL, secret)
	wrong := randHex(12)
	u, err := url.Parse(secretURL)
	require.NoError(t, err)
	u.User = url.UserPassword(u.User.Username(), "Wrong."+wrong)

	for _, format := range []string{"console", "json"} {
		// Never ready: it cannot log in, and exits saying so (startup_test.go
		// checks the exit). Its exit status is not the point.
		in, err := testenv.Spawn(testenv.ServeOptions{Binary: ledgerBin, AMQPURL: u.String(), DataDir: t.TempDir(),
			Env: []string{"LEDGER_LOG_LEVEL=debug", "LEDGER_LOG_FORMAT=" + format}})
		require.NoError(t, err)
		deadline := time.Now().Add(30 * time.Second)
		for !strings.Contains(in.Logs(), "authentication refused") && time.Now().Before(deadline) {
			time.Sleep(200 * time.Millisecond)
		}
		_ = in.Stop()
		text := in.Logs()
		assert.Contains(t, text, "authentication refused", "%s: the refusal is printed", format)
		assert.NotContains(t, text, wrong, "%s: password printed", format)
		assert.Contains(t, text, ":xxxxx@", "%s: the URL is printed redacted", format)
	}
}

// TestHTTPDefaultsAreSafe: loopback by default, the admin replay needs the
// token and bounds its body.
func TestHTTPDefaultsAreSafe(t *testing.T) {
	t.Setenv("LEDGER_HTTP_ADDR", "") // the default, whatever the caller's environment
	c, err := loadConfig("", nil, func(string) string { return "" })
	require.NoError(t, err)
	host, _, err := net.SplitHostPort(c.HTTP.Addr)
	require.NoError(t, err)
	assert.Equal(t, "127.0.0.1", host, "HTTP binds loopback by default")

	u := testenv.Vhost(t)
	token := "tok-" + randHex(12)
	in := startLedger(t, u, t.TempDir(), "LEDGER_HTTP_TOKEN="+token)
	// Every socket the process listens on is a loopback one.
	listening := listenersOf(t, in.PID())
	require.NotEmpty(t, listening)
	for _, a := range listening {
		assert.True(t, a.IP.IsLoopback(), "the service listens on %s", a)
	}
	assert.Contains(t, listening, tcpAddr(t, in.Addr()))

	// A real replay changes state: it needs the token. A dry run is
	// read-only and needs none.
	replay := func(auth string, body []byte) int {
		req, err := http.NewRequest(http.MethodPost, in.URL()+"/api/admin/replay", bytes.NewReader(body))
		require.NoError(t, err)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		return resp.StatusCode
	}
	small := []byte(`{"dry_run":false}`)
	big := append([]byte(`{"dry_run":false,"pad":"`), append(bytes.Repeat([]byte("x"), 2<<20), '"', '}')...)
	assert.Equal(t, http.StatusUnauthorized, replay("", small), "no token")
	assert.Equal(t, http.StatusUnauthorized, replay("Bearer wrong-"+token, small), "wrong token")
	assert.Equal(t, http.StatusUnauthorized, replay("Basic "+token, small), "right token, wrong scheme")
	assert.Equal(t, http.StatusUnauthorized, replay("", big), "no token, big body")
	assert.Equal(t, http.StatusRequestEntityTooLarge, replay("Bearer "+token, big), "body over the limit")
	assert.Equal(t, http.StatusOK, replay("Bearer "+token, small), "the right token works")
	assert.Equal(t, http.StatusOK, replay("", []byte(`{"dry_run":true}`)), "a dry run needs no token")
}

func tcpAddr(t *testing.T, hostport string) net.TCPAddr {
	a, err := net.ResolveTCPAddr("tcp", hostport)
	require.NoError(t, err)
	return net.TCPAddr{IP: a.IP.To16(), Port: a.Port}
}

// listenersOf lists the TCP sockets pid listens on (Linux /proc).
func listenersOf(t *testing.T, pid int) []net.TCPAddr {
	t.Helper()
	fds, err := filepath.Glob(fmt.Sprintf("/proc/%d/fd/*", pid))
	require.NoError(t, err)
	inodes := map[string]bool{}
	for _, fd := range fds {
		if l, err := os.Readlink(fd); err == nil && strings.HasPrefix(l, "socket:[") {
			inodes[strings.TrimSuffix(strings.TrimPrefix(l, "socket:["), "]")] = true
		}
	}
	var out []net.TCPAddr
	for _, file := range []string{"tcp", "tcp6"} {
		f, err := os.Open(fmt.Sprintf("/proc/%d/net/%s", pid, file))
		require.NoError(t, err)
		sc := bufio.NewScanner(f)
		sc.Scan() // header
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) < 10 || fields[3] != "0A" || !inodes[fields[9]] {
				continue
			}
			out = append(out, parseProcAddr(t, fields[1]))
		}
		f.Close()
	}
	return out
}

// parseProcAddr reads /proc/net/tcp's "0100007F:1F90" (IPv4 as a
// little-endian word, IPv6 as four of them).
func parseProcAddr(t *testing.T, s string) net.TCPAddr {
	hexIP, hexPort, ok := strings.Cut(s, ":")
	require.True(t, ok, s)
	raw, err := hex.DecodeString(hexIP)
	require.NoError(t, err)
	ip := make(net.IP, len(raw))
	for i := 0; i+4 <= len(raw); i += 4 {
		binary.BigEndian.PutUint32(ip[i:], binary.LittleEndian.Uint32(raw[i:]))
	}
	port, err := strconv.ParseUint(hexPort, 16, 16)
	require.NoError(t, err)
	return net.TCPAddr{IP: ip.To16(), Port: int(port)}
}
