package signer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"zsm.dev/zsm/authsvc/store"
)

// Skew is added to a retired key's lifetime: PostgREST forgives 30 s of
// clock skew, and clocks differ.
const Skew = time.Minute

// Prober checks that PostgREST accepts tokens signed by a key (and still
// refuses HMAC forgeries keyed with the JWKS text).
type Prober interface {
	Probe(ctx context.Context, key store.SigningKey, jwks []byte) error
}

// Rotator changes signing keys. Every change is audited in the same
// transaction.
type Rotator struct {
	Keys             KeyStore
	KEK              []byte
	Issuer, Audience string
	AccessTTL        time.Duration
	// PublishDelay is how long a next key is published before it may sign.
	PublishDelay time.Duration
	Prober       Prober // nil: no probe
	Log          *slog.Logger
	Now          func() time.Time
}

func (r *Rotator) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// publish pushes the published set of keys and returns the JWKS.
func (r *Rotator) publish(ctx context.Context, t store.KeyTx) ([]byte, error) {
	keys, err := t.Keys(ctx)
	if err != nil {
		return nil, err
	}
	jwks, err := EncodeJWKS(Published(keys))
	if err != nil {
		return nil, err
	}
	return jwks, t.Publish(ctx, jwks, r.Issuer, r.Audience, r.AccessTTL, MinIssuedAt(keys))
}

// Result says what a rotation did.
type Result struct {
	Retired, Current, Next string
}

