// Package memstore keeps authsvc's signing keys in memory, for tests of the
// code that rotates them. It keeps the contract of *store.Store's, the one
// storetest.RunKeyStore checks against both: transactions run one at a
// time, see their own writes, and commit whole or not at all; reads outside
// a transaction see what is committed; the table's constraints (kid shape,
// states, one current and one next key, 32-byte public keys) hold.
package memstore

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"zsm.dev/zsm/authsvc/store"
)

// Publication is one committed KeyTx.Publish.
type Publication struct {
	JWKS             []byte
	Issuer, Audience string
	MaxTTL           time.Duration
	MinIAT           time.Time
}

// Keys is an in-memory key store. The zero value is empty and ready.
type Keys struct {
	// lock is the signing-keys lock: one transaction holds it from start
	// to commit. It is a channel so that waiting for it honours ctx.
	lockOnce sync.Once
	lock     chan struct{}

	mu        sync.Mutex // guards what follows: the committed state
	keys      []store.SigningKey
	published []Publication
	audited   []store.AuditEvent

	// FailPublish, if set, is what every Publish answers, so a test can
	// check that a step that fails late leaves nothing behind.
	FailPublish error
}

func (k *Keys) sem() chan struct{} {
	k.lockOnce.Do(func() { k.lock = make(chan struct{}, 1) })
	return k.lock
}

// SigningKeys returns the committed keys, oldest first. It does not wait for
// a transaction in progress.
func (k *Keys) SigningKeys(context.Context) ([]store.SigningKey, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return clone(k.keys), nil
}

// Published returns every committed publication, oldest first.
func (k *Keys) Published() []Publication {
	k.mu.Lock()
	defer k.mu.Unlock()
	return slices.Clone(k.published)
}

// Audited returns every committed audit event, oldest first.
func (k *Keys) Audited() []store.AuditEvent {
	k.mu.Lock()
	defer k.mu.Unlock()
	return slices.Clone(k.audited)
}

