package cli

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"time"

	"zsm.dev/zsm/sdk/machinetoken"
	"zsm.dev/zsm/sdk/zsm"
)

// loggedIn is an open session and its client.
type loggedIn struct {
	c     *zsm.Client
	key   []byte
	keyIn string // keyring | env
	acct  *account
	accts *accountsFile
	// machine is the ZSM_TOKEN token, for a machine token's client.
	machine *machinetoken.Token
}

func (l *loggedIn) session() *zsm.Session { return l.c.Session() }

var hintLogin = "run `zsm login`"

// sessionKey finds the key of this home's sealed session: ZSM_SESSION, or
// the keyring entry login left.
func (a *app) sessionKey(h *home, accts *accountsFile) ([]byte, string, error) {
	if v, ok := os.LookupEnv("ZSM_SESSION"); ok && v != "" {
		k, err := zsm.DecodeSessionKey(v)
		if err != nil {
			return nil, "", notLoggedIn("ZSM_SESSION is not a session key", "export the ZSM_SESSION that `zsm login` printed, or run `zsm login` again")
		}
		return k, inEnv, nil
	}
	if accts.Session != nil && accts.Session.KeyIn == inKeyring && h.kr != nil {
		t, err := h.kr.Get(h.sessionKeyName())
		if err == nil {
			if k, err := zsm.DecodeSessionKey(t); err == nil {
				return k, inKeyring, nil
			}
		}
		return nil, "", notLoggedIn("the session key is missing from the keyring", hintLogin)
	}
	return nil, "", notLoggedIn("the session is locked: ZSM_SESSION is not set", "export ZSM_SESSION=… as printed by `zsm login` (or eval \"$(zsm login)\"), or run `zsm login`")
}

// readSealed reads the sealed session, or says there is none.
func readSealed(h *home) ([]byte, error) {
	b, err := os.ReadFile(h.path("session"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, notLoggedIn("not logged in", hintLogin)
	}
	return b, err
}

// login opens the stored session and returns a client whose token
// refreshes re-seal the session file under the same key.
//
// With ZSM_TOKEN set, the machine token logs in instead: no session file,
// keyring or configuration directory is read or written.
func (a *app) login(ctx context.Context) (*loggedIn, error) {
	if a.cur != nil {
		return a.cur, nil
	}
	tok, isMachine, err := machineToken()
	if err != nil {
		return nil, err
	}
	if isMachine {
		l, err := a.machineLogin(ctx, tok)
		if err == nil {
			a.cur = l
		}
		return l, err
	}
	l, err := a.openSession(ctx)
	if err == nil {
		a.cur = l
	}
	return l, err
}

func (a *app) openSession(ctx context.Context) (*loggedIn, error) {
	l, h, err := a.openStored()
	if err != nil {
		return nil, err
	}
	if err := a.refreshIfStale(ctx, h, l); err != nil {
		return nil, err
	}
	return l, nil
}

// openSessionNoRefresh opens the stored session as it is, without asking
// the server anything (reading from the offline cache, logging out).
func (a *app) openSessionNoRefresh() (*loggedIn, error) {
	l, _, err := a.openStored()
	return l, err
}

// openStored opens the sealed session of this home.
func (a *app) openStored() (*loggedIn, *home, error) {
	h, err := a.home()
	if err != nil {
		return nil, nil, err
	}
	accts, err := h.loadAccounts()
	if err != nil {
		return nil, nil, err
	}
	sealed, err := readSealed(h)
	if err != nil {
		return nil, nil, err
	}
	key, keyIn, err := a.sessionKey(h, accts)
	if err != nil {
		return nil, nil, err
	}
	s, err := zsm.OpenSession(sealed, key)
	if err != nil {
		if errors.Is(err, zsm.ErrSessionKey) {
			return nil, nil, notLoggedIn("the session key does not open the stored session", "export the ZSM_SESSION printed by your latest `zsm login`, or run `zsm login`")
		}
		return nil, nil, notLoggedIn(err.Error(), hintLogin)
	}
	if srv, explicit := a.server(); explicit && srv != s.Server {
		return nil, nil, notLoggedIn("not logged in to "+srv+" (the session is for "+s.Server+")", "run `zsm login --server "+srv+"`")
	}
	st, err := a.loadState()
	if err != nil {
		return nil, nil, err
	}
	l := &loggedIn{key: key, keyIn: keyIn, accts: accts, acct: accts.Accounts[accountKey(s.Server, s.Identity)]}
	l.c = zsm.New(s, st, a.hc)
	l.c.OnRefresh = func(ns *zsm.Session) {
		b, err := zsm.ResealSession(ns, key)
		if err == nil {
			err = zsm.WriteFileAtomic(h.path("session"), b, 0o600)
		}
		if err != nil {
			a.warn("could not store the refreshed session: %v", err)
		}
	}
	return l, h, nil
}

// refreshIfStale rotates tokens that expire within a minute, under a lock
// that every zsm process of this home shares: a refresh token works once,
// and a second use revokes the session, so two commands must not both
// refresh. Whoever comes second finds the refreshed session in the file.
func (a *app) refreshIfStale(ctx context.Context, h *home, l *loggedIn) error {
	stale := func(s *zsm.Session) bool { return time.Until(s.AccessExpiry) < time.Minute }
	if !stale(l.session()) {
		return nil
	}
	unlock, err := lockFile(h.path("session.lock"))
	if err != nil {
		return err
	}
	defer unlock()
	if sealed, err := os.ReadFile(h.path("session")); err == nil {
		if s, err := zsm.OpenSession(sealed, l.key); err == nil && !stale(s) {
			onRefresh := l.c.OnRefresh
			st, _ := a.loadState()
			l.c = zsm.New(s, st, a.hc)
			l.c.OnRefresh = onRefresh
			return nil
		}
	}
	if err := l.c.Refresh(ctx); err != nil {
		if errors.Is(err, zsm.ErrSessionExpired) {
			return notLoggedIn("the session has ended", hintLogin)
		}
		return err
	}
	return nil
}

// storeSession seals s under a fresh key, writes the session file and puts
// the key in the keyring, or hands it to the user (keyIn "env").
func (a *app) storeSession(h *home, accts *accountsFile, s *zsm.Session) (key []byte, keyIn string, err error) {
	sealed, key, err := zsm.SealSession(s)
	if err != nil {
		return nil, "", err
	}
	if err := zsm.WriteFileAtomic(h.path("session"), sealed, 0o600); err != nil {
		return nil, "", err
	}
	keyIn = inEnv
	if h.kr != nil {
		if err := h.kr.Set(h.sessionKeyName(), zsm.EncodeSessionKey(key)); err == nil {
			keyIn = inKeyring
		} else {
			a.warn("the keyring refused the session key (%v); using ZSM_SESSION instead", err)
		}
	}
	acct := accountKey(s.Server, s.Identity)
	accts.Session = &sessionInfo{Account: acct, KeyIn: keyIn, CreatedAt: time.Now().UTC()}
	accts.Last = acct
	return key, keyIn, h.saveAccounts(accts)
}

// dropSession removes the local session: file, keyring entry, record.
func (a *app) dropSession(h *home, accts *accountsFile) error {
	if h.kr != nil {
		_ = h.kr.Delete(h.sessionKeyName())
	}
	if err := os.Remove(h.path("session")); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	accts.Session = nil
	return h.saveAccounts(accts)
}
