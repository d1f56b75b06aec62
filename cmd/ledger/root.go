package main

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
	"go.uber.org/zap"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

// app carries what every subcommand needs.
type app struct {
	stdout, stderr io.Writer
	getenv         func(string) string
	configFile     string
}

// run executes the command line and returns its error; main only prints it.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	a := &app{stdout: stdout, stderr: stderr, getenv: getenv}
	root := &cobra.Command{
		Use:           "ledger",
		Short:         "Event-sourced order ledger for BookWorm-style shops",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetArgs(args)
	pf := root.PersistentFlags()
	pf.StringVar(&a.configFile, "config", "", "configuration file (yaml, json or toml); also LEDGER_CONFIG")
	pf.String("profile", "", "profile: local (default), development, staging, qa, production")
	pf.String("store", "", "event store: embedded (default) or esdb")
	pf.String("data-dir", "", "directory of the embedded store and the read model (default ./data)")
	pf.String("amqp-url", "", "RabbitMQ URL, amqp:// or amqps://")
	pf.String("http-addr", "", "HTTP listen address (default 127.0.0.1:8080)")
	pf.String("log-level", "", "debug, info, warn or error")
	pf.String("log-format", "", "console or json")

	root.AddCommand(a.serveCmd(), a.versionCmd(), a.simulateCmd(), a.replayCmd(), a.auditCmd(), a.streamsCmd())
	root.AddCommand(a.parkedCmd())
	root.AddCommand(a.deadlettersCmd())
	return root.ExecuteContext(ctx)
}

// setup loads the configuration and builds the logger for a subcommand.
func (a *app) setup(cmd *cobra.Command) (Config, *zap.Logger, error) {
	c, err := loadConfig(a.configFile, cmd.Flags(), a.getenv)
	if err != nil {
		return c, nil, fmt.Errorf("configuration: %w", err)
	}
	logger, err := newLogger(c.Log.Format, c.Log.Level, a.stderr)
	if err != nil {
		return c, nil, fmt.Errorf("configuration: log.level: %w", err)
	}
	return c, logger, nil
}

func (a *app) serveCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "serve",
		Short: "Run the service: consume, append, project and publish",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, logger, err := a.setup(cmd)
			if err != nil {
				return err
			}
			defer logger.Sync()
			return serve(cmd.Context(), c, logger)
		},
	}
}

func (a *app) versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			rev := "unknown"
			if bi, ok := debug.ReadBuildInfo(); ok {
				for _, s := range bi.Settings {
					if s.Key == "vcs.revision" {
						rev = s.Value
					}
				}
			}
			_, err := fmt.Fprintf(a.stdout, "ledger %s (commit %s, %s %s/%s)\n", version, rev, runtime.Version(), runtime.GOOS, runtime.GOARCH)
			return err
		},
	}
}
