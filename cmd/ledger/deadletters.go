package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/spf13/cobra"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/bookworm-ledger/ledger/adapters/rabbitmq"
)

// `ledger deadletters` talks to the broker itself (amqp.url, as serve
// does): the dead-letter queues are the broker's, and browsing them needs
// no running ledger.

// dlFlags are the flags every deadletters subcommand shares.
type dlFlags struct {
	queue   string
	timeout time.Duration
	server  string // list and show through a running server's API
}

func (a *app) deadlettersCmd() *cobra.Command {
	f := &dlFlags{}
	cmd := &cobra.Command{
		Use:   "deadletters",
		Short: "Browse <queue>_error and <queue>_skipped, and send messages back",
		Long: `Messages the ledger could not take are parked in <queue>_error (malformed,
invalid, or failing past the delivery limit) or <queue>_skipped (a type the
ledger does not know). These commands browse them without losing or
reordering anything, show one in full, and redrive chosen ones to the
exchange they came from with their original properties and headers; a
message leaves the dead-letter queue only after the broker confirmed its
re-publish. They connect to amqp.url like 'ledger serve'; list and show can
go through a running server instead (--server).`,
	}
	pf := cmd.PersistentFlags()
	pf.StringVar(&f.queue, "queue", "", "error or skipped (or a queue name); show looks in both when not given")
	pf.DurationVar(&f.timeout, "timeout", 60*time.Second, "give up after this long (connecting and browsing)")
	pf.StringVar(&f.server, "server", "", "list and show through the ledger serve at this address (http://host:port or host:port) instead of the broker")
	cmd.AddCommand(a.deadlettersListCmd(f), a.deadlettersShowCmd(f), a.deadlettersRedriveCmd(f))
	return cmd
}

func (a *app) deadlettersListCmd(f *dlFlags) *cobra.Command {
	var asJSON bool
	var limit int
	list := &cobra.Command{
		Use:   "list",
		Short: "List dead letters: time, reason, type, message id, first bytes of the body",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if f.server != "" {
				return a.remoteDeadLetters(cmd, f, limit, asJSON)
			}
			return a.withBroker(cmd, f.timeout, func(ctx context.Context, b *rabbitmq.Broker) error {
				q := b.DeadLetterQueue(orDefault(f.queue, rabbitmq.DeadLetterError))
				dls, err := b.DeadLetters(ctx, q, limit)
				if err != nil {
					return err
				}
				depth, err := b.DeadLetterDepth(ctx, q)
				if err != nil {
					return err
				}
				if asJSON {
					views := make([]deadLetterView, len(dls))
					for i, d := range dls {
						views[i] = viewOf(d)
					}
					return writeJSON(a.stdout, deadLetterListJSON{Queue: q, Messages: &depth, Shown: len(dls), Items: views})
				}
				return writeDeadLetterTable(a.stdout, q, depth, dls)
			})
		},
	}
	list.Flags().BoolVar(&asJSON, "json", false, "print JSON for machines (bodies in full)")
	list.Flags().IntVar(&limit, "limit", rabbitmq.DefaultDeadLetterLimit, "show at most this many, oldest first")
	return list
}

func (a *app) deadlettersShowCmd(f *dlFlags) *cobra.Command {
	var showJSON bool
	show := &cobra.Command{
		Use:   "show <messageId>",
		Short: "Show a dead letter in full: properties, headers, body",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withDeadLetters(cmd, f, args[0], func(found []rabbitmq.DeadLetterMessage) error {
				if showJSON {
					views := make([]deadLetterView, len(found))
					for i, d := range found {
						views[i] = viewOf(d)
					}
					return writeJSON(a.stdout, views)
				}
				for i, d := range found {
					if i > 0 {
						fmt.Fprintln(a.stdout)
					}
					writeDeadLetter(a.stdout, d)
				}
				return nil
			})
		},
	}
	show.Flags().BoolVar(&showJSON, "json", false, "print JSON for machines")
	return show
}

