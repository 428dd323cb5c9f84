// Package rotation moves signing keys through their life:
//
//	next (published, not signing) → current (signing) → retired (published
//	until every token it signed has expired, plus skew) → removed
//
// and removes a key at once when an operator revokes it.
//
// Every change runs in one database transaction that holds the
// signing-keys lock, changes the rows, pushes the new JWKS to PostgREST and
// announces the change to the other replicas (store.KeyTx): it commits whole
// or not at all, so a replica that dies mid-rotation leaves nothing
// half-done, and two replicas never rotate at once. A key becomes current
// only after it has been published for PublishDelay, long enough for every
// replica, every PostgREST and every JWKS cache to know it; so no token is
// ever signed with a key a verifier has not seen.
package rotation

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"zsm.dev/zsm/authsvc/signer"
	"zsm.dev/zsm/authsvc/store"
)

// Skew is added to a retired key's lifetime: PostgREST forgives 30 s of
// clock skew, and clocks differ.
const Skew = time.Minute

// Keys is what the rotator needs from storage.
type Keys interface {
	InKeyTx(ctx context.Context, f func(ctx context.Context, t *store.KeyTx) error) error
}

// Prober checks that PostgREST accepts tokens signed by a key (and still
// refuses HMAC forgeries keyed with the JWKS text).
type Prober interface {
	Probe(ctx context.Context, key signer.StoredKey, jwks []byte) error
}

// Rotator changes signing keys.
type Rotator struct {
	Keys             Keys
	KEK              []byte
	Issuer, Audience string
	AccessTTL        time.Duration
	// PublishDelay is how long a next key is published before it may sign.
	PublishDelay time.Duration
	Prober       Prober // nil: no probe
	Log          *slog.Logger
	Now          func() time.Time
	// Audit, if set, records key events.
	Audit func(ctx context.Context, t *store.KeyTx, event string, kid string) error
}

func (r *Rotator) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// publish pushes the published set of keys and returns the JWKS.
func (r *Rotator) publish(ctx context.Context, t *store.KeyTx) ([]byte, error) {
	keys, err := t.Keys(ctx)
	if err != nil {
		return nil, err
	}
	jwks, err := signer.EncodeJWKS(signer.Published(keys))
	if err != nil {
		return nil, err
	}
	return jwks, t.Publish(ctx, jwks, r.Issuer, r.Audience, r.AccessTTL)
}

func find(keys []signer.StoredKey, state string) *signer.StoredKey {
	for i := range keys {
		if keys[i].State == state {
			return &keys[i]
		}
	}
	return nil
}

// Result says what a rotation did.
type Result struct {
	Retired, Current, Next string
}

// EnsureNext publishes a next key if there is none, and returns it.
func (r *Rotator) EnsureNext(ctx context.Context) (signer.StoredKey, error) {
	var next signer.StoredKey
	var jwks []byte
	err := r.Keys.InKeyTx(ctx, func(ctx context.Context, t *store.KeyTx) error {
		keys, err := t.Keys(ctx)
		if err != nil {
			return err
		}
		if n := find(keys, signer.StateNext); n != nil {
			next = *n
			jwks, err = signer.EncodeJWKS(signer.Published(keys))
			return err
		}
		k, err := signer.GenerateKey(r.KEK, signer.StateNext, r.now())
		if err != nil {
			return err
		}
		if err := t.Insert(ctx, k, r.now()); err != nil {
			return err
		}
		now := r.now()
		k.PublishedAt = &now
		next = k
		if jwks, err = r.publish(ctx, t); err != nil {
			return err
		}
		return r.audit(ctx, t, "signing_key_published", k.KID)
	})
	if err != nil {
		return signer.StoredKey{}, err
	}
	if r.Prober != nil {
		if err := r.Prober.Probe(ctx, next, jwks); err != nil {
			return signer.StoredKey{}, fmt.Errorf("rotation: PostgREST does not accept the next key %s: %w", next.KID, err)
		}
	}
	return next, nil
}

