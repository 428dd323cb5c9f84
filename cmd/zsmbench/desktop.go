package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"zsm.dev/zsm/desktop/toolchain"
	"zsm.dev/zsm/desktop/webdriver"
	"zsm.dev/zsm/sdk/zsm"
	"zsm.dev/zsm/stack"
)

// benchDesktop times the desktop app as a person meets it, in a virtual X
// server driven through tauri-driver: from launching the binary to the
// sign-in screen, from pressing Sign in to the vault list with every vault
// and secret verified, and from pressing Unlock to the same. The baseline,
// measured in the same run and on the same account, is the Go SDK doing
// the same work without a window: log in (Argon2id, SRP, bundle), list and
// verify every vault and secret. The app is the one the tests build (debug
// profile, the crypto crates optimised; docs/benchmarks.md).
func benchDesktop(ctx context.Context, st *stack.Stack, c config) error {
	const rounds, vaults, perVault = 3, 3, 20
	fmt.Printf("\n== desktop app: start, sign in and unlock to the verified vault list (%d rounds, %d vaults of %d secrets) ==\n", rounds, vaults, perVault)
	p, err := toolchain.Resolve(st.RepoRoot())
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	driverBin, err := toolchain.EnsureAll(ctx, p, log)
	if err != nil {
		return err
	}
	var buildLog strings.Builder
	app, err := toolchain.Build(ctx, p, &buildLog)
	if err != nil {
		return fmt.Errorf("building the desktop app: %w\n%s", err, buildLog.String())
	}

	// The account, made with the Go SDK: vaults with secrets to verify.
	hc := zsm.NewHTTPClient()
	identity := fmt.Sprintf("desktop-bench-%d@example.test", time.Now().UnixNano())
	const password = "benchmark password"
	res, err := zsm.Signup(ctx, hc, st.GatewayURL(), identity, password, zsm.NewMemState())
	if err != nil {
		return err
	}
	sess, err := zsm.Login(ctx, hc, st.GatewayURL(), identity, password, res.SecretKey, zsm.NewMemState())
	if err != nil {
		return err
	}
	cl := zsm.New(sess, zsm.NewMemState(), hc)
	for i := 0; i < vaults; i++ {
		v, err := cl.CreateVault(ctx, fmt.Sprintf("vault-%d", i))
		if err != nil {
			return err
		}
		items := make([]zsm.NameValue, perVault)
		for j := range items {
			items[j] = zsm.NameValue{Name: fmt.Sprintf("SECRET_%02d", j), Value: strings.Repeat("v", 40)}
		}
		if _, err := cl.CreateSecrets(ctx, v, items, nil); err != nil {
			return err
		}
	}
	want := fmt.Sprintf("%d vaults, %d secrets verified", vaults, vaults*perVault)

	display, stopX, err := webdriver.StartXvfb()
	if err != nil {
		return err
	}
	defer stopX()
	tmp, err := os.MkdirTemp("", "zsm-desktop-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	env := append(os.Environ(),
		"DISPLAY="+display,
		"HOME="+tmp,
		"XDG_CONFIG_HOME="+filepath.Join(tmp, ".config"),
		"ZSM_DESKTOP_HOME="+filepath.Join(tmp, "zsm-desktop"),
		"ZSM_SERVER="+st.GatewayURL(),
	)
	logf, err := os.Create(filepath.Join(tmp, "tauri-driver.log"))
	if err != nil {
		return err
	}
	defer logf.Close()
	drv, err := webdriver.StartDriver(driverBin, env, logf)
	if err != nil {
		return err
	}
	defer drv.Stop()

	var start, signIn, unlock, goLogin []time.Duration
	for r := 0; r < rounds; r++ {
		// Baseline: the Go SDK, the same work without the app.
		t := time.Now()
		s, err := zsm.Login(ctx, hc, st.GatewayURL(), identity, password, res.SecretKey, zsm.NewMemState())
		if err != nil {
			return err
		}
		gc := zsm.New(s, zsm.NewMemState(), hc)
		l, err := gc.ListVaults(ctx)
		if err != nil {
			return err
		}
		n := 0
		for _, v := range l.Vaults {
			all, err := gc.List(ctx, v)
			if err != nil {
				return err
			}
			n += len(all)
		}
		if len(l.Vaults) != vaults || n != vaults*perVault {
			return fmt.Errorf("the Go SDK verified %d vaults and %d secrets, want %d and %d", len(l.Vaults), n, vaults, vaults*perVault)
		}
		goLogin = append(goLogin, time.Since(t))
		_ = gc.Logout(ctx)

		// The app: launch, sign in, lock, unlock, quit.
		d, err := appRound(drv.Base, app, identity, password, res.SecretKey.Text(), want)
		if err != nil {
			b, _ := os.ReadFile(logf.Name())
			return fmt.Errorf("round %d: %w\ntauri-driver log:\n%s", r+1, err, stack.TailLines(string(b), 30))
		}
		start, signIn, unlock = append(start, d[0]), append(signIn, d[1]), append(unlock, d[2])
	}
	msAll := func(ds []time.Duration) []float64 { return durMS(ds) }
	total := make([]float64, rounds)
	for i := range total {
		total[i] = ms(start[i]) + ms(signIn[i])
	}
	row := func(what string, v []float64) {
		each := make([]string, len(v))
		for i, x := range v {
			each[i] = fmt.Sprintf("%.0f", x)
		}
		fmt.Printf("  %-58s %6.0f ms   (rounds: %s)\n", what, median(v), strings.Join(each, ", "))
	}
	fmt.Printf("medians of %d rounds, each a new app process on the same device state (typing not counted)\n", rounds)
	row("launch to the sign-in screen", msAll(start))
	row("Sign in to the verified vault list (Argon2id, SRP, sync)", msAll(signIn))
	row("app start to the unlocked, verified vault list (the two)", total)
	row("Unlock after Lock to the verified vault list", msAll(unlock))
	row("baseline: Go SDK login, list and verify the same, no app", msAll(goLogin))
	fmt.Printf("  app start to the verified vault list / baseline: %.2f\n", median(total)/median(msAll(goLogin)))
	return nil
}