// withDeadLetters finds the dead letters of message id, from the broker
// or through --server, and runs f on them.
func (a *app) withDeadLetters(cmd *cobra.Command, f *dlFlags, id string, fn func([]rabbitmq.DeadLetterMessage) error) error {
	if f.server == "" {
		return a.withBroker(cmd, f.timeout, func(ctx context.Context, b *rabbitmq.Broker) error {
			found, err := findDeadLetters(ctx, b, f.queue, id)
			if err != nil {
				return err
			}
			return fn(found)
		})
	}
	api, ctx, cancel, err := a.deadLetterAPI(cmd, f)
	if err != nil {
		return err
	}
	defer cancel()
	queues := []string{rabbitmq.DeadLetterError, rabbitmq.DeadLetterSkipped}
	if f.queue != "" {
		queues = []string{f.queue}
	}
	var found []rabbitmq.DeadLetterMessage
	for _, q := range queues {
		// The API lists at most a page: a message further back is found
		// through the broker (without --server).
		page, err := fetchDeadLetters(ctx, api, q, remoteDeadLetterLimit)
		if err != nil {
			return err
		}
		for _, d := range page.messages {
			if d.MessageID == id || d.EnvelopeID == id {
				found = append(found, d)
			}
		}
	}
	if len(found) == 0 {
		return fmt.Errorf("message %s: not among the first %d of %s (without --server the whole queue is searched)",
			id, remoteDeadLetterLimit, strings.Join(queues, " or "))
	}
	return fn(found)
}

// remoteDeadLetterLimit is the most a page of the API holds by default.
const remoteDeadLetterLimit = 1000

// deadLetterListJSON is `deadletters list --json`; Messages (the queue's
// depth) is absent through a server, which does not tell it.
type deadLetterListJSON struct {
	Queue    string           `json:"queue"`
	Messages *int             `json:"messages,omitempty"`
	Shown    int              `json:"shown"`
	More     bool             `json:"more,omitempty"`
	Items    []deadLetterView `json:"items"`
}

func (a *app) deadLetterAPI(cmd *cobra.Command, f *dlFlags) (apiClient, context.Context, context.CancelFunc, error) {
	if _, err := a.config(cmd); err != nil {
		return apiClient{}, nil, nil, err
	}
	base, err := normalizeServer(f.server)
	if err != nil {
		return apiClient{}, nil, nil, err
	}
	switch f.queue {
	case "", rabbitmq.DeadLetterError, rabbitmq.DeadLetterSkipped:
	default:
		return apiClient{}, nil, nil, fmt.Errorf("--queue %q: through --server, use error or skipped", f.queue)
	}
	ctx, cancel := context.WithTimeout(cmd.Context(), f.timeout)
	return apiClient{base: base}, ctx, cancel, nil
}

// remoteDeadLetters is `deadletters list --server`.
func (a *app) remoteDeadLetters(cmd *cobra.Command, f *dlFlags, limit int, asJSON bool) error {
	api, ctx, cancel, err := a.deadLetterAPI(cmd, f)
	if err != nil {
		return err
	}
	defer cancel()
	q := orDefault(f.queue, rabbitmq.DeadLetterError)
	page, err := fetchDeadLetters(ctx, api, q, limit)
	if err != nil {
		return err
	}
	if asJSON {
		views := make([]deadLetterView, len(page.messages))
		for i, d := range page.messages {
			views[i] = viewOf(d)
		}
		return writeJSON(a.stdout, deadLetterListJSON{Queue: page.queue, Shown: len(views), More: page.more, Items: views})
	}
	depth := len(page.messages)
	if page.more {
		depth++ // at least
	}
	return writeDeadLetterTable(a.stdout, page.queue, depth, page.messages)
}

type deadLetterPage struct {
	queue    string
	messages []rabbitmq.DeadLetterMessage
	more     bool
}

// fetchDeadLetters reads GET /api/deadletters into the broker adapter's
// form (what the API shows of it).
func fetchDeadLetters(ctx context.Context, api apiClient, queue string, limit int) (deadLetterPage, error) {
	var res struct {
		Queue    string `json:"queue"`
		More     bool   `json:"more"`
		Messages []struct {
			MessageID    string          `json:"messageId"`
			Type         string          `json:"type"`
			Time         time.Time       `json:"time"`
			Reason       string          `json:"reason"`
			Detail       string          `json:"detail"`
			Exchange     string          `json:"exchange"`
			RoutingKey   string          `json:"routingKey"`
			ContentType  string          `json:"contentType"`
			Headers      map[string]any  `json:"headers"`
			Body         json.RawMessage `json:"body"`
			BodyEncoding string          `json:"bodyEncoding"`
		} `json:"messages"`
	}
	q := url.Values{"queue": {queue}, "limit": {strconv.Itoa(max(limit, 1))}}
	if err := api.getJSON(ctx, "/api/deadletters", q, &res); err != nil {
		return deadLetterPage{}, err
	}
	page := deadLetterPage{queue: orDefault(res.Queue, queue), more: res.More}
	for i, m := range res.Messages {
		d := rabbitmq.DeadLetterMessage{Queue: page.queue, Position: i, MessageID: m.MessageID, Type: m.Type, Time: m.Time,
			Reason: m.Reason, Detail: m.Detail, Exchange: m.Exchange, RoutingKey: m.RoutingKey, HasOrigin: m.Exchange != "",
			ContentType: m.ContentType, Headers: m.Headers}
		switch m.BodyEncoding {
		case "text":
			var s string
			_ = json.Unmarshal(m.Body, &s)
			d.Body = []byte(s)
		case "base64":
			var s string
			_ = json.Unmarshal(m.Body, &s)
			d.Body, _ = base64.StdEncoding.DecodeString(s)
		default:
			if string(m.Body) != "null" {
				d.Body = m.Body
			}
		}
		page.messages = append(page.messages, d)
	}
	return page, nil
}

