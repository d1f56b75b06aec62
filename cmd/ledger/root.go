package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

// app carries what every subcommand needs.
type app struct {
	stdout, stderr io.Writer
	getenv         func(string) string
	// environ is the environment's NAME=VALUE entries, only to refuse
	// LEDGER_* names that are no setting; values come from getenv.
	environ    []string
	configFile string
	verbose    bool
	// drewProgress: a progress bar is on stderr's last line.
	drewProgress bool
}

// run executes the command line and returns its error; main only prints it.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	return runWith(ctx, args, stdout, stderr, getenv, os.Environ())
}

// runWith is run with the environment's names given (tests pass their own).
func runWith(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string, environ []string) error {
	a := &app{stdout: stdout, stderr: stderr, getenv: getenv, environ: environ}
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
	pf.BoolVarP(&a.verbose, "verbose", "v", false, "the tools log what they do (info lines); serve always does")

	root.AddCommand(a.serveCmd(), a.versionCmd(), a.simulateCmd(), a.replayCmd(), a.auditCmd(), a.streamsCmd())
	root.AddCommand(a.parkedCmd())
	root.AddCommand(a.deadlettersCmd())
	root.AddCommand(a.verifyCmd())
	root.AddCommand(a.booksCmd())
	return root.ExecuteContext(ctx)
}

// setup loads the configuration and builds the logger for serve: it logs
// at log.level.
func (a *app) setup(cmd *cobra.Command) (Config, *zap.Logger, error) {
	return a.setupLevel(cmd, false)
}

// toolSetup is setup for the operator tools (audit, streams, replay,
// parked, deadletters, simulate): their output is the answer, so they log
// only warnings and errors unless --verbose.
func (a *app) toolSetup(cmd *cobra.Command) (Config, *zap.Logger, error) {
	return a.setupLevel(cmd, !a.verbose)
}

func (a *app) setupLevel(cmd *cobra.Command, quiet bool) (Config, *zap.Logger, error) {
	c, err := a.config(cmd)
	if err != nil {
		return c, nil, err
	}
	level := c.Log.Level
	if lvl, err := zapcore.ParseLevel(level); quiet && err == nil && lvl < zapcore.WarnLevel {
		level = zapcore.WarnLevel.String()
	}
	logger, err := newLogger(c.Log.Format, level, a.stderr)
	if err != nil {
		return c, nil, fmt.Errorf("configuration: log.level: %w", err)
	}
	return c, logger, nil
}

// config loads the configuration for a subcommand.
func (a *app) config(cmd *cobra.Command) (Config, error) {
	c, err := loadConfigEnv(a.configFile, cmd.Flags(), a.getenv, a.environ)
	if err != nil {
		return c, fmt.Errorf("configuration: %w", err)
	}
	return c, nil
}

// note tells the operator, with --verbose only, one short line on stderr.
func (a *app) note(format string, args ...any) {
	if a.verbose {
		fmt.Fprintf(a.stderr, "ledger: "+format+"\n", args...)
	}
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