// Rotate retires the current key and makes the next key current, then
// publishes a new next key. If there is no next key yet, one is published
// first; either way Rotate waits until the next key has been published for
// PublishDelay.
func (r *Rotator) Rotate(ctx context.Context) (Result, error) {
	return r.rotate(ctx, nil)
}

// errNotDue ends a conditional rotation that another replica already did.
var errNotDue = errors.New("rotation: not due any more")

func (r *Rotator) rotate(ctx context.Context, due func(cur *signer.StoredKey) bool) (Result, error) {
	next, err := r.EnsureNext(ctx)
	if err != nil {
		return Result{}, err
	}
	if next.PublishedAt != nil {
		if wait := next.PublishedAt.Add(r.PublishDelay).Sub(r.now()); wait > 0 {
			r.log().InfoContext(ctx, "waiting until the next key has been published long enough", "kid", next.KID, "wait", wait.String())
			select {
			case <-ctx.Done():
				return Result{}, ctx.Err()
			case <-time.After(wait):
			}
		}
	}
	var res Result
	var newNext signer.StoredKey
	var newJWKS []byte
	err = r.Keys.InKeyTx(ctx, func(ctx context.Context, t *store.KeyTx) error {
		keys, err := t.Keys(ctx)
		if err != nil {
			return err
		}
		n := find(keys, signer.StateNext)
		if n == nil || n.KID != next.KID {
			return errors.New("another rotation ran meanwhile; nothing changed")
		}
		cur := find(keys, signer.StateCurrent)
		if due != nil && !due(cur) {
			return errNotDue
		}
		if cur != nil {
			res.Retired = cur.KID
		}
		now := r.now()
		if err := t.Promote(ctx, n.KID, now); err != nil {
			return err
		}
		res.Current = n.KID
		k, err := signer.GenerateKey(r.KEK, signer.StateNext, now)
		if err != nil {
			return err
		}
		if err := t.Insert(ctx, k, now); err != nil {
			return err
		}
		res.Next, newNext = k.KID, k
		if newJWKS, err = r.publish(ctx, t); err != nil {
			return err
		}
		return r.audit(ctx, t, "signing_key_rotated", n.KID)
	})
	if err != nil {
		return Result{}, err
	}
	if r.Prober != nil {
		if err := r.Prober.Probe(ctx, newNext, newJWKS); err != nil {
			r.log().WarnContext(ctx, "PostgREST does not accept the new next key yet", "kid", newNext.KID, "err", err)
		}
	}
	r.log().InfoContext(ctx, "signing key rotated", "retired", res.Retired, "current", res.Current, "next", res.Next)
	return res, nil
}

// Revoke removes a key from every published set at once: tokens it signed
// stop working as soon as PostgREST reloads (milliseconds) and the replicas
// reload (LISTEN/NOTIFY). If it was the current key, the next key (or a new
// one) signs from now on.
func (r *Rotator) Revoke(ctx context.Context, kid string) error {
	return r.Keys.InKeyTx(ctx, func(ctx context.Context, t *store.KeyTx) error {
		keys, err := t.Keys(ctx)
		if err != nil {
			return err
		}
		var target *signer.StoredKey
		for i := range keys {
			if keys[i].KID == kid && keys[i].State != signer.StateRemoved {
				target = &keys[i]
			}
		}
		if target == nil {
			return fmt.Errorf("no published key %q: %w", kid, store.ErrNotFound)
		}
		now := r.now()
		if target.State == signer.StateCurrent {
			if n := find(keys, signer.StateNext); n != nil {
				if err := t.Promote(ctx, n.KID, now); err != nil {
					return err
				}
			} else {
				k, err := signer.GenerateKey(r.KEK, signer.StateNext, now)
				if err != nil {
					return err
				}
				if err := t.Insert(ctx, k, now); err != nil {
					return err
				}
				if err := t.Promote(ctx, k.KID, now); err != nil {
					return err
				}
			}
		}
		if err := t.Remove(ctx, kid, true, now); err != nil {
			return err
		}
		if _, err := r.publish(ctx, t); err != nil {
			return err
		}
		return r.audit(ctx, t, "signing_key_revoked", kid)
	})
}

