package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/uuid"

	"zsm.dev/zsm/desktop/toolchain"
	"zsm.dev/zsm/sdk/keys"
	"zsm.dev/zsm/sdk/zsm"
	"zsm.dev/zsm/stack"
)

type rustTimes struct {
	LoginMS  float64   `json:"login_ms"`
	UnlockMS []float64 `json:"unlock_ms"`
	SyncMS   []float64 `json:"sync_ms"`
	Synced   int       `json:"synced"`
	WriteMS  []float64 `json:"write_ms"`
}

func durMS(ds []time.Duration) []float64 {
	out := make([]float64, len(ds))
	for i, d := range ds {
		out[i] = ms(d)
	}
	return out
}

// benchRust compares the Rust client core (crates/zsm-core, release build)
// with the Go SDK in one run, on the same account and stack: unlock
// (Argon2id at the floor and opening the key bundle), sync + verify +
// decrypt of 10,000 secrets, and sequential single-secret writes.
func benchRust(ctx context.Context, st *stack.Stack, c config) error {
	fmt.Printf("\n== zsm-core (Rust) against the Go SDK: unlock, sync, write ==\n")
	// The checkout's own target directory (toolchain.CargoTargetDir, the
	// one Taskfile.yml passes as CARGO_TARGET_DIR).
	target, err := toolchain.CargoTargetDir(st.RepoRoot())
	if err != nil {
		return err
	}
	build := exec.CommandContext(ctx, "cargo", "build", "--release", "--locked", "-p", "zsm-core", "--example", "zsm-bench")
	build.Dir = st.RepoRoot()
	build.Env = append(os.Environ(), "CARGO_TARGET_DIR="+target)
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("building zsm-core's benchmark: %v\n%s", err, out)
	}
	bin := filepath.Join(target, "release", "examples", "zsm-bench")

	// Rounds alternate between the two clients (Go, then a zsm-core
	// process), so that both see the same machine load and vaults of the
	// same size; each writes to a vault of its own.
	const rounds, writesPerRound, n = 4, 15, 10000
	hc := zsm.NewHTTPClient()
	state := zsm.NewMemState()
	identity := fmt.Sprintf("rust-bench-%d@example.test", time.Now().UnixNano())
	password := "benchmark password"
	res, err := zsm.Signup(ctx, hc, st.GatewayURL(), identity, password, state)
	if err != nil {
		return err
	}
	sess, err := zsm.Login(ctx, hc, st.GatewayURL(), identity, password, res.SecretKey, state)
	if err != nil {
		return err
	}
	cl := zsm.New(sess, state, hc)
	v, err := cl.CreateVault(ctx, "sync")
	if err != nil {
		return err
	}
	items := make([]zsm.NameValue, n)
	for i := range items {
		items[i] = zsm.NameValue{Name: fmt.Sprintf("SECRET_%05d", i), Value: strings.Repeat("v", 40) + fmt.Sprint(i)}
	}
	if _, err := cl.CreateSecrets(ctx, v, items, nil); err != nil {
		return err
	}
	wGo, err := cl.CreateVault(ctx, "writes-go")
	if err != nil {
		return err
	}
	if _, err := cl.CreateVault(ctx, "writes-rust"); err != nil {
		return err
	}

	// Go: unlock is what a login derives and opens locally, the same work
	// as zsm-core's Client::unlock: Argon2id, HKDF, parse and open a bundle.
	ak, err := keys.NewAccountKeys(rand.Reader)
	if err != nil {
		return err
	}
	uid := uuid.New()
	d0, err := keys.Derive(password, res.SecretKey, identity, res.KDF)
	if err != nil {
		return err
	}
	b0, err := ak.Bundle(d0.UnlockKey, uid, rand.Reader)
	if err != nil {
		return err
	}
	bundleJSON, err := json.Marshal(b0)
	if err != nil {
		return err
	}
	var goUnlock, goSync, goWrite []time.Duration
	var r rustTimes
	for round := 0; round < rounds; round++ {
		// Go: unlock twice (the first call of a round is not counted), one
		// sync, writesPerRound creates.
		for i := 0; i < 2; i++ {
			t := time.Now()
			d, err := keys.Derive(password, res.SecretKey, identity, res.KDF)
			if err != nil {
				return err
			}
			b, err := keys.ParseBundle(bundleJSON)
			if err != nil {
				return err
			}
			if _, err := keys.OpenBundle(b, d.UnlockKey, uid); err != nil {
				return err
			}
			if i > 0 {
				goUnlock = append(goUnlock, time.Since(t))
			}
		}
		t := time.Now()
		all, err := cl.List(ctx, v)
		if err != nil {
			return err
		}
		if len(all) != n {
			return fmt.Errorf("Go synced %d secrets, want %d", len(all), n)
		}
		goSync = append(goSync, time.Since(t))
		for i := 0; i < writesPerRound; i++ {
			t := time.Now()
			if _, err := cl.CreateSecret(ctx, wGo, fmt.Sprintf("GO_W_%d_%d", round, i), "value"); err != nil {
				return err
			}
			goWrite = append(goWrite, time.Since(t))
		}

		// zsm-core: the same in a process of its own (its login is not
		// counted).
		run := exec.CommandContext(ctx, bin, "--server", st.GatewayURL(), "--identity", identity, "--password", password,
			"--secret-key", res.SecretKey.Text(), "--sync-vault", "sync", "--write-vault", "writes-rust",
			"--rounds", "1", "--writes", fmt.Sprint(writesPerRound), "--name-prefix", fmt.Sprintf("RUST_W_%d_", round))
		var stderr bytes.Buffer
		run.Stderr = &stderr
		out, err := run.Output()
		if err != nil {
			return fmt.Errorf("zsm-core's benchmark: %v\n%s", err, stderr.String())
		}
		var one rustTimes
		if err := json.Unmarshal(out, &one); err != nil {
			return fmt.Errorf("zsm-core's benchmark printed %q: %w", out, err)
		}
		if one.Synced != n || len(one.UnlockMS) != 2 {
			return fmt.Errorf("zsm-core synced %d secrets (want %d), unlocked %d times (want 2)", one.Synced, n, len(one.UnlockMS))
		}
		r.LoginMS = max(r.LoginMS, one.LoginMS)
		r.UnlockMS = append(r.UnlockMS, one.UnlockMS[1:]...)
		r.SyncMS = append(r.SyncMS, one.SyncMS...)
		r.WriteMS = append(r.WriteMS, one.WriteMS...)
		r.Synced = one.Synced
	}
	if r.Synced != n {
		return fmt.Errorf("zsm-core synced %d secrets, want %d", r.Synced, n)
	}
	row := func(what string, goMS, rustMS float64) {
		fmt.Printf("  %-44s Go %8.1f ms   Rust %8.1f ms   Rust/Go %.2f\n", what, goMS, rustMS, rustMS/goMS)
	}
	fmt.Printf("medians of %d alternating rounds (unlock: %d, each after a first call; sync: %d; writes: %d sequential creates each)\n",
		rounds, rounds, rounds, rounds*writesPerRound)
	row("unlock (Argon2id m=64 MiB t=3 p=4 + bundle)", median(durMS(goUnlock)), median(r.UnlockMS))
	row(fmt.Sprintf("sync + verify + decrypt %d secrets", n), median(durMS(goSync)), median(r.SyncMS))
	row("single-secret write (create)", median(durMS(goWrite)), median(r.WriteMS))
	fmt.Printf("  Rust login through the gateway (Argon2id, SRP, bundle), slowest of %d: %.0f ms\n", rounds, r.LoginMS)
	return nil
}
