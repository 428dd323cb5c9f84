// Command zsmdesktop installs, builds and runs the desktop app (desktop/).
//
//	zsmdesktop deps            install what is missing (Debian packages, npm packages, tauri-driver)
//	zsmdesktop build           deps, then build the app (debug profile) and print its path
//	zsmdesktop check           deps, then tsc, cargo fmt --check, cargo clippy -D warnings, cargo test
//	zsmdesktop typecheck       deps, then tsc --noEmit over the front end
//	zsmdesktop run [--server URL]
//	                           build, then start the app for a person, against the
//	                           local stack (`go tool task up`) unless --server says otherwise
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"

	"zsm.dev/zsm/desktop/toolchain"
	"zsm.dev/zsm/stack"
)

func usage() {
	fmt.Fprint(os.Stderr, `usage: zsmdesktop <command> [flags]

commands:
  deps    install what is missing: Debian packages, npm packages, tauri-driver
  build   deps, then build the desktop app (debug profile) and print its path
  check   deps, then the app's static checks and unit tests (tsc, cargo fmt, clippy, test)
  typecheck  deps, then tsc --noEmit over the front end
  run     build, then start the app against the local stack (go tool task up)
`)
}

func main() {
	if len(os.Args) < 2 {
		usage()
		os.Exit(2)
	}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	var err error
	switch os.Args[1] {
	case "deps":
		_, _, err = deps(ctx, log)
	case "build":
		var bin string
		if bin, err = build(ctx, log); err == nil {
			fmt.Println(bin)
		}
	case "check":
		var p toolchain.Paths
		if p, _, err = deps(ctx, log); err == nil {
			err = toolchain.Check(ctx, p, os.Stderr)
		}
	case "typecheck":
		var p toolchain.Paths
		if p, _, err = deps(ctx, log); err == nil {
			err = toolchain.Typecheck(ctx, p, os.Stderr)
		}
	case "run":
		err = runApp(ctx, log, os.Args[2:])
	case "-h", "--help", "help":
		usage()
		return
	default:
		fmt.Fprintf(os.Stderr, "zsmdesktop: unknown command %q\n", os.Args[1])
		usage()
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "zsmdesktop:", err)
		os.Exit(1)
	}
}

func deps(ctx context.Context, log *slog.Logger) (toolchain.Paths, string, error) {
	wd, _ := os.Getwd()
	repo, err := stack.FindRepoRoot(wd)
	if err != nil {
		return toolchain.Paths{}, "", err
	}
	p, err := toolchain.Resolve(repo)
	if err != nil {
		return p, "", err
	}
	driver, err := toolchain.EnsureAll(ctx, p, log)
	return p, driver, err
}

func build(ctx context.Context, log *slog.Logger) (string, error) {
	p, _, err := deps(ctx, log)
	if err != nil {
		return "", err
	}
	return toolchain.Build(ctx, p, os.Stderr)
}

func runApp(ctx context.Context, log *slog.Logger, args []string) error {
	fs := flag.NewFlagSet("run", flag.ExitOnError)
	server := fs.String("server", "", "gateway URL (default: the local stack's, from `go tool task up`)")
	dir := fs.String("dir", "", "state directory of the local stack (default <repo>/.zsm/dev)")
	_ = fs.Parse(args)
	if os.Getenv("DISPLAY") == "" && os.Getenv("WAYLAND_DISPLAY") == "" {
		return errors.New("no display: DISPLAY (or WAYLAND_DISPLAY) is not set; run this from a desktop session")
	}
	bin, err := build(ctx, log)
	if err != nil {
		return err
	}
	if *server == "" {
		d := *dir
		if d == "" {
			wd, _ := os.Getwd()
			repo, err := stack.FindRepoRoot(wd)
			if err != nil {
				return err
			}
			d = filepath.Join(repo, ".zsm", "dev")
		}
		s, err := stack.Attach(d)
		if err != nil {
			return fmt.Errorf("the local stack is not set up (%w); start it with: go tool task up", err)
		}
		*server = s.GatewayURL()
	}
	log.Info("starting the desktop app", "server", *server)
	cmd := exec.CommandContext(ctx, bin)
	cmd.Env = append(os.Environ(), "ZSM_SERVER="+*server)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	return cmd.Run()
}
