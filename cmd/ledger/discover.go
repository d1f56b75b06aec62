package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/bookworm-ledger/ledger/adapters/bolt"
)

// The embedded store is one file that one process owns. While `ledger
// serve` owns it, the tools go through its HTTP API: --server names it,
// or they find it by themselves from the owner file serve writes in the
// data dir once its HTTP listener is up (and removes when it stops).

const ownerFileName = "serve.json"

// owner is what the owner file says about the running serve.
type owner struct {
	PID       int       `json:"pid"`
	HTTP      string    `json:"http"` // the address the listener bound
	StartedAt time.Time `json:"startedAt"`
	Version   string    `json:"version"`
}

func ownerPath(dataDir string) string { return filepath.Join(dataDir, ownerFileName) }

// writeOwner replaces the owner file atomically: a reader sees the old
// file or the new one, never half of one.
func writeOwner(dataDir string, o owner) error {
	b, err := json.MarshalIndent(o, "", "  ")
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(dataDir, "."+ownerFileName+"-*")
	if err != nil {
		return fmt.Errorf("write owner file: %w", err)
	}
	_, werr := f.Write(append(b, '\n'))
	if werr == nil {
		werr = f.Sync()
	}
	if err := errors.Join(werr, f.Close()); err != nil {
		_ = os.Remove(f.Name())
		return fmt.Errorf("write owner file: %w", err)
	}
	if err := os.Rename(f.Name(), ownerPath(dataDir)); err != nil {
		_ = os.Remove(f.Name())
		return fmt.Errorf("write owner file: %w", err)
	}
	return nil
}

// readOwner reads the owner file; ok is false when there is none that
// can be read.
func readOwner(dataDir string) (owner, bool) {
	b, err := os.ReadFile(ownerPath(dataDir))
	if err != nil {
		return owner{}, false
	}
	var o owner
	if err := json.Unmarshal(b, &o); err != nil || o.PID <= 0 {
		return owner{}, false
	}
	return o, true
}

// removeOwner removes the owner file if it is pid's (a later serve may
// have replaced it).
func removeOwner(dataDir string, pid int) error {
	o, ok := readOwner(dataDir)
	if !ok || o.PID != pid {
		return nil
	}
	if err := os.Remove(ownerPath(dataDir)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove owner file: %w", err)
	}
	return nil
}

// processAlive reports whether a process with this id exists (one of
// another user counts).
func processAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	p, err := os.FindProcess(pid)
	if err != nil {
		return false
	}
	err = p.Signal(syscall.Signal(0))
	return err == nil || errors.Is(err, syscall.EPERM)
}

// liveOwner is the owner file's serve when its process is alive.
func liveOwner(dataDir string) (owner, bool) {
	o, ok := readOwner(dataDir)
	if !ok || !processAlive(o.PID) {
		return owner{}, false
	}
	return o, true
}

// ownerURL is the base URL to reach the owner at.
func (o owner) url() string { return "http://" + localAddr(o.HTTP) }

// describe is "pid 1234, http 127.0.0.1:8080, since …".
func (o owner) describe() string {
	http := "http " + o.HTTP
	if o.HTTP == "" {
		http = "starting: no HTTP yet"
	}
	return fmt.Sprintf("pid %d, %s, since %s", o.PID, http, o.StartedAt.UTC().Format(time.RFC3339))
}

// healthTimeout bounds the check that a discovered server answers.
const healthTimeout = 2 * time.Second

func healthy(ctx context.Context, base string) error {
	ctx, cancel := context.WithTimeout(ctx, healthTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/healthz", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("/healthz: %s", resp.Status)
	}
	return nil
}

// findServer is the base URL of the server a read command goes through:
// --server when given, else the running serve that owns the data dir and
// answers; "" means open the store here.
func (a *app) findServer(ctx context.Context, c Config, flag string) (string, error) {
	if flag != "" {
		return normalizeServer(flag)
	}
	o, ok := liveOwner(c.DataDir)
	if !ok || o.HTTP == "" {
		return "", nil
	}
	if err := healthy(ctx, o.url()); err != nil {
		// Stopping, or not serve at all: opening the store says which.
		return "", nil
	}
	a.note("%s is in use by ledger serve (pid %d): going through %s", c.DataDir, o.PID, o.url())
	return o.url(), nil
}

// route runs local, which opens the store first, or remote through the
// server findServer names. A store that turns out to be locked is looked
// for again: a serve may have just come up.
func (a *app) route(ctx context.Context, c Config, flag string, local func() error, remote func(base string) error) error {
	base, err := a.findServer(ctx, c, flag)
	if err != nil {
		return err
	}
	if base != "" {
		return remote(base)
	}
	err = local()
	if !errors.Is(err, bolt.ErrLocked) {
		return err
	}
	if base, _ := a.findServer(ctx, c, ""); base != "" {
		return remote(base)
	}
	return lockedError(c, lockedPath(c, err), err, false)
}

// lockedPath is the file of c's data dir that err says is locked.
func lockedPath(c Config, err error) string {
	if strings.Contains(err.Error(), c.readModelPath()) {
		return c.readModelPath()
	}
	return c.storePath()
}

