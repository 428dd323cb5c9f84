// Command authsvc is zsm's authentication service: SRP-6a sign-up and login,
// sessions and refresh tokens, and the signing keys PostgREST trusts.
//
//	authsvc serve                    run the HTTP API
//	authsvc migrate up|down [N|--all]|version
//	authsvc keys list                show the signing keys (never private halves)
//	authsvc audit [--user ID] [--since DURATION] [--limit N] [--json]
//
// Configuration comes from the environment; see authsvc/config. This
// command only reads the command line and the environment: the service and
// the operator's commands are package authsvc.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"zsm.dev/zsm/authsvc"
	"zsm.dev/zsm/authsvc/config"
)

const usage = `usage:
  authsvc serve
  authsvc migrate up | down [N | --all] | version
  authsvc keys list | rotate | revoke KID
  authsvc audit [--user ID] [--since DURATION] [--limit N] [--json]
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "authsvc:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, getenv config.Getenv, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errors.New("no command given")
	}
	switch args[0] {
	case "serve":
		cfg, err := config.FromEnv(getenv, true)
		if err != nil {
			return err
		}
		return authsvc.Serve(ctx, cfg, slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: cfg.LogLevel})))
	case "migrate":
		cfg, err := config.FromEnv(getenv, false)
		if err != nil {
			return err
		}
		return authsvc.Migrate(cfg, args[1:], stdout)
	case "keys":
		cfg, err := config.FromEnv(getenv, false)
		if err != nil {
			return err
		}
		return authsvc.Keys(ctx, cfg, args[1:], stdout, slog.New(slog.NewTextHandler(stderr, nil)))
	case "audit":
		cfg, err := config.FromEnv(getenv, false)
		if err != nil {
			return err
		}
		return authsvc.Audit(ctx, cfg, args[1:], stdout)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", args[0])
}
