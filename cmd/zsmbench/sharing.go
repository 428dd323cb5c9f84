package main

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"zsm.dev/zsm/sdk/keys"
	"zsm.dev/zsm/sdk/trust"
	"zsm.dev/zsm/sdk/zsm"
	"zsm.dev/zsm/stack"
)

// benchUser is an account of the sharing phase.
type benchUser struct {
	identity string
	sk       keys.SecretKey
	c        *zsm.Client
}

func newBenchUser(ctx context.Context, st *stack.Stack, hc *http.Client, name string) (*benchUser, error) {
	u := &benchUser{identity: fmt.Sprintf("%s-%d@example.test", name, time.Now().UnixNano())}
	state := zsm.NewMemState()
	res, err := zsm.Signup(ctx, hc, st.GatewayURL(), u.identity, "benchmark password", state)
	if err != nil {
		return nil, err
	}
	u.sk = res.SecretKey
	sess, err := zsm.Login(ctx, hc, st.GatewayURL(), u.identity, "benchmark password", u.sk, state)
	if err != nil {
		return nil, err
	}
	u.c = zsm.New(sess, state, hc)
	return u, nil
}

// fresh is u on a new device: a new login, nothing remembered.
func (u *benchUser) fresh(ctx context.Context, st *stack.Stack, hc *http.Client) (*zsm.Client, error) {
	state := zsm.NewMemState()
	sess, err := zsm.Login(ctx, hc, st.GatewayURL(), u.identity, "benchmark password", u.sk, state)
	if err != nil {
		return nil, err
	}
	// Pins are synced, so the new device trusts whom u verified.
	return zsm.New(sess, state, hc), nil
}

func (u *benchUser) pin(ctx context.Context, other *benchUser) error {
	chk, err := u.c.CheckIdentity(ctx, other.identity)
	if err != nil {
		return err
	}
	_, err = u.c.ConfirmIdentity(ctx, chk, trust.Verified)
	return err
}

