package srplogin_test

import (
	"context"
	"errors"
	"testing"

	"zsm.dev/zsm/authsvc/srplogin"
	"zsm.dev/zsm/authsvc/store"
)

// auditingUsers is memUsers that also records audit events, as *store.Store
// does.
type auditingUsers struct {
	*memUsers
	memAudit
}

func newAuditingService(t *testing.T) (*srplogin.Service, *auditingUsers) {
	t.Helper()
	users := &auditingUsers{memUsers: newUsers()}
	svc, err := srplogin.New(users, users, newHandshakes(), make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	return svc, users
}

// VerifyFor accepts only a handshake started for the caller's identity;
// every refusal is ErrLoginFailed and is recorded under the given event.
func TestVerifyForBindsTheHandshakeToTheCaller(t *testing.T) {
	ctx := context.Background()
	svc, users := newAuditingService(t)
	alice := signup(t, svc, "alice@x.io", secret1, floorKDF(16))
	bobSecret := []byte("bob's srp secret, derived elsewhere")
	bob := signup(t, svc, "bob@x.io", bobSecret, floorKDF(16))

	start := func(identity string, secret []byte) (string, string) {
		c := newClient(t, identity, secret)
		ch, err := svc.Init(ctx, ident(t, identity), c.A)
		if err != nil {
			t.Fatal(err)
		}
		return ch.HandshakeID, c.proof(t, ch)
	}

	// Bob's valid proof, presented as Alice's.
	hid, m := start("bob@x.io", bobSecret)
	if _, err := svc.VerifyFor(ctx, alice, hid, m, store.EventPasswordChangeFailed); !errors.Is(err, srplogin.ErrLoginFailed) {
		t.Fatalf("another user's handshake: %v", err)
	}
	// It is spent: Bob cannot use it either.
	if _, err := svc.VerifyFor(ctx, bob, hid, m, store.EventPasswordChangeFailed); !errors.Is(err, srplogin.ErrLoginFailed) {
		t.Fatalf("spent handshake: %v", err)
	}
	// A wrong password for the right account.
	hid, m = start("alice@x.io", []byte("not alice's secret at all......."))
	if _, err := svc.VerifyFor(ctx, alice, hid, m, store.EventPasswordChangeFailed); !errors.Is(err, srplogin.ErrLoginFailed) {
		t.Fatalf("wrong password: %v", err)
	}
	// No caller at all.
	hid, m = start("alice@x.io", secret1)
	if _, err := svc.VerifyFor(ctx, "", hid, m, store.EventPasswordChangeFailed); !errors.Is(err, srplogin.ErrLoginFailed) {
		t.Fatalf("empty caller: %v", err)
	}
	// The right one.
	hid, m = start("alice@x.io", secret1)
	v, err := svc.VerifyFor(ctx, alice, hid, m, store.EventPasswordChangeFailed)
	if err != nil || v.UserID != alice || v.Proof == "" {
		t.Fatalf("own handshake: %+v %v", v, err)
	}

	want := []struct{ user, reason string }{
		{alice, "handshake_of_another_identity"}, {bob, "handshake_unknown"}, {alice, "wrong_proof"},
	}
	if len(users.events) != len(want) {
		t.Fatalf("events %+v", users.events)
	}
	for i, e := range users.events {
		if e.Type != store.EventPasswordChangeFailed || e.UserID != want[i].user || e.Detail["reason"] != want[i].reason || e.Detail["identity"] != nil {
			t.Errorf("event %d: %+v, want %+v", i, e, want[i])
		}
	}
	// A refused re-proof is its own error (which is a failed login too),
	// so the HTTP layer can answer it apart from a failed login.
	for _, c := range []struct{ identity, user string }{{"bob@x.io", alice}, {"alice@x.io", ""}} {
		hid, m := start(c.identity, secret1)
		if _, err := svc.VerifyFor(ctx, c.user, hid, m, store.EventPasswordChangeFailed); !errors.Is(err, srplogin.ErrProofFailed) {
			t.Fatalf("%s as %q: %v, want ErrProofFailed", c.identity, c.user, err)
		}
	}
}

// A failed login is recorded: with the user for a known identity, without
// one (and with the identity, for operators) for an unknown one. Nothing of
// the exchange is in the event.
func TestFailedLoginsAreAudited(t *testing.T) {
	ctx := context.Background()
	svc, users := newAuditingService(t)
	alice := signup(t, svc, "alice@x.io", secret1, floorKDF(16))
	for _, identity := range []string{"alice@x.io", "nobody@x.io"} {
		c := newClient(t, identity, []byte("a wrong secret, for both of them"))
		ch, err := svc.Init(ctx, ident(t, identity), c.A)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := svc.Verify(ctx, ch.HandshakeID, c.proof(t, ch)); !errors.Is(err, srplogin.ErrLoginFailed) {
			t.Fatalf("%s: %v", identity, err)
		}
	}
	// An expired or replayed handshake: nobody to record it against.
	if _, err := svc.Verify(ctx, "AAAAAAAAAAAAAAAAAAAAAA", "00000000000000000000000000000000000000000000000000000000000000ff"); !errors.Is(err, srplogin.ErrLoginFailed) {
		t.Fatal(err)
	}
	if len(users.events) != 2 {
		t.Fatalf("events %+v", users.events)
	}
	k, u := users.events[0], users.events[1]
	if k.Type != store.EventLoginFailed || k.UserID != alice || k.Detail["reason"] != "wrong_proof" || len(k.Detail) != 1 {
		t.Errorf("known identity: %+v", k)
	}
	if u.Type != store.EventLoginFailed || u.UserID != "" || u.Detail["reason"] != "unknown_identity" || u.Detail["identity"] != "nobody@x.io" {
		t.Errorf("unknown identity: %+v", u)
	}
}