// InKeyTx runs f on a copy of the keys and commits the copy, with what f
// published and audited, if f returns nil.
func (k *Keys) InKeyTx(ctx context.Context, f func(ctx context.Context, t store.KeyTx) error) error {
	select {
	case k.sem() <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("store: signing keys: %w", ctx.Err())
	}
	defer func() { <-k.sem() }()
	k.mu.Lock()
	t := &tx{keys: clone(k.keys), failPublish: k.FailPublish}
	k.mu.Unlock()
	if err := f(ctx, t); err != nil {
		return fmt.Errorf("store: signing keys: %w", err)
	}
	if t.broken != nil {
		// PostgreSQL refuses to commit a transaction after a failed
		// statement, whatever f made of the error.
		return fmt.Errorf("store: signing keys: %w", t.broken)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	k.keys = t.keys
	k.published = append(k.published, t.published...)
	k.audited = append(k.audited, t.audited...)
	return nil
}

// tx is a KeyTx on a private copy.
type tx struct {
	keys        []store.SigningKey
	published   []Publication
	audited     []store.AuditEvent
	failPublish error
	broken      error // the first failed "statement"
}

func (t *tx) fail(err error) error {
	if t.broken == nil {
		t.broken = err
	}
	return err
}

func (t *tx) Keys(context.Context) ([]store.SigningKey, error) {
	if t.broken != nil {
		return nil, t.broken
	}
	return clone(t.keys), nil
}

var kidPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{8,64}$`)

// stamp is a time as PostgreSQL keeps it: to the microsecond.
func stamp(t time.Time) time.Time { return t.Truncate(time.Microsecond) }

func (t *tx) Insert(_ context.Context, k store.SigningKey, now time.Time) error {
	if t.broken != nil {
		return t.broken
	}
	switch {
	case !kidPattern.MatchString(k.KID):
		return t.fail(errors.New("memstore: kid violates signing_keys_kid_check"))
	case !slices.Contains([]string{store.KeyNext, store.KeyCurrent, store.KeyRetired, store.KeyRemoved}, k.State):
		return t.fail(errors.New("memstore: state violates signing_keys_state_check"))
	case len(k.Public) != 32:
		return t.fail(errors.New("memstore: public_key violates signing_keys_public_key_check"))
	case len(k.Sealed) == 0:
		return t.fail(errors.New("memstore: private_sealed is null"))
	}
	for _, e := range t.keys {
		switch {
		case e.KID == k.KID:
			return t.fail(errors.New("memstore: duplicate key violates signing_keys_pkey"))
		case e.State == k.State && k.State == store.KeyCurrent:
			return t.fail(errors.New("memstore: duplicate key violates signing_keys_one_current"))
		case e.State == k.State && k.State == store.KeyNext:
			return t.fail(errors.New("memstore: duplicate key violates signing_keys_one_next"))
		}
	}
	now = stamp(now)
	row := store.SigningKey{
		KID: k.KID, State: k.State, Public: slices.Clone(k.Public), Sealed: slices.Clone(k.Sealed),
		CreatedAt: now, PublishedAt: &now, ActivatedAt: stampPtr(k.ActivatedAt),
	}
	t.keys = append(t.keys, row)
	slices.SortStableFunc(t.keys, func(a, b store.SigningKey) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.KID, b.KID)
	})
	return nil
}

func (t *tx) Promote(_ context.Context, kid string, now time.Time) error {
	if t.broken != nil {
		return t.broken
	}
	now = stamp(now)
	// As in SQL: the current key is retired first, whether or not kid
	// turns out to be the next key.
	for i := range t.keys {
		if t.keys[i].State == store.KeyCurrent {
			t.keys[i].State, t.keys[i].RetiredAt = store.KeyRetired, &now
		}
	}
	for i := range t.keys {
		if t.keys[i].KID == kid && t.keys[i].State == store.KeyNext {
			t.keys[i].State, t.keys[i].ActivatedAt = store.KeyCurrent, &now
			return nil
		}
	}
	return fmt.Errorf("key %s is not the next key", kid)
}

func (t *tx) Remove(_ context.Context, kid string, revoked bool, now time.Time) error {
	if t.broken != nil {
		return t.broken
	}
	now = stamp(now)
	for i := range t.keys {
		k := &t.keys[i]
		if k.KID == kid && k.State != store.KeyRemoved {
			k.State, k.RemovedAt, k.Revoked = store.KeyRemoved, &now, revoked
			if k.RetiredAt == nil {
				k.RetiredAt = &now
			}
			return nil
		}
	}
	return fmt.Errorf("no published key %s: %w", kid, store.ErrNotFound)
}

func (t *tx) Publish(_ context.Context, jwks []byte, issuer, audience string, maxTTL time.Duration, minIAT time.Time) error {
	if t.broken != nil {
		return t.broken
	}
	if t.failPublish != nil {
		return t.fail(t.failPublish)
	}
	if maxTTL < time.Minute || maxTTL > 15*time.Minute {
		return t.fail(errors.New("memstore: max_ttl_seconds violates token_policy_max_ttl_seconds_check"))
	}
	t.published = append(t.published, Publication{JWKS: slices.Clone(jwks), Issuer: issuer, Audience: audience, MaxTTL: maxTTL, MinIAT: minIAT})
	return nil
}

func (t *tx) Audit(_ context.Context, e store.AuditEvent) error {
	if t.broken != nil {
		return t.broken
	}
	if _, err := e.Check(); err != nil {
		return err // refused before the database is asked, as in store
	}
	t.audited = append(t.audited, e)
	return nil
}

func stampPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	s := stamp(*t)
	return &s
}

// clone copies keys deeply, so no caller shares memory with the store.
func clone(keys []store.SigningKey) []store.SigningKey {
	out := make([]store.SigningKey, len(keys))
	for i, k := range keys {
		k.Public, k.Sealed = slices.Clone(k.Public), slices.Clone(k.Sealed)
		k.ActivatedAt, k.RetiredAt, k.PublishedAt, k.RemovedAt = stampPtr(k.ActivatedAt), stampPtr(k.RetiredAt), stampPtr(k.PublishedAt), stampPtr(k.RemovedAt)
		out[i] = k
	}
	return out
}
