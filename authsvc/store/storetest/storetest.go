// Package storetest is the contract of a signer.KeyStore, as one suite of
// tests that every implementation runs: *store.Store against a real
// PostgreSQL (tests/integration) and memstore.Keys in memory (its own
// tests). Code tested against the in-memory store can then trust that the
// database behaves the same, and the fake cannot drift from the real
// thing unnoticed. The model is dex's storage/conformance.
package storetest

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"zsm.dev/zsm/authsvc/signer"
	"zsm.dev/zsm/authsvc/store"
)

// RunKeyStore runs the suite. newStore returns a store with no keys; it is
// called once per subtest.
func RunKeyStore(t *testing.T, newStore func(t *testing.T) signer.KeyStore) {
	tests := []struct {
		name string
		run  func(t *testing.T, ks signer.KeyStore)
	}{
		{"Empty", testEmpty},
		{"InsertAndRead", testInsertAndRead},
		{"TxSeesItsOwnWrites", testOwnWrites},
		{"ErrorRollsBack", testRollback},
		{"Promote", testPromote},
		{"Remove", testRemove},
		{"Constraints", testConstraints},
		{"PublishAndAudit", testPublishAndAudit},
		{"OneTxAtATime", testSerialized},
		{"ReadsDoNotWaitForATx", testReadsDoNotWait},
		{"ResultsAreCopies", testCopies},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.run(t, newStore(t)) })
	}
}

var kek = func() []byte {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return b
}()

// key makes a real signing key in state.
func key(t *testing.T, state string, now time.Time) store.SigningKey {
	t.Helper()
	k, err := signer.GenerateKey(kek, state, now)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// at is a time PostgreSQL keeps exactly (whole microseconds, UTC).
func at(d time.Duration) time.Time {
	return time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC).Add(d).Truncate(time.Microsecond)
}

func inTx(t *testing.T, ks signer.KeyStore, f func(ctx context.Context, tx store.KeyTx) error) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return ks.InKeyTx(ctx, f)
}

func mustTx(t *testing.T, ks signer.KeyStore, f func(ctx context.Context, tx store.KeyTx) error) {
	t.Helper()
	if err := inTx(t, ks, f); err != nil {
		t.Fatal(err)
	}
}

