package session

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"zsm.dev/zsm/authsvc/srplogin"
	"zsm.dev/zsm/authsvc/store"
)

// accounts is sessions (the Store fake) plus an in-memory Accounts.
type accounts struct {
	sessions
	live       map[string]string // sid -> uid
	revokes    []string
	changeErr  error
	audited    []store.AuditEvent
	liveChecks int
}

func (a *accounts) SessionLive(_ context.Context, uid, sid string, _ time.Time) (bool, error) {
	a.liveChecks++
	return a.live[sid] == uid, nil
}

func (a *accounts) ListSessions(_ context.Context, uid string, _ time.Time) ([]store.SessionInfo, error) {
	var out []store.SessionInfo
	for sid, u := range a.live {
		if u == uid {
			out = append(out, store.SessionInfo{ID: sid})
		}
	}
	return out, nil
}

func (a *accounts) RevokeSession(_ context.Context, uid, sid, _ string, _ time.Time) error {
	a.revokes = append(a.revokes, sid)
	if a.live[sid] != uid {
		return store.ErrNotFound
	}
	delete(a.live, sid)
	return nil
}

func (a *accounts) UserByID(_ context.Context, id string) (store.User, error) {
	return store.User{ID: id, Identity: "alice@x.io"}, nil
}

func (a *accounts) ChangePassword(_ context.Context, c store.PasswordChange, _ time.Time) (int, error) {
	return 3, a.changeErr
}

func (a *accounts) Audit(_ context.Context, e store.AuditEvent) error {
	a.audited = append(a.audited, e)
	return nil
}

const (
	alice = "11111111-1111-4111-8111-111111111111"
	bob   = "22222222-2222-4222-8222-222222222222"
	sidA  = "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa"
	sidB  = "bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb"
)

func TestAuthenticateChecksTokenThenSession(t *testing.T) {
	m, _, sg, _ := newManager(t)
	acc := &accounts{live: map[string]string{sidA: alice}}
	m.store, m.accounts = acc, acc
	ctx := context.Background()

	tok, _, err := sg.Issue(alice, sidA, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	c, err := m.Authenticate(ctx, tok)
	if err != nil || c != (Caller{UserID: alice, SessionID: sidA}) {
		t.Fatalf("live session: %+v %v", c, err)
	}
	// Garbage never reaches the database.
	for _, bad := range []string{"", "x", tok + "x", "eyJhbGciOiJub25lIn0.e30."} {
		if _, err := m.Authenticate(ctx, bad); !errors.Is(err, ErrInvalidAccess) {
			t.Errorf("%q: %v", bad, err)
		}
	}
	if acc.liveChecks != 1 {
		t.Fatalf("%d session checks for one valid token", acc.liveChecks)
	}
	// An expired token, by the manager's clock.
	m.Now = func() time.Time { return time.Now().Add(time.Hour) }
	if _, err := m.Authenticate(ctx, tok); !errors.Is(err, ErrInvalidAccess) {
		t.Errorf("expired: %v", err)
	}
	m.Now = time.Now
	// A valid token whose session ended.
	delete(acc.live, sidA)
	if _, err := m.Authenticate(ctx, tok); !errors.Is(err, ErrSessionEnded) {
		t.Errorf("ended session: %v", err)
	}
	// A token whose sid is not a uuid.
	odd, _, _ := sg.Issue(alice, "sess-1", time.Now())
	if _, err := m.Authenticate(ctx, odd); !errors.Is(err, ErrInvalidAccess) {
		t.Errorf("non-uuid sid: %v", err)
	}
}

func TestRevokeOnlyOwnSessions(t *testing.T) {
	m, _, _, _ := newManager(t)
	acc := &accounts{live: map[string]string{sidA: alice, sidB: bob}}
	m.store, m.accounts = acc, acc
	ctx := context.Background()
	caller := Caller{UserID: alice, SessionID: sidA}
	if err := m.Revoke(ctx, caller, sidB); !errors.Is(err, ErrNotFound) {
		t.Fatalf("bob's session: %v", err)
	}
	if err := m.Revoke(ctx, caller, "not-a-uuid"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("non-uuid: %v", err)
	}
	if len(acc.revokes) != 1 {
		t.Fatalf("a malformed id reached the store: %v", acc.revokes)
	}
	if acc.live[sidB] != bob {
		t.Fatal("bob's session was ended")
	}
	if err := m.Revoke(ctx, caller, sidA); err != nil {
		t.Fatal(err)
	}
}

func TestChangePasswordMapsStoreErrors(t *testing.T) {
	m, _, _, _ := newManager(t)
	acc := &accounts{}
	m.store, m.accounts = acc, acc
	ctx := context.Background()
	caller := Caller{UserID: alice, SessionID: sidA}
	for storeErr, want := range map[error]error{
		store.ErrKeysDiffer: ErrKeysDiffer, store.ErrSessionEnded: ErrSessionEnded, store.ErrNotFound: ErrSessionEnded,
	} {
		acc.changeErr = storeErr
		if _, err := m.ChangePassword(ctx, caller, srplogin.Registration{}); !errors.Is(err, want) {
			t.Errorf("%v: got %v, want %v", storeErr, err, want)
		}
	}
	if len(acc.audited) != 1 || acc.audited[0].Type != store.EventPasswordChangeFailed || acc.audited[0].Detail["reason"] != "key_bundle_mismatch" {
		t.Fatalf("audited %+v", acc.audited)
	}
	acc.changeErr = nil
	if n, err := m.ChangePassword(ctx, caller, srplogin.Registration{}); n != 3 || err != nil {
		t.Fatalf("%d %v", n, err)
	}
}

// Session management needs the account store as much as the session
// store: without either the Manager does not start (it used to find the
// accounts by a type assertion and fail at the first request).
func TestNewNeedsEveryDependency(t *testing.T) {
	_, st, sg, _ := newManager(t)
	log := slog.New(slog.DiscardHandler)
	for name, f := range map[string]func() (*Manager, error){
		"no accounts": func() (*Manager, error) { return New(st, nil, sg, time.Hour, log) },
		"no sessions": func() (*Manager, error) { return New(nil, &accounts{}, sg, time.Hour, log) },
		"no signer":   func() (*Manager, error) { return New(st, &accounts{}, nil, time.Hour, log) },
		"no log":      func() (*Manager, error) { return New(st, &accounts{}, sg, time.Hour, nil) },
	} {
		if m, err := f(); err == nil || m != nil {
			t.Errorf("%s: New = %v, %v; want a start-up error", name, m, err)
		}
	}
}