// findDeadLetters looks for id in queue, or in both dead-letter queues
// when queue is empty.
func findDeadLetters(ctx context.Context, b *rabbitmq.Broker, queue, id string) ([]rabbitmq.DeadLetterMessage, error) {
	queues := []string{rabbitmq.DeadLetterError, rabbitmq.DeadLetterSkipped}
	if queue != "" {
		queues = []string{queue}
	}
	var found []rabbitmq.DeadLetterMessage
	for _, q := range queues {
		dls, err := b.FindDeadLetters(ctx, q, id)
		if err != nil {
			return nil, err
		}
		found = append(found, dls...)
	}
	if len(found) == 0 {
		names := make([]string, len(queues))
		for i, q := range queues {
			names[i] = b.DeadLetterQueue(q)
		}
		return nil, fmt.Errorf("message %s: not in %s", id, strings.Join(names, " or "))
	}
	return found, nil
}

func (a *app) deadlettersRedriveCmd(f *dlFlags) *cobra.Command {
	var all, dryRun bool
	redrive := &cobra.Command{
		Use:   "redrive <messageId>... | --all",
		Short: "Send dead letters back to the exchange they came from",
		Long: `Publish the chosen messages (or --all) to the exchange and routing key they
came from, with their original properties and headers (fault headers
removed), and remove each from the dead-letter queue once the broker
confirmed it. A message the ledger already stored appends nothing when it
comes back. --dry-run says what would be sent and changes nothing.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if all == (len(args) > 0) {
				return errors.New("redrive: give message ids or --all (not both)")
			}
			return a.withBroker(cmd, f.timeout, func(ctx context.Context, b *rabbitmq.Broker) error {
				q := b.DeadLetterQueue(orDefault(f.queue, rabbitmq.DeadLetterError))
				res, err := b.Redrive(ctx, q, args, all, dryRun)
				failed := writeRedriven(a.stdout, q, res, dryRun)
				if err != nil {
					return err
				}
				if failed > 0 {
					return fmt.Errorf("%d message(s) not redriven", failed)
				}
				return nil
			})
		},
	}
	redrive.Flags().BoolVar(&all, "all", false, "every message of the queue")
	redrive.Flags().BoolVar(&dryRun, "dry-run", false, "say what would be sent; send and remove nothing")
	return redrive
}

// withBroker connects to amqp.url (without declaring anything) and runs f.
func (a *app) withBroker(cmd *cobra.Command, timeout time.Duration, f func(context.Context, *rabbitmq.Broker) error) error {
	c, logger, err := a.toolSetup(cmd)
	if err != nil {
		return err
	}
	defer logger.Sync()
	// The broker's own info lines are noise on a tool's stderr.
	quiet := logger.WithOptions(zap.IncreaseLevel(zapcore.WarnLevel)).Named("amqp")
	b, err := rabbitmq.New(brokerConfig(c, nil), quiet)
	if err != nil {
		return fmt.Errorf("broker config: %w", err)
	}
	defer b.Close()
	ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
	defer cancel()
	if err := b.Connect(ctx); err != nil {
		return fmt.Errorf("connect to broker %s: %w", redactURL(c.AMQP.URL), err)
	}
	return f(ctx, b)
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func writeJSON(out io.Writer, v any) error {
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// deadLetterView is a dead letter as JSON: the body as text when it is
// UTF-8, else base64.
type deadLetterView struct {
	rabbitmq.DeadLetterMessage
	Body       *string `json:"body,omitempty"`
	BodyBase64 *string `json:"bodyBase64,omitempty"`
	BodyBytes  int     `json:"bodyBytes"`
}

func viewOf(d rabbitmq.DeadLetterMessage) deadLetterView {
	v := deadLetterView{DeadLetterMessage: d, BodyBytes: len(d.Body)}
	if utf8.Valid(d.Body) {
		s := string(d.Body)
		v.Body = &s
	} else {
		s := base64.StdEncoding.EncodeToString(d.Body)
		v.BodyBase64 = &s
	}
	v.DeadLetterMessage.Body = nil
	return v
}

// preview is the first n runes of a body on one line, control characters
// shown as '.'.
func preview(b []byte, n int) string {
	var sb strings.Builder
	count := 0
	for len(b) > 0 && count < n {
		r, size := utf8.DecodeRune(b)
		b = b[size:]
		if r == utf8.RuneError || !unicode.IsPrint(r) {
			r = '.'
		}
		sb.WriteRune(r)
		count++
	}
	if len(b) > 0 {
		sb.WriteString("…")
	}
	return sb.String()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func writeDeadLetterTable(out io.Writer, q string, depth int, dls []rabbitmq.DeadLetterMessage) error {
	fmt.Fprintf(out, "%s: %d message(s)", q, depth)
	if len(dls) < depth {
		fmt.Fprintf(out, ", the oldest %d shown (--limit)", len(dls))
	}
	fmt.Fprintln(out)
	if len(dls) == 0 {
		return nil
	}
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "TIME\tREASON\tTYPE\tMESSAGE ID\tBODY")
	for _, d := range dls {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", fmtTime(d.Time), orDash(d.Reason), orDash(d.Type), orDash(d.MessageID), preview(d.Body, 60))
	}
	return w.Flush()
}

func writeDeadLetter(out io.Writer, d rabbitmq.DeadLetterMessage) {
	fmt.Fprintf(out, "message %s in %s (position %d)\n", orDash(d.MessageID), d.Queue, d.Position)
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	row := func(k, v string) {
		if v != "" {
			fmt.Fprintf(w, "  %s\t%s\n", k, v)
		}
	}
	row("dead-lettered", fmt.Sprintf("%s by %s", fmtTime(d.Time), orDash(d.By)))
	row("reason", d.Reason)
	row("detail", d.Detail)
	if d.DeliveryCount > 0 {
		row("deliveries", fmt.Sprint(d.DeliveryCount))
	}
	if d.HasOrigin {
		row("came from", fmt.Sprintf("exchange %q, routing key %q", d.Exchange, d.RoutingKey))
	} else {
		row("came from", "unknown (no x-ledger-original-exchange, no x-death): cannot be redriven")
	}
	fmt.Fprintln(w, "properties\t")
	row("message-id", d.MessageID)
	row("envelope-id", d.EnvelopeID)
	row("type", d.Type)
	row("content-type", d.ContentType)
	row("content-encoding", d.ContentEncoding)
	row("correlation-id", d.CorrelationID)
	row("reply-to", d.ReplyTo)
	row("expiration", d.Expiration)
	if !d.Timestamp.IsZero() {
		row("timestamp", d.Timestamp.UTC().Format(time.RFC3339))
	}
	row("app-id", d.AppID)
	row("user-id", d.UserID)
	if d.DeliveryMode != 0 {
		row("delivery-mode", fmt.Sprint(d.DeliveryMode))
	}
	if d.Priority != 0 {
		row("priority", fmt.Sprint(d.Priority))
	}
	fmt.Fprintln(w, "headers\t")
	keys := make([]string, 0, len(d.Headers))
	for k := range d.Headers {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		fmt.Fprintf(w, "  %s\t%s\n", k, headerText(d.Headers[k]))
	}
	_ = w.Flush()
	fmt.Fprintf(out, "body (%d bytes)\n", len(d.Body))
	if utf8.Valid(d.Body) {
		fmt.Fprintln(out, string(d.Body))
	} else {
		fmt.Fprintln(out, base64.StdEncoding.EncodeToString(d.Body), "(base64)")
	}
}

func headerText(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case time.Time:
		return x.UTC().Format(time.RFC3339)
	case []byte:
		return base64.StdEncoding.EncodeToString(x) + " (base64)"
	}
	if b, err := json.Marshal(v); err == nil {
		return string(b)
	}
	return fmt.Sprint(v)
}

// writeRedriven prints one line a message and returns how many failed.
func writeRedriven(out io.Writer, q string, res []rabbitmq.Redriven, dryRun bool) int {
	failed, sent := 0, 0
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	for _, r := range res {
		switch {
		case r.Err != nil:
			failed++
			fmt.Fprintf(w, "not redriven\t%s\t%s\n", orDash(r.MessageID), r.Err)
		case dryRun:
			sent++
			fmt.Fprintf(w, "would redrive\t%s\t-> exchange %q, routing key %q\n", orDash(r.MessageID), r.Exchange, r.RoutingKey)
		default:
			sent++
			fmt.Fprintf(w, "redriven\t%s\t-> exchange %q, routing key %q\n", orDash(r.MessageID), r.Exchange, r.RoutingKey)
		}
	}
	_ = w.Flush()
	verb := "redriven"
	if dryRun {
		verb = "would be redriven (dry run: nothing sent, nothing removed)"
	}
	fmt.Fprintf(out, "%s: %d %s, %d not\n", q, sent, verb, failed)
	return failed
}
