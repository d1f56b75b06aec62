package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/bookworm-ledger/ledger/adapters/httpapi"
	"github.com/bookworm-ledger/ledger/projections"
)

// `ledger parked` goes through the running server's HTTP API: the parked
// set belongs to the lifecycle publisher inside `ledger serve`, and a retry
// must be serialized with what it publishes.

// parkedList is GET /api/parked's answer.
type parkedList struct {
	Orders int                  `json:"orders"`
	Lanes  int                  `json:"lanes"`
	Parked []projections.Parked `json:"parked"`
}

// retryAnswer is POST /api/admin/parked/retry's answer.
type retryAnswer struct {
	Results  []projections.RetryResult `json:"results"`
	Unparked int                       `json:"unparked"`
	Parked   int                       `json:"parked"`
	NotFound int                       `json:"notParked"`
	Failed   int                       `json:"failed"`
}

func (a *app) parkedCmd() *cobra.Command {
	var server, token string
	cmd := &cobra.Command{
		Use:   "parked",
		Short: "List parked orders, or publish them again after a fix",
		Long: `An order's lane (its AccelByte events, or its BookWorm commands) is parked
when a message cannot be built or the broker refuses it for good; its later
messages wait behind it and every other order goes on. These commands talk
to the running 'ledger serve': --server, else the one that owns the data
dir, else http.addr.`,
	}
	cmd.PersistentFlags().StringVar(&server, "server", "", "the running ledger serve (http://host:port or host:port; default: the one that owns the data dir, else http.addr)")
	cmd.PersistentFlags().StringVar(&token, "token", "", "the server's admin token, for retry (default http.token / LEDGER_HTTP_TOKEN)")

	var asJSON bool
	list := &cobra.Command{
		Use:   "list",
		Short: "List parked lanes: order, lane, reason, since",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			api, err := a.serverOf(cmd, server, token)
			if err != nil {
				return err
			}
			var res parkedList
			if err := api.getJSON(cmd.Context(), "/api/parked", nil, &res); err != nil {
				return err
			}
			if asJSON {
				return writeJSON(a.stdout, res)
			}
			return writeParkedTable(a.stdout, res)
		},
	}
	list.Flags().BoolVar(&asJSON, "json", false, "print JSON for machines")

	var all bool
	retry := &cobra.Command{
		Use:   "retry <orderId>… | --all",
		Short: "Publish parked lanes again (same message ids: harmless for what already went out)",
		RunE: func(cmd *cobra.Command, args []string) error {
			if all == (len(args) > 0) {
				return fmt.Errorf("name the orders to retry, or pass --all (not both)")
			}
			api, err := a.serverOf(cmd, server, token)
			if err != nil {
				return err
			}
			ids := make([]string, len(args))
			for i, id := range args {
				ids[i] = strings.ToLower(id)
			}
			res, err := remoteRetry(cmd.Context(), api, ids, all)
			if err != nil {
				return err
			}
			if err := writeRetryTable(a.stdout, res); err != nil {
				return err
			}
			switch {
			case res.Parked > 0:
				return fmt.Errorf("%d lane(s) parked again: fix the cause and retry", res.Parked)
			case res.Failed > 0:
				return fmt.Errorf("%d lane(s) could not be retried (still parked): try again", res.Failed)
			case res.NotFound > 0:
				return fmt.Errorf("%d order(s) not parked", res.NotFound)
			}
			return nil
		},
	}
	retry.Flags().BoolVar(&all, "all", false, "retry every parked lane")
	cmd.AddCommand(list, retry)
	return cmd
}

// serverOf is the server to talk to: --server, else the running serve
// that owns the data dir, else http.addr (a wildcard host means this
// machine); and the admin token: --token, else http.token.
func (a *app) serverOf(cmd *cobra.Command, server, token string) (apiClient, error) {
	c, err := a.config(cmd)
	if err != nil {
		return apiClient{}, err
	}
	api := apiClient{token: orDefault(token, c.HTTP.Token)}
	switch o, ok := liveOwner(c.DataDir); {
	case server != "":
		api.base, err = normalizeServer(server)
	case ok && o.HTTP != "":
		api.base = o.url()
		a.note("%s is in use by ledger serve (pid %d): going through %s", c.DataDir, o.PID, api.base)
	default:
		api.base = "http://" + localAddr(c.HTTP.Addr)
	}
	return api, err
}

// localAddr turns a listen address into one to dial: a wildcard or empty
// host is the loopback address.
func localAddr(listen string) string {
	if listen == "" {
		listen = httpapi.DefaultAddr
	}
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return listen
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

func remoteRetry(ctx context.Context, api apiClient, ids []string, all bool) (retryAnswer, error) {
	var res retryAnswer
	body, err := json.Marshal(struct {
		OrderIDs []string `json:"orderIds,omitempty"`
		All      bool     `json:"all,omitempty"`
	}{ids, all})
	if err != nil {
		return res, err
	}
	return res, api.do(ctx, http.MethodPost, "/api/admin/parked/retry", nil, bytes.NewReader(body), "application/json", &res)
}

func laneLabel(kind string) string {
	switch kind {
	case "accelbyte":
		return "AccelByte events"
	case "bookworm":
		return "BookWorm commands"
	}
	return kind
}

// writeParkedTable prints the parked lanes for people.
func writeParkedTable(out io.Writer, res parkedList) error {
	if res.Lanes == 0 {
		_, err := fmt.Fprintln(out, "nothing parked")
		return err
	}
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "ORDER\tLANE\tREASON\tSINCE\tHELD FROM\tRETRIES\tDETAIL")
	for _, p := range res.Parked {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\trev %d %s %s\t%d\t%s\n", p.OrderID, laneLabel(string(p.Kind)), p.Reason,
			p.ParkedAt.UTC().Format(time.RFC3339), p.FromRevision, p.Message, p.MessageID, p.Retries, oneLine(p.Detail))
	}
	if err := w.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(out, "%d lane(s) of %d order(s) parked\n", res.Lanes, res.Orders)
	return err
}

// writeRetryTable prints what a retry did, lane by lane.
func writeRetryTable(out io.Writer, res retryAnswer) error {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "ORDER\tLANE\tPUBLISHED\tRESULT")
	for _, r := range res.Results {
		result := "unparked"
		switch {
		case r.Unparked:
		case r.Error != "":
			result = "not retried: " + oneLine(r.Error)
		default:
			result = "parked again"
			if r.Parked != nil {
				result += ": " + r.Parked.Reason
				if r.Parked.Detail != "" {
					result += ": " + oneLine(r.Parked.Detail)
				}
			}
		}
		lane := laneLabel(string(r.Kind))
		if lane == "" {
			lane = "-"
		}
		fmt.Fprintf(w, "%s\t%s\t%d\t%s\n", r.OrderID, lane, r.Published, result)
	}
	if err := w.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(out, "%d lane(s) unparked, %d parked again, %d not parked, %d not retried\n",
		res.Unparked, res.Parked, res.NotFound, res.Failed)
	return err
}

// oneLine keeps a detail on one table row.
func oneLine(s string) string {
	r := []rune(strings.Join(strings.Fields(s), " "))
	if len(r) > 200 {
		r = append(r[:199], '…')
	}
	return string(r)
}