// benchSharing measures sharing (docs/crypto.md §8–§10): sharing a vault of
// 100 secrets with a verified member and removing them again (a new key
// generation); opening a vault whose membership log has 200 entries (and
// 100 key generations) on a new device; and a member's sync, verification
// and decryption of 10,000 secrets of a shared vault.
func benchSharing(ctx context.Context, st *stack.Stack, c config) error {
	fmt.Printf("\n== sharing: share, open a long log, a member's sync ==\n")
	// The phase grants and looks up more than the per-user hourly limits
	// allow (docs/security.md); lift them for the benchmark's own stack.
	conn, err := pgx.Connect(ctx, st.AdminDSN())
	if err != nil {
		return err
	}
	_, err = conn.Exec(ctx, `UPDATE auth.data_limits SET grants_per_hour = 1000000, lookups_per_hour = 1000000`)
	conn.Close(ctx)
	if err != nil {
		return err
	}
	hc := zsm.NewHTTPClient()
	a, err := newBenchUser(ctx, st, hc, "owner")
	if err != nil {
		return err
	}
	members := make([]*benchUser, 4)
	for i := range members {
		if members[i], err = newBenchUser(ctx, st, hc, fmt.Sprintf("member%d", i)); err != nil {
			return err
		}
		if err := a.pin(ctx, members[i]); err != nil {
			return err
		}
		if err := members[i].pin(ctx, a); err != nil {
			return err
		}
	}

	// Sharing a vault of 100 secrets, and unsharing it.
	v, err := a.c.CreateVault(ctx, "share100")
	if err != nil {
		return err
	}
	items := make([]zsm.NameValue, 100)
	for i := range items {
		items[i] = zsm.NameValue{Name: fmt.Sprintf("S_%03d", i), Value: strings.Repeat("v", 40)}
	}
	if _, err := a.c.CreateSecrets(ctx, v, items, nil); err != nil {
		return err
	}
	var shareT, unshareT []time.Duration
	for i := 0; i < 3; i++ {
		m := members[i]
		if v, err = a.c.VaultByName(ctx, "share100"); err != nil {
			return err
		}
		t := time.Now()
		if _, err := a.c.Share(ctx, v, m.identity, "editor", false); err != nil {
			return err
		}
		shareT = append(shareT, time.Since(t))
		mv, err := m.c.VaultByName(ctx, "share100")
		if err != nil {
			return err
		}
		if all, err := m.c.List(ctx, mv); err != nil || len(all) != 100 {
			return fmt.Errorf("the member reads %d secrets: %v", len(all), err)
		}
		if v, err = a.c.VaultByName(ctx, "share100"); err != nil {
			return err
		}
		t = time.Now()
		if err := a.c.Unshare(ctx, v, m.identity); err != nil {
			return err
		}
		unshareT = append(unshareT, time.Since(t))
	}
	fmt.Printf("share a vault of 100 secrets with a verified member (lookup, pin check, add entry, X-Wing grant, manifest): median %.0f ms of 3\n",
		ms(result{latencies: shareT}.pct(0.5)))
	fmt.Printf("unshare it again (remove entry, new key generation sealed to the rest, key chain, manifest): median %.0f ms of 3\n",
		ms(result{latencies: unshareT}.pct(0.5)))
	if v, err = a.c.VaultByName(ctx, "share100"); err != nil {
		return err
	}
	t := time.Now()
	res, err := a.c.Rekey(ctx, v)
	if err != nil {
		return err
	}
	fmt.Printf("rekey it (new generation, %d secrets re-encrypted): %.0f ms\n", res.Reencrypted, ms(time.Since(t)))

	// A log of 200 entries: a member added and removed 100 times (100 key
	// generations), then opened on a new device of the owner and of a member.
	long, err := a.c.CreateVault(ctx, "log200")
	if err != nil {
		return err
	}
	t = time.Now()
	for i := 0; i < 100; i++ {
		m := members[i%2]
		if long, err = a.c.VaultByName(ctx, "log200"); err != nil {
			return err
		}
		if _, err := a.c.Share(ctx, long, m.identity, "viewer", false); err != nil {
			return err
		}
		if long, err = a.c.VaultByName(ctx, "log200"); err != nil {
			return err
		}
		if err := a.c.Unshare(ctx, long, m.identity); err != nil {
			return err
		}
	}
	if long, err = a.c.VaultByName(ctx, "log200"); err != nil {
		return err
	}
	if _, err := a.c.Share(ctx, long, members[3].identity, "viewer", false); err != nil {
		return err
	}
	fmt.Printf("built a log of 201 entries (100 generations) in %.1f s\n", time.Since(t).Seconds())
	for _, who := range []*benchUser{a, members[3]} {
		var ds []time.Duration
		for i := 0; i < 3; i++ {
			cl, err := who.fresh(ctx, st, hc) // a new device: nothing cached, nothing remembered
			if err != nil {
				return err
			}
			t := time.Now()
			lv, err := cl.VaultByName(ctx, "log200")
			if err != nil {
				return err
			}
			if lv.Generation != 101 {
				return fmt.Errorf("generation %d, want 101", lv.Generation)
			}
			if _, err := cl.List(ctx, lv); err != nil {
				return err
			}
			ds = append(ds, time.Since(t))
		}
		fmt.Printf("open the vault with the 201-entry log on a new device as %s (list, replay, anchor, grant, 100-key chain, manifest, read): median %.0f ms of 3\n",
			map[bool]string{true: "the owner", false: "a member"}[who == a], ms(result{latencies: ds}.pct(0.5)))
	}

	// A member's sync of 10,000 secrets in a shared vault.
	big, err := a.c.CreateVault(ctx, "shared10k")
	if err != nil {
		return err
	}
	const n = 10000
	many := make([]zsm.NameValue, n)
	for i := range many {
		many[i] = zsm.NameValue{Name: fmt.Sprintf("SECRET_%05d", i), Value: strings.Repeat("v", 40) + fmt.Sprint(i)}
	}
	if _, err := a.c.CreateSecrets(ctx, big, many, nil); err != nil {
		return err
	}
	if big, err = a.c.VaultByName(ctx, "shared10k"); err != nil {
		return err
	}
	if _, err := a.c.Share(ctx, big, members[3].identity, "viewer", false); err != nil {
		return err
	}
	mc := members[3].c
	var syncs []time.Duration
	for i := 0; i < 3; i++ {
		t := time.Now()
		mv, err := mc.VaultByName(ctx, "shared10k")
		if err != nil {
			return err
		}
		all, err := mc.List(ctx, mv)
		if err != nil {
			return err
		}
		if len(all) != n {
			return fmt.Errorf("synced %d secrets, want %d", len(all), n)
		}
		syncs = append(syncs, time.Since(t))
	}
	fmt.Printf("a member's sync + verify (log, grant, manifest) + decrypt of %d secrets in a shared vault: median %.2f s of 3 (target < 1 s)\n",
		n, result{latencies: syncs}.pct(0.5).Seconds())
	return nil
}
