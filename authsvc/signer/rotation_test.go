package signer

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"zsm.dev/zsm/authsvc/store"
	"zsm.dev/zsm/authsvc/store/memstore"
)

// The rotation steps against the in-memory key store, which keeps the
// contract of the PostgreSQL one (storetest): what each step changes,
// publishes and audits, and that a step that fails leaves nothing behind.

func byState(t *testing.T, ks *memstore.Keys, state string) []store.SigningKey {
	t.Helper()
	var out []store.SigningKey
	for _, k := range stored(t, ks) {
		if k.State == state {
			out = append(out, k)
		}
	}
	return out
}

func one(t *testing.T, ks *memstore.Keys, state string) store.SigningKey {
	t.Helper()
	keys := byState(t, ks, state)
	if len(keys) != 1 {
		t.Fatalf("%d %s keys, want one", len(keys), state)
	}
	return keys[0]
}

// lastJWKS is the kids of the last publication, in order.
func lastJWKS(t *testing.T, ks *memstore.Keys) []string {
	t.Helper()
	pubs := ks.Published()
	if len(pubs) == 0 {
		t.Fatal("nothing published")
	}
	keys, err := ValidateJWKS(pubs[len(pubs)-1].JWKS)
	if err != nil {
		t.Fatal(err)
	}
	return kids(keys)
}

func events(ks *memstore.Keys) []string {
	var out []string
	for _, e := range ks.Audited() {
		out = append(out, e.Type+":"+e.Detail["kid"].(string))
	}
	return out
}

func started(t *testing.T) (*Rotator, *memstore.Keys, *Signer) {
	t.Helper()
	s, ks, kek := loaded(t)
	return rotator(ks, kek), ks, s
}