// Prune removes retired keys whose every token has expired.
func (r *Rotator) Prune(ctx context.Context) (int, error) {
	removed := 0
	err := r.Keys.InKeyTx(ctx, func(ctx context.Context, t *store.KeyTx) error {
		keys, err := t.Keys(ctx)
		if err != nil {
			return err
		}
		now := r.now()
		for _, k := range keys {
			if k.State == signer.StateRetired && k.RetiredAt != nil && now.After(k.RetiredAt.Add(r.AccessTTL+Skew)) {
				if err := t.Remove(ctx, k.KID, false, now); err != nil {
					return err
				}
				removed++
				if err := r.audit(ctx, t, "signing_key_removed", k.KID); err != nil {
					return err
				}
			}
		}
		if removed == 0 {
			return nil
		}
		_, err = r.publish(ctx, t)
		return err
	})
	return removed, err
}

// Due reports whether the current key is older than interval.
func (r *Rotator) Due(ctx context.Context, interval time.Duration) (bool, error) {
	due := false
	err := r.Keys.InKeyTx(ctx, func(ctx context.Context, t *store.KeyTx) error {
		keys, err := t.Keys(ctx)
		if err != nil {
			return err
		}
		cur := find(keys, signer.StateCurrent)
		due = cur != nil && cur.ActivatedAt != nil && r.now().After(cur.ActivatedAt.Add(interval))
		return nil
	})
	return due, err
}

func (r *Rotator) audit(ctx context.Context, t *store.KeyTx, event, kid string) error {
	if r.Audit == nil {
		return nil
	}
	return r.Audit(ctx, t, event, kid)
}

func (r *Rotator) log() *slog.Logger {
	if r.Log != nil {
		return r.Log
	}
	return slog.New(slog.DiscardHandler)
}

// Maintain runs until ctx ends: it prunes expired retired keys and, when
// interval > 0, rotates the current key once it is older than interval.
// Every replica may run it; the signing-keys lock makes them take turns, and
// a rotation another replica already did is not repeated.
func (r *Rotator) Maintain(ctx context.Context, interval time.Duration) {
	tick := 30 * time.Second
	if interval > 0 && interval/10 < tick {
		tick = max(interval/10, time.Second)
	}
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if _, err := r.Prune(ctx); err != nil {
			r.log().WarnContext(ctx, "pruning retired signing keys failed", "err", err)
		}
		if interval <= 0 {
			continue
		}
		due, err := r.Due(ctx, interval)
		if err != nil || !due {
			continue
		}
		_, err = r.rotate(ctx, func(cur *signer.StoredKey) bool {
			return cur != nil && cur.ActivatedAt != nil && r.now().After(cur.ActivatedAt.Add(interval))
		})
		if err != nil && !errors.Is(err, errNotDue) {
			r.log().WarnContext(ctx, "automatic signing key rotation failed", "err", err)
		}
	}
}

// Bootstrap makes sure a current key exists (making the very first one on a
// new database) and publishes the key set as stored, under the lock, so a
// replica starting while another rotates can never publish a stale set.
func (r *Rotator) Bootstrap(ctx context.Context) error {
	return r.Keys.InKeyTx(ctx, func(ctx context.Context, t *store.KeyTx) error {
		keys, err := t.Keys(ctx)
		if err != nil {
			return err
		}
		if find(keys, signer.StateCurrent) == nil {
			now := r.now()
			k, err := signer.GenerateKey(r.KEK, signer.StateCurrent, now)
			if err != nil {
				return err
			}
			if err := t.Insert(ctx, k, now); err != nil {
				return err
			}
			if err := r.audit(ctx, t, "signing_key_created", k.KID); err != nil {
				return err
			}
		}
		_, err = r.publish(ctx, t)
		return err
	})
}
