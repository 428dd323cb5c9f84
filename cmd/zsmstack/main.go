// Command zsmstack starts and stops the local zsm stack (PostgreSQL, Redis,
// authsvc, PostgREST, nginx) on 127.0.0.1.
//
//	zsmstack up     [--dir D] [--gateway-port N] [--authsvc-port N] ... [--login-rate N] [--login-burst N]
//	zsmstack down   [--dir D]
//	zsmstack status [--dir D] [--json]
//
// The services run detached (own session); `up` returns once they are ready.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"zsm.dev/zsm/stack"
)

func usage() {
	fmt.Fprintf(os.Stderr, `usage: zsmstack <command> [flags]

commands:
  up       start the stack (or report that it already runs) and print the gateway URL
  down     stop every service of the stack
  status   show what runs where

run "zsmstack <command> -h" for the flags of a command
`)
}

func main() {
	if len(os.Args) < 2 {
		usage()
		os.Exit(2)
	}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	var err error
	switch os.Args[1] {
	case "up":
		err = up(ctx, os.Args[2:])
	case "down":
		err = down(ctx, os.Args[2:])
	case "status":
		err = status(ctx, os.Args[2:])
	case "-h", "--help", "help":
		usage()
		return
	default:
		fmt.Fprintf(os.Stderr, "zsmstack: unknown command %q\n", os.Args[1])
		usage()
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "zsmstack %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}

func defaultDir() string {
	wd, _ := os.Getwd()
	if root, err := stack.FindRepoRoot(wd); err == nil {
		return stack.DefaultDir(root, "dev")
	}
	return filepath.Join(wd, ".zsm", "dev")
}

func logger(verbose bool, quiet slog.Level) *slog.Logger {
	lvl := quiet
	if verbose {
		lvl = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))
}

func up(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("up", flag.ExitOnError)
	cfg := stack.Config{}
	fs.StringVar(&cfg.Dir, "dir", defaultDir(), "state directory")
	fs.StringVar(&cfg.CacheDir, "cache-dir", "", "download cache (default $ZSM_CACHE_DIR or <repo>/.zsm/cache)")
	fs.StringVar(&cfg.RepoRoot, "repo", "", "repository root (default: go.mod found upward)")
	fs.IntVar(&cfg.GatewayPort, "gateway-port", stack.DevGatewayPort, "nginx gateway port (0 = any free port)")
	fs.IntVar(&cfg.AuthsvcPort, "authsvc-port", stack.DevAuthsvcPort, "authsvc port")
	fs.IntVar(&cfg.PostgrestPort, "postgrest-port", stack.DevPostgrestPort, "PostgREST port")
	fs.IntVar(&cfg.PostgrestAdminPort, "postgrest-admin-port", stack.DevPostgrestAdminPort, "PostgREST admin port")
	fs.IntVar(&cfg.PostgresPort, "postgres-port", stack.DevPostgresPort, "PostgreSQL port")
	fs.IntVar(&cfg.RedisPort, "redis-port", stack.DevRedisPort, "Redis port")
	fs.IntVar(&cfg.LoginRatePerSecond, "login-rate", stack.DefaultLoginRatePerSecond, "nginx login rate limit (requests/s per client address)")
	fs.IntVar(&cfg.LoginBurst, "login-burst", stack.DefaultLoginBurst, "nginx login rate limit burst")
	fs.StringVar(&cfg.AuthsvcBinary, "authsvc-bin", "", "use this prebuilt authsvc instead of building ./cmd/authsvc")
	timeout := fs.Duration("ready-timeout", 60*time.Second, "how long to wait for each service")
	verbose := fs.Bool("v", false, "verbose logging")
	fs.Parse(args)
	cfg.ReadyTimeout = *timeout
	cfg.Logger = logger(*verbose, slog.LevelInfo)

	t0 := time.Now()
	s, err := stack.Start(ctx, cfg)
	if err != nil {
		return err
	}
	if s.AlreadyRunning {
		fmt.Printf("zsm stack already running in %s\n", s.Dir())
	} else {
		fmt.Printf("zsm stack started in %s (%s)\n", s.Dir(), time.Since(t0).Round(time.Millisecond))
	}
	fmt.Printf("gateway: %s\n", s.GatewayURL())
	return nil
}

func down(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("down", flag.ExitOnError)
	dir := fs.String("dir", defaultDir(), "state directory")
	verbose := fs.Bool("v", false, "verbose logging")
	fs.Parse(args)
	if _, err := os.Stat(*dir); errors.Is(err, os.ErrNotExist) {
		fmt.Printf("no zsm stack in %s\n", *dir)
		return nil
	}
	if err := stack.StopDir(ctx, *dir, logger(*verbose, slog.LevelWarn)); err != nil {
		return err
	}
	fmt.Printf("zsm stack in %s stopped\n", *dir)
	return nil
}

func status(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("status", flag.ExitOnError)
	dir := fs.String("dir", defaultDir(), "state directory")
	asJSON := fs.Bool("json", false, "print stack.json plus liveness as JSON")
	fs.Parse(args)
	s, err := stack.Attach(*dir)
	if err != nil {
		return err
	}
	st := s.State()
	type svc struct {
		Name    string `json:"name"`
		Running bool   `json:"running"`
		Pid     int    `json:"pid"`
		Port    int    `json:"port"`
		LogFile string `json:"log_file"`
	}
	var list []svc
	all := true
	for _, n := range stack.Services {
		si := st.Services[n]
		port := 0
		if si != nil {
			port = si.Port
		}
		r := s.Running(n)
		all = all && r
		list = append(list, svc{Name: n, Running: r, Pid: s.Pid(n), Port: port, LogFile: s.LogFile(n)})
	}
	if *asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(map[string]any{"running": all, "gateway_url": s.GatewayURL(), "dir": s.Dir(), "services": list})
	}
	state := "running"
	if !all {
		state = "NOT fully running"
	}
	fmt.Printf("zsm stack in %s: %s\ngateway: %s\n", s.Dir(), state, s.GatewayURL())
	for _, v := range list {
		r := "stopped"
		if v.Running {
			r = fmt.Sprintf("running (pid %d)", v.Pid)
		}
		fmt.Printf("  %-10s 127.0.0.1:%-6d %-20s %s\n", v.Name, v.Port, r, v.LogFile)
	}
	if !all {
		return errors.New("some services are not running")
	}
	return nil
}