func TestEnsureNextPublishesANextKeyOnce(t *testing.T) {
	r, ks, _ := started(t)
	cur := one(t, ks, store.KeyCurrent)
	next, err := r.EnsureNext(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if got := one(t, ks, store.KeyNext); got.KID != next.KID || got.PublishedAt == nil {
		t.Fatalf("stored next key %+v, returned %s", got, next.KID)
	}
	if got := lastJWKS(t, ks); !slices.Equal(got, []string{cur.KID, next.KID}) {
		t.Fatalf("published %v, want the current key first, then the next", got)
	}
	if ev := events(ks); ev[len(ev)-1] != store.EventSigningKeyPublished+":"+next.KID {
		t.Fatalf("audited %v", ev)
	}
	pubs, audited := len(ks.Published()), len(ks.Audited())
	again, err := r.EnsureNext(context.Background())
	if err != nil || again.KID != next.KID {
		t.Fatalf("second EnsureNext: %s, %v; want the same key", again.KID, err)
	}
	if len(byState(t, ks, store.KeyNext)) != 1 || len(ks.Published()) != pubs || len(ks.Audited()) != audited {
		t.Fatal("a second EnsureNext made, published or audited something")
	}
}

func TestRotate(t *testing.T) {
	r, ks, s := started(t)
	old := one(t, ks, store.KeyCurrent)
	oldToken, _, err := s.Issue("u", "s", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	res, err := r.Rotate(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	cur, next, retired := one(t, ks, store.KeyCurrent), one(t, ks, store.KeyNext), one(t, ks, store.KeyRetired)
	if res.Retired != old.KID || res.Current != cur.KID || res.Next != next.KID || retired.KID != old.KID {
		t.Fatalf("result %+v; stored current %s, next %s, retired %s", res, cur.KID, next.KID, retired.KID)
	}
	if retired.RetiredAt == nil || cur.ActivatedAt == nil || !retired.RetiredAt.Equal(*cur.ActivatedAt) {
		t.Fatalf("retired at %v, activated at %v: one moment", retired.RetiredAt, cur.ActivatedAt)
	}
	if got := lastJWKS(t, ks); !slices.Equal(got, []string{cur.KID, next.KID, old.KID}) {
		t.Fatalf("published %v, want current, next, retired", got)
	}
	want := []string{store.EventSigningKeyCreated + ":" + old.KID, store.EventSigningKeyPublished + ":" + cur.KID, store.EventSigningKeyRotated + ":" + cur.KID}
	if got := events(ks); !slices.Equal(got, want) {
		t.Fatalf("audited %v, want %v", got, want)
	}
	// A replica that reloads signs with the new key; tokens of the old one
	// still verify.
	if err := s.Reload(context.Background(), ks); err != nil {
		t.Fatal(err)
	}
	if s.CurrentKID() != cur.KID {
		t.Fatalf("signs with %s after the rotation, want %s", s.CurrentKID(), cur.KID)
	}
	if _, err := s.Verify(oldToken, time.Now()); err != nil {
		t.Fatalf("a token of the retired key: %v", err)
	}
}

// A next key becomes current only once it has been published for
// PublishDelay.
func TestRotateWaitsForThePublishDelay(t *testing.T) {
	r, ks, _ := started(t)
	r.PublishDelay = time.Hour
	old := one(t, ks, store.KeyCurrent)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := r.Rotate(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Rotate = %v, want it to wait past the deadline", err)
	}
	if cur := one(t, ks, store.KeyCurrent); cur.KID != old.KID {
		t.Fatal("a key became current before it was published long enough")
	}
	next := one(t, ks, store.KeyNext)
	// Once the delay has passed, the same next key is promoted at once.
	r.Now = func() time.Time { return next.PublishedAt.Add(time.Hour + time.Second) }
	res, err := r.Rotate(context.Background())
	if err != nil || res.Current != next.KID {
		t.Fatalf("after the delay: %+v, %v; want %s current", res, err, next.KID)
	}
}

// A rotation whose publication fails changes nothing: no key moves, nothing
// is published or audited.
func TestRotateFailsWhole(t *testing.T) {
	r, ks, _ := started(t)
	if _, err := r.Rotate(context.Background()); err != nil { // a retired, a current and a next key
		t.Fatal(err)
	}
	before, pubs, audited := stored(t, ks), len(ks.Published()), len(ks.Audited())
	boom := errors.New("database went away")
	ks.FailPublish = boom
	for name, step := range map[string]func() error{
		"rotate": func() error { _, err := r.Rotate(context.Background()); return err },
		"revoke": func() error { return r.Revoke(context.Background(), one(t, ks, store.KeyCurrent).KID) },
		"prune": func() error {
			_, err := (&Rotator{Keys: ks, KEK: r.KEK, AccessTTL: testTTL, Now: func() time.Time { return time.Now().Add(time.Hour) }}).Prune(context.Background())
			return err
		},
	} {
		if err := step(); !errors.Is(err, boom) {
			t.Fatalf("%s = %v, want the publication's error", name, err)
		}
		if after := stored(t, ks); !slices.EqualFunc(after, before, func(a, b store.SigningKey) bool { return a.KID == b.KID && a.State == b.State }) {
			t.Fatalf("%s failed but changed the keys: %+v", name, after)
		}
		if len(ks.Published()) != pubs || len(ks.Audited()) != audited {
			t.Fatalf("%s failed but published or audited", name)
		}
	}
}

// Two replicas rotating at once: the one that finds its next key replaced
// meanwhile gives up rather than rotate twice.
func TestRotateGivesWayToAnotherReplica(t *testing.T) {
	r, ks, _ := started(t)
	other := rotator(ks, r.KEK)
	r.Prober = proberFunc(func(context.Context, store.SigningKey, []byte) error {
		// Between this replica's two transactions, another one rotates.
		r.Prober = nil
		_, err := other.Rotate(context.Background())
		return err
	})
	if _, err := r.Rotate(context.Background()); err == nil {
		t.Fatal("rotated although another rotation ran meanwhile")
	}
	if n := len(byState(t, ks, store.KeyRetired)); n != 1 {
		t.Fatalf("%d retired keys; one rotation should have happened", n)
	}
}

type proberFunc func(ctx context.Context, key store.SigningKey, jwks []byte) error

func (f proberFunc) Probe(ctx context.Context, key store.SigningKey, jwks []byte) error {
	return f(ctx, key, jwks)
}

// A next key PostgREST does not accept never signs.
func TestProbeRefusalStopsTheRotation(t *testing.T) {
	r, ks, _ := started(t)
	old := one(t, ks, store.KeyCurrent)
	var probed []byte
	r.Prober = proberFunc(func(_ context.Context, key store.SigningKey, jwks []byte) error {
		probed = jwks
		return errors.New("PGRST301")
	})
	if _, err := r.Rotate(context.Background()); err == nil {
		t.Fatal("rotated to a key PostgREST refused")
	}
	if one(t, ks, store.KeyCurrent).KID != old.KID {
		t.Fatal("the refused key became current")
	}
	if pubs := ks.Published(); string(probed) != string(pubs[len(pubs)-1].JWKS) {
		t.Fatal("the probe was not given the published JWKS")
	}
}

func TestRevoke(t *testing.T) {
	ctx := context.Background()
	r, ks, s := started(t)
	first := one(t, ks, store.KeyCurrent)
	next, err := r.EnsureNext(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tok, _, _ := s.Issue("u", "s", time.Now())

	// The current key, with a next key waiting: the next key signs now.
	if err := r.Revoke(ctx, first.KID); err != nil {
		t.Fatal(err)
	}
	gone := stored(t, ks)[0]
	if gone.KID != first.KID || gone.State != store.KeyRemoved || !gone.Revoked || gone.RemovedAt == nil {
		t.Fatalf("revoked key %+v", gone)
	}
	if cur := one(t, ks, store.KeyCurrent); cur.KID != next.KID {
		t.Fatalf("current %s after revoking, want the next key %s", cur.KID, next.KID)
	}
	if got := lastJWKS(t, ks); slices.Contains(got, first.KID) {
		t.Fatalf("the revoked key is still published: %v", got)
	}
	if ev := events(ks); ev[len(ev)-1] != store.EventSigningKeyRevoked+":"+first.KID {
		t.Fatalf("audited %v", ev)
	}
	if err := s.Reload(ctx, ks); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Verify(tok, time.Now()); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("a token of the revoked key: %v, want ErrInvalidToken", err)
	}

	// The current key without a next key: a new key signs at once.
	if err := r.Revoke(ctx, next.KID); err != nil {
		t.Fatal(err)
	}
	cur := one(t, ks, store.KeyCurrent)
	if cur.KID == next.KID || cur.KID == first.KID || len(byState(t, ks, store.KeyNext)) != 0 {
		t.Fatalf("after revoking the last key: current %s", cur.KID)
	}
	if got := lastJWKS(t, ks); !slices.Equal(got, []string{cur.KID}) {
		t.Fatalf("published %v, want only the new key", got)
	}

	// Unknown and removed keys are not found; nothing changes.
	pubs := len(ks.Published())
	for _, kid := range []string{"no-such-key-0001", first.KID} {
		if err := r.Revoke(ctx, kid); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("Revoke(%s) = %v, want ErrNotFound", kid, err)
		}
	}
	if len(ks.Published()) != pubs {
		t.Fatal("a refused revocation published")
	}
}

func TestPrune(t *testing.T) {
	ctx := context.Background()
	r, ks, _ := started(t)
	if _, err := r.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	retired := one(t, ks, store.KeyRetired)
	expiry := retired.RetiredAt.Add(testTTL + Skew)
	pubs := len(ks.Published())

	r.Now = func() time.Time { return expiry.Add(-time.Second) }
	if n, err := r.Prune(ctx); err != nil || n != 0 {
		t.Fatalf("prune before its tokens expired: removed %d, %v", n, err)
	}
	if len(ks.Published()) != pubs {
		t.Fatal("a prune that removed nothing published")
	}

	r.Now = func() time.Time { return expiry.Add(time.Second) }
	if n, err := r.Prune(ctx); err != nil || n != 1 {
		t.Fatalf("prune after its tokens expired: removed %d, %v", n, err)
	}
	k := stored(t, ks)[0]
	if k.KID != retired.KID || k.State != store.KeyRemoved || k.Revoked {
		t.Fatalf("pruned key %+v; want removed, not revoked", k)
	}
	if got := lastJWKS(t, ks); slices.Contains(got, retired.KID) || len(got) != 2 {
		t.Fatalf("published %v after pruning %s", got, retired.KID)
	}
	if ev := events(ks); ev[len(ev)-1] != store.EventSigningKeyRemoved+":"+retired.KID {
		t.Fatalf("audited %v", ev)
	}
}

// Scheduled rotation: due when the current key is older than the interval,
// and not repeated when another replica rotated first.
func TestDueAndScheduledRotation(t *testing.T) {
	ctx := context.Background()
	r, ks, _ := started(t)
	cur := one(t, ks, store.KeyCurrent)
	r.Now = func() time.Time { return cur.ActivatedAt.Add(time.Hour - time.Second) }
	if due, err := r.Due(ctx, time.Hour); err != nil || due {
		t.Fatalf("due %v, %v before the interval", due, err)
	}
	r.Now = func() time.Time { return cur.ActivatedAt.Add(time.Hour + time.Second) }
	if due, err := r.Due(ctx, time.Hour); err != nil || !due {
		t.Fatalf("due %v, %v after the interval", due, err)
	}
	// The condition is checked again under the lock: another replica's
	// rotation in between makes this one stand down.
	if _, err := r.rotate(ctx, func(*store.SigningKey) bool { return false }); !errors.Is(err, errNotDue) {
		t.Fatalf("rotate when no longer due: %v, want errNotDue", err)
	}
	if one(t, ks, store.KeyCurrent).KID != cur.KID {
		t.Fatal("a rotation that was no longer due happened")
	}
}

// revocationProbe is a prober that also answers whether PostgREST dropped
// a revoked key.
type revocationProbe struct {
	proberFunc
	revoked   func(ctx context.Context, revoked store.SigningKey, publishedKID string) error
	asked     []string
	published []string
}

func (p *revocationProbe) ProbeRevoked(ctx context.Context, revoked store.SigningKey, publishedKID string) error {
	p.asked, p.published = append(p.asked, revoked.KID), append(p.published, publishedKID)
	return p.revoked(ctx, revoked, publishedKID)
}

// After the commit, Revoke asks whether PostgREST dropped the key, naming
// the key that is current now; if PostgREST did not, the revocation stands
// and Revoke says to restart PostgREST.
func TestRevokeChecksPostgRESTDroppedTheKey(t *testing.T) {
	ctx := context.Background()
	r, ks, _ := started(t)
	first := one(t, ks, store.KeyCurrent)
	p := &revocationProbe{
		proberFunc: func(context.Context, store.SigningKey, []byte) error { return nil },
		revoked: func(context.Context, store.SigningKey, string) error {
			return errors.New("PostgREST still verifies it")
		},
	}
	r.Prober = p
	err := r.Revoke(ctx, first.KID)
	if err == nil || !strings.Contains(err.Error(), "restart PostgREST") {
		t.Fatalf("Revoke with PostgREST still verifying the key: %v", err)
	}
	cur := one(t, ks, store.KeyCurrent)
	if gone := stored(t, ks)[0]; gone.KID != first.KID || gone.State != store.KeyRemoved || !gone.Revoked {
		t.Fatalf("the revocation did not stand: %+v", gone)
	}
	if len(p.asked) != 1 || p.asked[0] != first.KID || p.published[0] != cur.KID {
		t.Fatalf("asked about %v naming %v, want %s naming the new current key %s", p.asked, p.published, first.KID, cur.KID)
	}
	p.revoked = func(context.Context, store.SigningKey, string) error { return nil }
	if err := r.Revoke(ctx, cur.KID); err != nil {
		t.Fatalf("Revoke with PostgREST dropping the key: %v", err)
	}
}
