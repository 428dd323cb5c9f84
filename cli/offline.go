package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"zsm.dev/zsm/sdk/offline"
	"zsm.dev/zsm/sdk/zsm"
)

// Reading vaults for run, read and export, with the offline cache of
// --cache-max-age (docs/ci.md): the server's answers are kept, sealed, after
// a read that verified, and used only when the server cannot be reached and
// only while they are younger than the limit.

// vaultRead is one vault and its secrets.
type vaultRead struct {
	vault   zsm.Vault
	secrets []zsm.Secret
}

func readAll(ctx context.Context, c *zsm.Client, names []string) ([]vaultRead, error) {
	out := make([]vaultRead, 0, len(names))
	for _, n := range names {
		v, ss, err := vaultSecrets(ctx, c, n)
		if err != nil {
			return nil, err
		}
		out = append(out, vaultRead{vault: v, secrets: ss})
	}
	return out, nil
}

// cannotReach reports whether err means the server could not be reached.
func cannotReach(err error) bool {
	return errors.Is(err, zsm.ErrUnreachable) || unreachable(err)
}

// readVaults reads the named vaults' secrets from the server; with
// --cache-max-age it keeps an offline copy after the read verified, and
// falls back to that copy when the server cannot be reached.
func (a *app) readVaults(ctx context.Context, names []string) ([]vaultRead, error) {
	l, err := a.login(ctx)
	if err == nil {
		if a.cacheMaxAge > 0 {
			l.c.RecordAnswers()
		}
		fetched := time.Now()
		var out []vaultRead
		if out, err = readAll(ctx, l.c, names); err == nil {
			if a.cacheMaxAge > 0 {
				if err := a.saveOffline(l, out, fetched); err != nil {
					a.warn("could not keep an offline copy: %v", err)
				}
			}
			return out, nil
		}
	}
	if a.cacheMaxAge == 0 || !cannotReach(err) {
		return nil, err
	}
	return a.readOffline(ctx, names, l, err)
}

// cacheOf is the offline cache of l: its machine token's or its person's.
func cacheOf(l *loggedIn) (*offline.Cache, error) {
	if l.machine != nil {
		return machineCache(*l.machine)
	}
	return personCache(l.session())
}

func (a *app) saveOffline(l *loggedIn, reads []vaultRead, fetched time.Time) error {
	cache, err := cacheOf(l)
	if err != nil {
		return err
	}
	vs := make([]zsm.Vault, 0, len(reads))
	for _, r := range reads {
		vs = append(vs, r.vault)
	}
	if err := l.c.SaveOffline(cache, vs, fetched); err != nil {
		return err
	}
	if l.machine == nil {
		// A person's state stays in the configuration directory.
		return nil
	}
	if a.state != nil {
		return a.saveState()
	}
	return nil
}

// readOffline reads the named vaults from the offline cache; online is the
// client that could not reach the server (nil when logging in failed).
func (a *app) readOffline(ctx context.Context, names []string, online *loggedIn, cause error) ([]vaultRead, error) {
	srv, _ := a.server()
	var c *zsm.Client
	var cache *offline.Cache
	tok, isMachine, err := machineToken()
	if err != nil {
		return nil, err
	}
	switch {
	case isMachine:
		if cache, err = machineCache(tok); err != nil {
			return nil, err
		}
		st, err := zsm.LoadFileState(filepath.Join(cache.Dir(), "state.json"))
		if err != nil {
			return nil, err
		}
		a.state = st
		if c, err = zsm.OfflineToken(srv, tok, os.Getenv("ZSM_AUDIENCE"), st); err != nil {
			return nil, err
		}
	default:
		l := online
		if l == nil {
			if l, err = a.openSessionNoRefresh(); err != nil {
				return nil, err
			}
		}
		if cache, err = personCache(l.session()); err != nil {
			return nil, err
		}
		st, err := a.loadState()
		if err != nil {
			return nil, err
		}
		c = zsm.New(l.session(), st, a.hc)
	}
	ids, err := cache.Vaults()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	copies, err := c.UseOffline(cache, ids, a.cacheMaxAge, now)
	if errors.Is(err, offline.ErrTooOld) || errors.Is(err, offline.ErrMissing) {
		return nil, withHint(ExitUnavailable, fmt.Errorf("the server cannot be reached (%v), and there is no cached copy younger than --cache-max-age %s", oneLine(cause.Error()), a.cacheMaxAge),
			"try again when the server is back")
	}
	if err != nil {
		return nil, err
	}
	out, err := readAll(ctx, c, names)
	if errors.Is(err, zsm.ErrNotFound) {
		return nil, withHint(ExitUnavailable, fmt.Errorf("the server cannot be reached, and a vault asked for has no cached copy younger than --cache-max-age %s: %w", a.cacheMaxAge, err),
			"try again when the server is back")
	}
	if err != nil {
		return nil, err
	}
	for _, r := range out {
		for _, cp := range copies {
			if cp.VaultID == r.vault.ID {
				a.info("zsm: using cached copy of vault %s from %s ago (the server could not be reached)", r.vault.Name, now.Sub(cp.Fetched).Round(time.Second))
			}
		}
	}
	return out, nil
}
