package eventstoredb

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"
)

// DefaultConnectionString is a single insecure node on this machine, as
// EventStoreDB's development mode runs.
const DefaultConnectionString = "esdb://127.0.0.1:2113?tls=false"

// Config of the adapter. Credentials and TLS normally come with the
// connection string (esdb://user:pass@host:2113?tls=true&tlsCAFile=…);
// the fields below override it.
type Config struct {
	// ConnectionString is an esdb:// or esdb+discover:// URL. Never logged
	// as is: see Redact.
	ConnectionString string
	// TLSCAFile is a PEM file of the CA that signed the server certificate.
	TLSCAFile string
	// Username and Password override the connection string's credentials.
	// The client sends credentials only over TLS.
	Username string
	Password string
	// ReadBatch is the page size of $all and stream scans. Default 512.
	ReadBatch int
	// AppendAttempts bounds the retries of an Any or StreamExists append
	// that loses races with other writers. Default 32.
	AppendAttempts int
	// IDCacheStreams bounds how many streams' event ids the idempotency
	// check keeps in memory. Default 4096.
	IDCacheStreams int
}

func (c Config) withDefaults() Config {
	if c.ReadBatch == 0 {
		c.ReadBatch = 512
	}
	if c.AppendAttempts == 0 {
		c.AppendAttempts = 32
	}
	if c.IDCacheStreams == 0 {
		c.IDCacheStreams = 4096
	}
	return c
}

// Validate reports every problem of the configuration at once, each named
// by its setting as the service's configuration keys name it (url, ca_file,
// username, password).
func (c Config) Validate() error {
	var errs []error
	if c.ConnectionString == "" {
		errs = append(errs, errors.New("url: the connection string is empty; set an esdb:// URL"))
	} else if _, err := c.clientConfig(); err != nil {
		errs = append(errs, err)
	}
	if (c.Username == "") != (c.Password == "") {
		errs = append(errs, errors.New("username, password: set them together or not at all"))
	}
	if c.ReadBatch < 0 {
		errs = append(errs, fmt.Errorf("read_batch %d: must not be negative", c.ReadBatch))
	}
	if c.AppendAttempts < 0 {
		errs = append(errs, fmt.Errorf("append_attempts %d: must not be negative", c.AppendAttempts))
	}
	if c.IDCacheStreams < 0 {
		errs = append(errs, fmt.Errorf("id_cache_streams %d: must not be negative", c.IDCacheStreams))
	}
	return errors.Join(errs...)
}

// clientConfig parses the connection string and applies the overrides.
// Parse errors never quote the string: it may hold a password.
func (c Config) clientConfig() (*esdb.Configuration, error) {
	conf, err := esdb.ParseConnectionString(c.ConnectionString)
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		return nil, fmt.Errorf("url %s: %s", Redact(c.ConnectionString), strings.ReplaceAll(err.Error(), c.ConnectionString, Redact(c.ConnectionString)))
	}
	if c.TLSCAFile != "" {
		if conf.DisableTLS {
			return nil, errors.New("ca_file: set, but the connection string has tls=false")
		}
		pem, err := os.ReadFile(c.TLSCAFile)
		if err != nil {
			return nil, fmt.Errorf("ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ca_file %s: no PEM certificate", c.TLSCAFile)
		}
		conf.RootCAs = pool
	}
	if c.Username != "" {
		conf.Username, conf.Password = c.Username, c.Password
	}
	return conf, nil
}

// Redact returns the connection string with any password replaced, for
// logs and error messages.
func Redact(connString string) string {
	scheme, rest, ok := strings.Cut(connString, "://")
	if !ok {
		return "<unparsable connection string>"
	}
	hostEnd := strings.IndexAny(rest, "/?#")
	if hostEnd < 0 {
		hostEnd = len(rest)
	}
	at := strings.LastIndex(rest[:hostEnd], "@")
	if at < 0 {
		return connString
	}
	return scheme + "://***@" + rest[at+1:] // user names can be e-mail addresses too
}