func committed(t *testing.T, ks signer.KeyStore) []store.SigningKey {
	t.Helper()
	keys, err := ks.SigningKeys(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

func byKID(keys []store.SigningKey, kid string) *store.SigningKey {
	for i := range keys {
		if keys[i].KID == kid {
			return &keys[i]
		}
	}
	return nil
}

func kids(keys []store.SigningKey) []string {
	var out []string
	for _, k := range keys {
		out = append(out, k.KID+"/"+k.State)
	}
	return out
}

func sameTime(a *time.Time, b time.Time) bool { return a != nil && a.Equal(b) }

func insert(ks []store.SigningKey, now time.Time) func(ctx context.Context, tx store.KeyTx) error {
	return func(ctx context.Context, tx store.KeyTx) error {
		for _, k := range ks {
			if err := tx.Insert(ctx, k, now); err != nil {
				return err
			}
		}
		return nil
	}
}

func testEmpty(t *testing.T, ks signer.KeyStore) {
	if keys := committed(t, ks); len(keys) != 0 {
		t.Fatalf("a new store holds %v", kids(keys))
	}
	mustTx(t, ks, func(ctx context.Context, tx store.KeyTx) error {
		keys, err := tx.Keys(ctx)
		if err == nil && len(keys) != 0 {
			err = fmt.Errorf("a new store holds %v", kids(keys))
		}
		return err
	})
}

func testInsertAndRead(t *testing.T, ks signer.KeyStore) {
	cur := key(t, store.KeyCurrent, at(-time.Hour)) // CreatedAt and PublishedAt are the insert's, not the key's
	act := at(-time.Minute)
	cur.ActivatedAt = &act
	next := key(t, store.KeyNext, at(0))
	mustTx(t, ks, insert([]store.SigningKey{cur}, at(time.Second)))
	mustTx(t, ks, insert([]store.SigningKey{next}, at(2*time.Second)))

	keys := committed(t, ks)
	if len(keys) != 2 || keys[0].KID != cur.KID || keys[1].KID != next.KID {
		t.Fatalf("keys %v, want the current then the next key (oldest first)", kids(keys))
	}
	for i, want := range []struct {
		k         store.SigningKey
		created   time.Time
		activated *time.Time
	}{{cur, at(time.Second), &act}, {next, at(2 * time.Second), nil}} {
		got := keys[i]
		if got.State != want.k.State || !slices.Equal(got.Public, want.k.Public) || !slices.Equal(got.Sealed, want.k.Sealed) {
			t.Errorf("%s: state %q, public or sealed half changed on the way", got.KID, got.State)
		}
		if !got.CreatedAt.Equal(want.created) || !sameTime(got.PublishedAt, want.created) {
			t.Errorf("%s: created %v published %v, want both %v (the insert's time)", got.KID, got.CreatedAt, got.PublishedAt, want.created)
		}
		if (want.activated == nil) != (got.ActivatedAt == nil) || (want.activated != nil && !got.ActivatedAt.Equal(*want.activated)) {
			t.Errorf("%s: activated %v, want %v", got.KID, got.ActivatedAt, want.activated)
		}
		if got.RetiredAt != nil || got.RemovedAt != nil || got.Revoked {
			t.Errorf("%s: a new key is retired %v, removed %v, revoked %v", got.KID, got.RetiredAt, got.RemovedAt, got.Revoked)
		}
	}
	// A transaction reads the same.
	mustTx(t, ks, func(ctx context.Context, tx store.KeyTx) error {
		in, err := tx.Keys(ctx)
		if err == nil && !slices.Equal(kids(in), kids(keys)) {
			err = fmt.Errorf("in a transaction %v, outside %v", kids(in), kids(keys))
		}
		return err
	})
}

func testOwnWrites(t *testing.T, ks signer.KeyStore) {
	k := key(t, store.KeyCurrent, at(0))
	mustTx(t, ks, func(ctx context.Context, tx store.KeyTx) error {
		if err := tx.Insert(ctx, k, at(0)); err != nil {
			return err
		}
		keys, err := tx.Keys(ctx)
		if err != nil {
			return err
		}
		if byKID(keys, k.KID) == nil {
			return fmt.Errorf("the transaction does not see its own insert: %v", kids(keys))
		}
		return nil
	})
}

func testRollback(t *testing.T, ks signer.KeyStore) {
	cur, next := key(t, store.KeyCurrent, at(0)), key(t, store.KeyNext, at(0))
	mustTx(t, ks, insert([]store.SigningKey{cur, next}, at(0)))
	before := committed(t, ks)
	boom := errors.New("a step failed")
	err := inTx(t, ks, func(ctx context.Context, tx store.KeyTx) error {
		if err := tx.Promote(ctx, next.KID, at(time.Minute)); err != nil {
			return err
		}
		if err := tx.Insert(ctx, key(t, store.KeyNext, at(time.Minute)), at(time.Minute)); err != nil {
			return err
		}
		if err := tx.Remove(ctx, cur.KID, true, at(time.Minute)); err != nil {
			return err
		}
		if err := tx.Audit(ctx, store.AuditEvent{Type: store.EventSigningKeyRotated, Detail: map[string]any{"kid": next.KID}}); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("InKeyTx = %v, want the error of f", err)
	}
	after := committed(t, ks)
	if !slices.Equal(kids(after), kids(before)) {
		t.Fatalf("a failed transaction left %v behind (before: %v)", kids(after), kids(before))
	}
	if k := byKID(after, cur.KID); k.RetiredAt != nil || k.RemovedAt != nil {
		t.Fatalf("a failed transaction changed %s: %+v", cur.KID, k)
	}
}

func testPromote(t *testing.T, ks signer.KeyStore) {
	cur, next := key(t, store.KeyCurrent, at(0)), key(t, store.KeyNext, at(0))
	mustTx(t, ks, insert([]store.SigningKey{cur, next}, at(0)))
	// Only the next key can be promoted.
	for _, kid := range []string{cur.KID, "no-such-key-1234"} {
		err := inTx(t, ks, func(ctx context.Context, tx store.KeyTx) error { return tx.Promote(ctx, kid, at(time.Minute)) })
		if err == nil {
			t.Errorf("Promote(%s) succeeded; only the next key may become current", kid)
		}
	}
	if keys := committed(t, ks); byKID(keys, cur.KID).State != store.KeyCurrent {
		t.Fatalf("a refused promotion changed the keys: %v", kids(keys))
	}
	mustTx(t, ks, func(ctx context.Context, tx store.KeyTx) error { return tx.Promote(ctx, next.KID, at(time.Minute)) })
	keys := committed(t, ks)
	c, n := byKID(keys, cur.KID), byKID(keys, next.KID)
	if c.State != store.KeyRetired || !sameTime(c.RetiredAt, at(time.Minute)) {
		t.Errorf("old current key: %s retired %v, want retired at the promotion", c.State, c.RetiredAt)
	}
	if n.State != store.KeyCurrent || !sameTime(n.ActivatedAt, at(time.Minute)) {
		t.Errorf("next key: %s activated %v, want current since the promotion", n.State, n.ActivatedAt)
	}
	// Without a current key (a new database's first next key), too.
	other := key(t, store.KeyNext, at(2*time.Minute))
	mustTx(t, ks, func(ctx context.Context, tx store.KeyTx) error {
		if err := tx.Remove(ctx, next.KID, false, at(2*time.Minute)); err != nil {
			return err
		}
		if err := tx.Insert(ctx, other, at(2*time.Minute)); err != nil {
			return err
		}
		return tx.Promote(ctx, other.KID, at(2*time.Minute))
	})
	if k := byKID(committed(t, ks), other.KID); k.State != store.KeyCurrent {
		t.Fatalf("promotion without a current key: %s", k.State)
	}
}

func testRemove(t *testing.T, ks signer.KeyStore) {
	cur, next, ret := key(t, store.KeyCurrent, at(0)), key(t, store.KeyNext, at(0)), key(t, store.KeyRetired, at(0))
	mustTx(t, ks, insert([]store.SigningKey{cur, next, ret}, at(0)))
	mustTx(t, ks, func(ctx context.Context, tx store.KeyTx) error { return tx.Promote(ctx, next.KID, at(time.Minute)) })
	mustTx(t, ks, func(ctx context.Context, tx store.KeyTx) error {
		return errors.Join(tx.Remove(ctx, cur.KID, false, at(time.Hour)), tx.Remove(ctx, next.KID, true, at(time.Hour)))
	})
	keys := committed(t, ks)
	pruned, revoked := byKID(keys, cur.KID), byKID(keys, next.KID)
	if pruned.State != store.KeyRemoved || pruned.Revoked || !sameTime(pruned.RemovedAt, at(time.Hour)) ||
		!sameTime(pruned.RetiredAt, at(time.Minute)) {
		t.Errorf("removed retired key: %s revoked %v removed %v retired %v; want removed at the removal, retired when it was",
			pruned.State, pruned.Revoked, pruned.RemovedAt, pruned.RetiredAt)
	}
	if revoked.State != store.KeyRemoved || !revoked.Revoked || !sameTime(revoked.RemovedAt, at(time.Hour)) ||
		!sameTime(revoked.RetiredAt, at(time.Hour)) {
		t.Errorf("revoked current key: %s revoked %v removed %v retired %v; want removed, revoked and retired at the removal",
			revoked.State, revoked.Revoked, revoked.RemovedAt, revoked.RetiredAt)
	}
	// A removed key or an unknown one cannot be removed: ErrNotFound.
	for _, kid := range []string{cur.KID, "no-such-key-1234"} {
		err := inTx(t, ks, func(ctx context.Context, tx store.KeyTx) error { return tx.Remove(ctx, kid, true, at(2*time.Hour)) })
		if !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Remove(%s) = %v, want ErrNotFound", kid, err)
		}
	}
	if k := byKID(committed(t, ks), ret.KID); k.State != store.KeyRetired {
		t.Fatalf("an unrelated key changed: %+v", k)
	}
}

// A refused row fails the transaction, whatever f makes of the error.
func testConstraints(t *testing.T, ks signer.KeyStore) {
	cur, next := key(t, store.KeyCurrent, at(0)), key(t, store.KeyNext, at(0))
	mustTx(t, ks, insert([]store.SigningKey{cur, next}, at(0)))
	before := kids(committed(t, ks))
	bad := map[string]store.SigningKey{
		"a second current key": key(t, store.KeyCurrent, at(time.Minute)),
		"a second next key":    key(t, store.KeyNext, at(time.Minute)),
		"a kid used already":   func() store.SigningKey { k := key(t, store.KeyRetired, at(0)); k.KID = cur.KID; return k }(),
		"a malformed kid":      func() store.SigningKey { k := key(t, store.KeyRetired, at(0)); k.KID = "bad kid!"; return k }(),
		"an unknown state":     func() store.SigningKey { k := key(t, store.KeyRetired, at(0)); k.State = "spare"; return k }(),
		"a 31-byte public key": func() store.SigningKey { k := key(t, store.KeyRetired, at(0)); k.Public = k.Public[:31]; return k }(),
	}
	for name, k := range bad {
		err := inTx(t, ks, func(ctx context.Context, tx store.KeyTx) error {
			_ = tx.Insert(ctx, k, at(time.Minute)) // ignored on purpose: the transaction must fail anyway
			return nil
		})
		if err == nil {
			t.Errorf("%s: stored", name)
		}
	}
	if after := kids(committed(t, ks)); !slices.Equal(after, before) {
		t.Fatalf("refused rows changed the keys: %v, before %v", after, before)
	}
}

func testPublishAndAudit(t *testing.T, ks signer.KeyStore) {
	cur := key(t, store.KeyCurrent, at(0))
	mustTx(t, ks, func(ctx context.Context, tx store.KeyTx) error {
		if err := tx.Insert(ctx, cur, at(0)); err != nil {
			return err
		}
		keys, err := tx.Keys(ctx)
		if err != nil {
			return err
		}
		jwks, err := signer.EncodeJWKS(signer.Published(keys))
		if err != nil {
			return err
		}
		if err := tx.Publish(ctx, jwks, "http://127.0.0.1:8080", "zsm-api", 15*time.Minute, time.Time{}); err != nil {
			return fmt.Errorf("publish: %w", err)
		}
		return tx.Audit(ctx, store.AuditEvent{Type: store.EventSigningKeyCreated, Detail: map[string]any{"kid": cur.KID}})
	})
	// An event the audit log does not take is refused.
	for _, e := range []store.AuditEvent{{Type: "Not Snake"}, {Type: "x"}, {Type: store.EventSigningKeyRemoved, Detail: map[string]any{"big": string(make([]byte, 3000))}}} {
		err := inTx(t, ks, func(ctx context.Context, tx store.KeyTx) error { return tx.Audit(ctx, e) })
		if err == nil {
			t.Errorf("audit event %q accepted", e.Type)
		}
	}
	// A token policy the database refuses fails the transaction.
	err := inTx(t, ks, func(ctx context.Context, tx store.KeyTx) error {
		_ = tx.Publish(ctx, []byte(`{"keys":[]}`), "i", "a", time.Hour, time.Time{})
		return tx.Remove(ctx, cur.KID, true, at(time.Minute))
	})
	if err == nil {
		t.Error("a publication with a 1 h token lifetime (over 900 s) was committed")
	}
	if k := byKID(committed(t, ks), cur.KID); k.State != store.KeyCurrent {
		t.Fatalf("the failed transaction removed %s", cur.KID)
	}
}

// Two transactions never overlap: the second starts after the first ends.
func testSerialized(t *testing.T, ks signer.KeyStore) {
	var inside, overlaps, ran atomic.Int32
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			err := inTx(t, ks, func(ctx context.Context, tx store.KeyTx) error {
				if inside.Add(1) != 1 {
					overlaps.Add(1)
				}
				defer inside.Add(-1)
				ran.Add(1)
				// Read, wait, write: an interleaved transaction would
				// make two next keys or lose one.
				keys, err := tx.Keys(ctx)
				if err != nil {
					return err
				}
				time.Sleep(20 * time.Millisecond)
				for _, k := range keys {
					if k.State == store.KeyNext {
						if err := tx.Remove(ctx, k.KID, false, at(time.Duration(i)*time.Second)); err != nil {
							return err
						}
					}
				}
				return tx.Insert(ctx, key(t, store.KeyNext, at(0)), at(time.Duration(i)*time.Second))
			})
			if err != nil {
				t.Errorf("transaction %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	if overlaps.Load() != 0 || ran.Load() != 4 {
		t.Fatalf("%d of %d transactions overlapped another", overlaps.Load(), ran.Load())
	}
	next := 0
	for _, k := range committed(t, ks) {
		if k.State == store.KeyNext {
			next++
		}
	}
	if next != 1 {
		t.Fatalf("%d next keys after four serialized replacements, want 1", next)
	}
}

// SigningKeys reads what is committed, at once, while a transaction holds
// the lock (a replica reloads its keys while another rotates).
func testReadsDoNotWait(t *testing.T, ks signer.KeyStore) {
	cur := key(t, store.KeyCurrent, at(0))
	entered, release := make(chan struct{}), make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- inTx(t, ks, func(ctx context.Context, tx store.KeyTx) error {
			if err := tx.Insert(ctx, cur, at(0)); err != nil {
				return err
			}
			close(entered)
			<-release
			return nil
		})
	}()
	select {
	case <-entered:
	case err := <-done:
		t.Fatalf("transaction ended early: %v", err)
	}
	read := make(chan []store.SigningKey, 1)
	go func() {
		keys, err := ks.SigningKeys(context.Background())
		if err != nil {
			keys = []store.SigningKey{{KID: "error: " + err.Error()}}
		}
		read <- keys
	}()
	select {
	case keys := <-read:
		if len(keys) != 0 {
			t.Errorf("a read saw the uncommitted %v", kids(keys))
		}
	case <-time.After(10 * time.Second):
		t.Error("SigningKeys waited for a transaction to end")
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if keys := committed(t, ks); len(keys) != 1 || keys[0].KID != cur.KID {
		t.Fatalf("after commit: %v", kids(keys))
	}
}

// What a read returns is the caller's: changing it changes nothing stored.
func testCopies(t *testing.T, ks signer.KeyStore) {
	cur := key(t, store.KeyCurrent, at(0))
	mustTx(t, ks, insert([]store.SigningKey{cur}, at(0)))
	keys := committed(t, ks)
	keys[0].State, keys[0].Public[0] = store.KeyRemoved, keys[0].Public[0]^1
	*keys[0].PublishedAt = at(time.Hour)
	again := committed(t, ks)[0]
	if again.State != store.KeyCurrent || again.Public[0] != cur.Public[0] || !again.PublishedAt.Equal(at(0)) {
		t.Fatalf("changing a read changed the store: %+v", again)
	}
}
