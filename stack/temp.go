package stack

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"
)

// StartTemp starts a throwaway stack for a test package's TestMain: a fresh
// state directory (searchable by the service user, since as root the
// services run as one), free ports, logs at warning level unless cfg says
// otherwise. stop stops the stack and removes the directory; it is never nil,
// so a TestMain can call it whatever happened. When err is not nil the tests
// must fail, not skip: the caller keeps err and reports it from each test.
func StartTemp(prefix string, cfg Config) (s *Stack, stop func(), err error) {
	// Its ports are picked at random when the configuration names none:
	// one taken between the pick and the bind (by another test's outgoing
	// connection, say) fails the start, and a fresh start picks others.
	auto := cfg.GatewayPort == 0 && cfg.AuthsvcPort == 0 && cfg.PostgrestPort == 0 &&
		cfg.PostgrestAdminPort == 0 && cfg.PostgresPort == 0 && cfg.RedisPort == 0
	for attempt := 1; ; attempt++ {
		s, stop, err = startTemp(prefix, cfg)
		if err == nil || !auto || !errors.Is(err, ErrPortInUse) || attempt == 3 {
			return s, stop, err
		}
		fmt.Fprintf(os.Stderr, "starting a test stack: %v; starting again with other ports\n", err)
	}
}

func startTemp(prefix string, cfg Config) (s *Stack, stop func(), err error) {
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		return nil, func() {}, err
	}
	cleanup := func() { os.RemoveAll(dir) }
	if err := os.Chmod(dir, 0o711); err != nil {
		cleanup()
		return nil, func() {}, err
	}
	cfg.Dir = dir
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	s, err = Start(ctx, cfg)
	if err != nil {
		cleanup()
		return nil, func() {}, err
	}
	return s, func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := s.Stop(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "stopping the test stack:", err)
		}
		cleanup()
	}, nil
}