// appRound launches the app once and returns (launch to sign-in screen,
// Sign in to the verified list, Unlock to the verified list).
func appRound(base, app, identity, password, secretKey, want string) ([3]time.Duration, error) {
	var out [3]time.Duration
	t := time.Now()
	s, err := webdriver.NewSession(base, app)
	if err != nil {
		return out, err
	}
	defer s.Close()
	if _, err := s.WaitDisplayed("#sign-in-form", 60*time.Second); err != nil {
		return out, err
	}
	out[0] = time.Since(t)
	for _, f := range [][2]string{{"#identity", identity}, {"#password", password}, {"#secret-key", secretKey}} {
		if err := s.Type(f[0], f[1]); err != nil {
			return out, err
		}
	}
	t = time.Now()
	if err := s.Click("#sign-in"); err != nil {
		return out, err
	}
	if err := s.WaitText("#sync-status", want, 60*time.Second); err != nil {
		return out, err
	}
	out[1] = time.Since(t)
	if err := s.Click("#lock"); err != nil {
		return out, err
	}
	if err := s.Type("#unlock-password", password); err != nil {
		return out, err
	}
	t = time.Now()
	if err := s.Click("#unlock"); err != nil {
		return out, err
	}
	if err := s.WaitText("#sync-status", want, 60*time.Second); err != nil {
		return out, err
	}
	out[2] = time.Since(t)
	if err := s.Click("#sign-out"); err != nil {
		return out, err
	}
	_, err = s.WaitDisplayed("#sign-in-form", 30*time.Second)
	return out, err
}
