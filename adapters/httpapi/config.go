package httpapi

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/bookworm-ledger/ledger/domain"
)

// DefaultAddr is where the server listens unless told otherwise: loopback
// only, since the admin endpoints and the stream browser show every order.
const DefaultAddr = "127.0.0.1:8080"

// Config tunes the HTTP server. The zero value of every field means its
// default.
type Config struct {
	// Addr is where to listen (default DefaultAddr; ":0" picks a port).
	Addr string
	// Token is the bearer token required by state-changing endpoints.
	// Empty disables them (403).
	Token string
	// MaxBodyBytes limits every POST body (default 1 MiB).
	MaxBodyBytes int64

	ReadHeaderTimeout time.Duration // default 5s
	ReadTimeout       time.Duration // default 30s
	// WriteTimeout bounds an ordinary response (default 60s). The live tail
	// renews it before each write; a replay gets ReplayTimeout instead.
	WriteTimeout   time.Duration
	IdleTimeout    time.Duration // default 120s
	MaxHeaderBytes int           // default 64 KiB

	ReadyTimeout  time.Duration // per /readyz check (default 2s)
	ReplayTimeout time.Duration // one admin replay (default 30m)
	RetryTimeout  time.Duration // one retry of parked lanes (default 5m)

	// MaxPageSize caps the limit parameter of paged endpoints (default 1000).
	MaxPageSize int
	// MaxTailClients caps concurrent live tails (default 32); more get 503.
	MaxTailClients int
	// TailHeartbeat is how often an idle tail sends a comment so proxies
	// and dead clients are noticed (default 15s).
	TailHeartbeat time.Duration

	// AllowedHosts lists the Host header values (without port) the server
	// answers, against DNS rebinding. Empty: when Addr is a loopback
	// address only loopback names (localhost, 127.0.0.1, ::1) are accepted,
	// otherwise any host. "*" accepts any host.
	AllowedHosts []string

	// Currency is how the page and the chart format minor units
	// (default USD, 2 decimals).
	Currency domain.Currency
}

func (c Config) withDefaults() Config {
	if c.Addr == "" {
		c.Addr = DefaultAddr
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = 1 << 20
	}
	if c.ReadHeaderTimeout == 0 {
		c.ReadHeaderTimeout = 5 * time.Second
	}
	if c.ReadTimeout == 0 {
		c.ReadTimeout = 30 * time.Second
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = 60 * time.Second
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = 120 * time.Second
	}
	if c.MaxHeaderBytes == 0 {
		c.MaxHeaderBytes = 64 << 10
	}
	if c.ReadyTimeout == 0 {
		c.ReadyTimeout = 2 * time.Second
	}
	if c.ReplayTimeout == 0 {
		c.ReplayTimeout = 30 * time.Minute
	}
	if c.RetryTimeout == 0 {
		c.RetryTimeout = 5 * time.Minute
	}
	if c.MaxPageSize == 0 {
		c.MaxPageSize = 1000
	}
	if c.MaxTailClients == 0 {
		c.MaxTailClients = 32
	}
	if c.TailHeartbeat == 0 {
		c.TailHeartbeat = 15 * time.Second
	}
	if c.Currency.Code == "" {
		c.Currency = domain.DefaultCurrency()
	}
	return c
}

// Validate reports every problem with c (after defaults).
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		errs = append(errs, fmt.Errorf("addr %q: want host:port: %w", c.Addr, err))
	}
	if strings.ContainsAny(c.Token, " \t\r\n") {
		errs = append(errs, errors.New("token: must not contain white space"))
	}
	positive := []struct {
		name string
		d    time.Duration
	}{
		{"read header timeout", c.ReadHeaderTimeout}, {"read timeout", c.ReadTimeout},
		{"write timeout", c.WriteTimeout}, {"idle timeout", c.IdleTimeout},
		{"ready timeout", c.ReadyTimeout}, {"replay timeout", c.ReplayTimeout}, {"retry timeout", c.RetryTimeout},
		{"tail heartbeat", c.TailHeartbeat},
	}
	for _, p := range positive {
		if p.d < 0 {
			errs = append(errs, fmt.Errorf("%s: must be positive, got %s", p.name, p.d))
		}
	}
	if c.MaxBodyBytes < 0 {
		errs = append(errs, fmt.Errorf("max body bytes: must be positive, got %d", c.MaxBodyBytes))
	}
	if c.MaxHeaderBytes < 0 {
		errs = append(errs, fmt.Errorf("max header bytes: must be positive, got %d", c.MaxHeaderBytes))
	}
	if c.MaxPageSize < 0 {
		errs = append(errs, fmt.Errorf("max page size: must be positive, got %d", c.MaxPageSize))
	}
	if c.MaxTailClients < 0 {
		errs = append(errs, fmt.Errorf("max tail clients: must be positive, got %d", c.MaxTailClients))
	}
	if err := c.Currency.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("currency: %w", err))
	}
	for _, h := range c.AllowedHosts {
		if h == "" || strings.ContainsAny(h, " /") {
			errs = append(errs, fmt.Errorf("allowed hosts: bad entry %q", h))
		}
	}
	return errors.Join(errs...)
}