// lockedError says who holds a store that could not be opened: the
// running serve (by its owner file), or some other process.
func lockedError(c Config, path string, err error, forServe bool) error {
	if !errors.Is(err, bolt.ErrLocked) {
		return err
	}
	if o, ok := liveOwner(c.DataDir); ok {
		if forServe {
			return fmt.Errorf("%s is in use by ledger serve (%s)", path, o.describe())
		}
		if o.HTTP == "" {
			return fmt.Errorf("%s is in use by ledger serve (%s): try again once it listens", path, o.describe())
		}
		return fmt.Errorf("%s is in use by ledger serve (%s), which does not answer at %s: wait for it, or pass --server",
			path, o.describe(), o.url())
	}
	return fmt.Errorf("%s is locked by another process, not a running ledger serve (a ledger tool such as replay may hold it): try again when it ends",
		path)
}

// normalizeServer turns --server into a base URL: http://host:port,
// https://host:port[/path] or bare host:port (http). A wildcard host is
// this machine.
func normalizeServer(raw string) (string, error) {
	shown := raw
	if strings.Contains(raw, "@") {
		shown = "<redacted>" // user:password@ must not be echoed
	}
	bad := func(why string) error {
		return fmt.Errorf("--server %q: %s; want http://host:port, https://host:port or host:port, e.g. 127.0.0.1:8080", shown, why)
	}
	s := strings.TrimSpace(raw)
	if s == "" {
		return "", bad("empty")
	}
	if scheme, _, ok := strings.Cut(s, "://"); ok {
		u, err := url.Parse(s)
		if err != nil {
			return "", bad("not a URL")
		}
		switch strings.ToLower(scheme) {
		case "http", "https":
		default:
			return "", bad("the scheme must be http or https")
		}
		switch {
		case u.User != nil:
			return "", bad("no credentials in the URL (the admin token goes in --token)")
		case u.RawQuery != "" || u.Fragment != "":
			return "", bad("no query or fragment")
		case u.Hostname() == "":
			return "", bad("no host")
		}
		host := u.Host
		if u.Port() != "" {
			if err := checkPort(u.Port()); err != nil {
				return "", bad(err.Error())
			}
			host = localAddr(u.Host)
		}
		return strings.ToLower(scheme) + "://" + host + strings.TrimRight(u.EscapedPath(), "/"), nil
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil || strings.ContainsAny(s, "/?#") {
		return "", bad("not host:port")
	}
	if err := checkPort(port); err != nil {
		return "", bad(err.Error())
	}
	return "http://" + localAddr(net.JoinHostPort(host, port)), nil
}

func checkPort(p string) error {
	n, err := strconv.Atoi(p)
	if err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("port %q is not within 1..65535", p)
	}
	return nil
}

// apiClient calls a running server's HTTP API.
type apiClient struct {
	base  string // normalized
	token string // the admin token, for endpoints that change state
}

// getJSON GETs path?q and decodes the answer into out.
func (c apiClient) getJSON(ctx context.Context, path string, q url.Values, out any) error {
	return c.do(ctx, http.MethodGet, path, q, nil, "", out)
}

func (c apiClient) do(ctx context.Context, method, path string, q url.Values, body io.Reader, contentType string, out any) error {
	u := c.base + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s%s: cannot reach ledger serve: %w (is it running there? --server names it)", method, c.base, path, unwrapURLError(err))
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return fmt.Errorf("%s %s: read the answer: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		return &apiError{Method: method, Path: path, Status: resp.StatusCode, Message: serverMessage(b), sentToken: c.token != ""}
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("%s %s: the answer is not what this ledger expects: %w", method, path, err)
	}
	return nil
}

func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// serverMessage is the "error" of an error answer, else its text.
func serverMessage(b []byte) string {
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(b, &e) == nil && e.Error != "" {
		return e.Error
	}
	return strings.TrimSpace(string(b))
}

// apiError is a refusal of the server, said with what to set.
type apiError struct {
	Method, Path string
	Status       int
	Message      string
	sentToken    bool
}

func (e *apiError) Error() string {
	status := fmt.Sprintf("%d %s", e.Status, http.StatusText(e.Status))
	switch {
	case e.Status == http.StatusForbidden:
		return fmt.Sprintf("the server refused (%s): it has no admin token; start it with http.token set (LEDGER_HTTP_TOKEN) and pass --token or LEDGER_HTTP_TOKEN here", status)
	case e.Status == http.StatusUnauthorized && e.sentToken:
		return fmt.Sprintf("the server refused (%s): the token differs from its http.token; pass the one it was started with (--token or LEDGER_HTTP_TOKEN)", status)
	case e.Status == http.StatusUnauthorized:
		return fmt.Sprintf("the server refused (%s): it needs its admin token; pass --token or set LEDGER_HTTP_TOKEN (http.token) here", status)
	}
	return fmt.Sprintf("%s %s: %s: %s", e.Method, e.Path, status, e.Message)
}