// EnsureNext publishes a next key if there is none, and returns it.
func (r *Rotator) EnsureNext(ctx context.Context) (store.SigningKey, error) {
	var next store.SigningKey
	var jwks []byte
	err := r.Keys.InKeyTx(ctx, func(ctx context.Context, t store.KeyTx) error {
		keys, err := t.Keys(ctx)
		if err != nil {
			return err
		}
		if n := find(keys, store.KeyNext); n != nil {
			next = *n
			jwks, err = EncodeJWKS(Published(keys))
			return err
		}
		k, err := GenerateKey(r.KEK, store.KeyNext, r.now())
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
		return r.audit(ctx, t, store.EventSigningKeyPublished, k.KID)
	})
	if err != nil {
		return store.SigningKey{}, err
	}
	if r.Prober != nil {
		if err := r.Prober.Probe(ctx, next, jwks); err != nil {
			return store.SigningKey{}, fmt.Errorf("rotation: PostgREST does not accept the next key %s: %w", next.KID, err)
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

func (r *Rotator) rotate(ctx context.Context, due func(cur *store.SigningKey) bool) (Result, error) {
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
	var newNext store.SigningKey
	var newJWKS []byte
	err = r.Keys.InKeyTx(ctx, func(ctx context.Context, t store.KeyTx) error {
		keys, err := t.Keys(ctx)
		if err != nil {
			return err
		}
		n := find(keys, store.KeyNext)
		if n == nil || n.KID != next.KID {
			return errors.New("another rotation ran meanwhile; nothing changed")
		}
		cur := find(keys, store.KeyCurrent)
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
		k, err := GenerateKey(r.KEK, store.KeyNext, now)
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
		return r.audit(ctx, t, store.EventSigningKeyRotated, n.KID)
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

// revocationProber is what Revoke asks, after the commit, whether
// PostgREST has dropped the revoked key (HTTPProber.ProbeRevoked).
type revocationProber interface {
	ProbeRevoked(ctx context.Context, revoked store.SigningKey, publishedKID string) error
}

// Revoke removes a key from every published set at once: tokens it signed
// stop working as soon as PostgREST reloads (milliseconds) and the replicas
// reload (LISTEN/NOTIFY). If it was the current key, the next key (or a new
// one) signs from now on. It also sets the issued-at cutoff
// (MinIssuedAt), which assumes PostgREST drops the key within
// RevocationReload: with a prober, Revoke checks that it did and says so
// if not (the revocation stands; PostgREST must then be restarted).
func (r *Rotator) Revoke(ctx context.Context, kid string) error {
	var revoked store.SigningKey
	var current string
	err := r.Keys.InKeyTx(ctx, func(ctx context.Context, t store.KeyTx) error {
		keys, err := t.Keys(ctx)
		if err != nil {
			return err
		}
		var target *store.SigningKey
		for i := range keys {
			if keys[i].KID == kid && keys[i].State != store.KeyRemoved {
				target = &keys[i]
			}
		}
		if target == nil {
			return fmt.Errorf("no published key %q: %w", kid, store.ErrNotFound)
		}
		revoked = *target
		now := r.now()
		if target.State == store.KeyCurrent {
			if n := find(keys, store.KeyNext); n != nil {
				if err := t.Promote(ctx, n.KID, now); err != nil {
					return err
				}
			} else {
				k, err := GenerateKey(r.KEK, store.KeyNext, now)
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
		after, err := t.Keys(ctx)
		if err != nil {
			return err
		}
		if cur := find(after, store.KeyCurrent); cur != nil {
			current = cur.KID
		}
		return r.audit(ctx, t, store.EventSigningKeyRevoked, kid)
	})
	if err != nil {
		return err
	}
	if p, ok := r.Prober.(revocationProber); ok && current != "" {
		if err := p.ProbeRevoked(ctx, revoked, current); err != nil {
			return fmt.Errorf("key %s is revoked and no longer published, but %w: restart PostgREST", kid, err)
		}
	}
	return nil
}

// Prune removes retired keys whose every token has expired.
func (r *Rotator) Prune(ctx context.Context) (int, error) {
	removed := 0
	err := r.Keys.InKeyTx(ctx, func(ctx context.Context, t store.KeyTx) error {
		keys, err := t.Keys(ctx)
		if err != nil {
			return err
		}
		now := r.now()
		for _, k := range keys {
			if k.State == store.KeyRetired && k.RetiredAt != nil && now.After(k.RetiredAt.Add(r.AccessTTL+Skew)) {
				if err := t.Remove(ctx, k.KID, false, now); err != nil {
					return err
				}
				removed++
				if err := r.audit(ctx, t, store.EventSigningKeyRemoved, k.KID); err != nil {
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
	err := r.Keys.InKeyTx(ctx, func(ctx context.Context, t store.KeyTx) error {
		keys, err := t.Keys(ctx)
		if err != nil {
			return err
		}
		cur := find(keys, store.KeyCurrent)
		due = cur != nil && cur.ActivatedAt != nil && r.now().After(cur.ActivatedAt.Add(interval))
		return nil
	})
	return due, err
}

// audit records a key event in t, so that it is recorded if and only if
// the change commits.
func (r *Rotator) audit(ctx context.Context, t store.KeyTx, event, kid string) error {
	return t.Audit(ctx, store.AuditEvent{Type: event, Detail: map[string]any{"kid": kid}})
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
		_, err = r.rotate(ctx, func(cur *store.SigningKey) bool {
			return cur != nil && cur.ActivatedAt != nil && r.now().After(cur.ActivatedAt.Add(interval))
		})
		if err != nil && !errors.Is(err, errNotDue) {
			r.log().WarnContext(ctx, "automatic signing key rotation failed", "err", err)
		}
	}
}

// Bootstrap makes sure a current key exists (making the very first one on a
// new database) and that the key-encryption key opens it, and publishes the
// key set as stored, under the lock, so a replica starting while another
// rotates can never publish a stale set.
func (r *Rotator) Bootstrap(ctx context.Context) error {
	return r.Keys.InKeyTx(ctx, func(ctx context.Context, t store.KeyTx) error {
		keys, err := t.Keys(ctx)
		if err != nil {
			return err
		}
		if cur := find(keys, store.KeyCurrent); cur != nil {
			// A replica whose key-encryption key cannot open the key it
			// would sign with is misconfigured: it publishes nothing.
			if _, err := OpenPrivateKey(r.KEK, *cur); err != nil {
				return err
			}
		} else {
			now := r.now()
			k, err := GenerateKey(r.KEK, store.KeyCurrent, now)
			if err != nil {
				return err
			}
			if err := t.Insert(ctx, k, now); err != nil {
				return err
			}
			if err := r.audit(ctx, t, store.EventSigningKeyCreated, k.KID); err != nil {
				return err
			}
		}
		_, err = r.publish(ctx, t)
		return err
	})
}

// Load is how a replica starts: Bootstrap, then s takes the keys as
// stored. Every replica, and every test, starts through here, so the keys
// a Signer signs with are always the ones published.
func (r *Rotator) Load(ctx context.Context, s *Signer) error {
	if err := r.Bootstrap(ctx); err != nil {
		return err
	}
	return s.Reload(ctx, r.Keys)
}
