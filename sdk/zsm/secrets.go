package zsm

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"zsm.dev/zsm/sdk/envelope"
)

// Secret is one decrypted secret.
type Secret struct {
	ID         uuid.UUID
	VaultID    uuid.UUID
	Name       string
	Value      string
	Revision   uint64
	Generation uint64 // the vault key generation it is sealed under
	UpdatedAt  time.Time
}

// String never shows the value.
func (s Secret) String() string {
	return fmt.Sprintf("secret %q (revision %d, value redacted)", s.Name, s.Revision)
}

// GoString is String.
func (s Secret) GoString() string { return s.String() }

type secretPayload struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

type secretRow struct {
	ID            uuid.UUID `json:"id"`
	SecretID      uuid.UUID `json:"secret_id"` // secret_versions
	VaultID       uuid.UUID `json:"vault_id"`
	Revision      uint64    `json:"revision"`
	KeyGeneration uint64    `json:"key_generation"`
	Ciphertext    string    `json:"ciphertext"`
	UpdatedAt     time.Time `json:"updated_at"`
	CreatedAt     time.Time `json:"created_at"` // secret_versions
}

// MaxValueBytes bounds a secret's value (the envelope must fit the column).
const MaxValueBytes = 64 << 10

// ValidSecretName reports whether name can name a secret: 1–256 characters
// of valid UTF-8, no control characters or surrounding space. '/' is
// allowed (VAULT/a/b names secret "a/b" in VAULT).
func ValidSecretName(name string) error {
	if name == "" || len(name) > 256 || !utf8.ValidString(name) || strings.TrimSpace(name) != name ||
		strings.ContainsFunc(name, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return fmt.Errorf("secret name %q: use 1–256 characters without control characters or surrounding spaces", name)
	}
	return nil
}

// pageSize matches PostgREST's db-max-rows.
const pageSize = 1000

// Secrets returns every secret of a vault, each checked: the ciphertext must
// open under the vault's key of the generation the row names, with
// associated data naming this vault, the row's id and its revision, and
// the whole listing must be exactly what the vault's signed manifest
// commits to (no secret hidden, resurrected, older or relabelled).
func (c *Client) Secrets(ctx context.Context, v Vault) ([]Secret, error) {
	l, err := c.verifiedListing(ctx, &v)
	if err != nil {
		return nil, err
	}
	return l.secrets, nil
}

// openSecret checks and decrypts one row of secrets or secret_versions.
// The vault id bound into the associated data is the vault the caller asked
// about, not whatever the row claims, so a row moved to another vault fails.
func (c *Client) openSecret(v Vault, id uuid.UUID, r secretRow) (Secret, error) {
	if r.VaultID != v.ID {
		return Secret{}, tamper(fmt.Sprintf("secret %s is listed in vault %s but claims vault %s", id, v.ID, r.VaultID), nil)
	}
	g := r.KeyGeneration
	if g == 0 {
		g = 1
	}
	key, ok := v.st.key(g)
	if !ok {
		return Secret{}, tamper(fmt.Sprintf("secret %s revision %d is sealed under key generation %d, which this account does not hold", id, r.Revision, g), nil)
	}
	// The envelope's key commitment also refuses a row relabelled with
	// another generation: only the key it was sealed with opens it.
	plain, err := envelope.OpenString(key, envelope.Context{Type: envelope.Secret, VaultID: v.ID, ObjectID: id, Revision: r.Revision}, r.Ciphertext)
	if err != nil {
		return Secret{}, tamper(fmt.Sprintf("secret %s revision %d", id, r.Revision), err)
	}
	var p secretPayload
	err = json.Unmarshal(plain, &p)
	clear(plain)
	if err != nil {
		return Secret{}, tamper(fmt.Sprintf("secret %s", id), err)
	}
	when := r.UpdatedAt
	if when.IsZero() {
		when = r.CreatedAt
	}
	return Secret{ID: id, VaultID: v.ID, Name: p.Name, Value: p.Value, Revision: r.Revision, Generation: g, UpdatedAt: when}, nil
}

// checkFresh refuses a revision older than one this device has seen, and
// remembers the newest.
func (c *Client) checkFresh(s Secret) error {
	if seen := c.state.Seen(s.ID); s.Revision < seen {
		return fmt.Errorf("secret %q: revision %d after %d: %w", s.Name, s.Revision, seen, ErrRollback)
	}
	c.state.See(s.ID, s.Revision)
	return nil
}

// SecretByName returns the named secret of a vault.
func (c *Client) SecretByName(ctx context.Context, v Vault, name string) (Secret, error) {
	all, err := c.Secrets(ctx, v)
	if err != nil {
		return Secret{}, err
	}
	for _, s := range all {
		if err := c.checkFresh(s); err != nil {
			return Secret{}, err
		}
	}
	for _, s := range all {
		if s.Name == name {
			return s, nil
		}
	}
	return Secret{}, fmt.Errorf("secret %q in vault %q: %w", name, v.Name, ErrNotFound)
}

// List returns every secret of a vault after the rollback check.
func (c *Client) List(ctx context.Context, v Vault) ([]Secret, error) {
	all, err := c.Secrets(ctx, v)
	if err != nil {
		return nil, err
	}
	for _, s := range all {
		if err := c.checkFresh(s); err != nil {
			return nil, err
		}
	}
	return all, nil
}

func checkValue(name, value string) error {
	if err := ValidSecretName(name); err != nil {
		return err
	}
	if len(value) > MaxValueBytes {
		return fmt.Errorf("secret %q: the value is %d bytes; at most %d are allowed", name, len(value), MaxValueBytes)
	}
	return nil
}

// SetSecret creates the named secret or writes a new revision of it.
func (c *Client) SetSecret(ctx context.Context, v Vault, name, value string) (Secret, error) {
	if err := checkValue(name, value); err != nil {
		return Secret{}, err
	}
	var out Secret
	_, err := c.commitSecrets(ctx, &v, func(l *listing) (*secretsPlan, error) {
		cur := Secret{ID: uuid.New(), VaultID: v.ID, Name: name}
		for _, s := range l.secrets {
			if s.Name == name {
				if err := c.checkFresh(s); err != nil {
					return nil, err
				}
				cur = s
			}
		}
		p, next, err := c.writePlan(v, cur, value, false)
		out = next
		return p, err
	})
	if err != nil {
		return Secret{}, err
	}
	out.UpdatedAt = c.Now()
	return out, nil
}

// writePlan makes cur (a secret of the listing, or a new one with revision
// 0) hold value as its next revision.
func (c *Client) writePlan(v Vault, cur Secret, value string, rotated bool) (*secretsPlan, Secret, error) {
	next := cur
	next.Value, next.Revision = value, cur.Revision+1
	ct, g, err := c.seal(v, next.ID, next.Revision, next.Name, value)
	if err != nil {
		return nil, Secret{}, err
	}
	next.Generation = g
	return &secretsPlan{upserts: []upsert{{secret: next, ciphertext: ct, rotated: rotated}}}, next, nil
}

// CreateSecret adds a new secret without looking for one of the same name
// in the listing first; the caller must know the name is new (SetSecret
// looks).
func (c *Client) CreateSecret(ctx context.Context, v Vault, name, value string) (Secret, error) {
	if err := checkValue(name, value); err != nil {
		return Secret{}, err
	}
	id := uuid.New()
	var out Secret
	_, err := c.commitSecrets(ctx, &v, func(*listing) (*secretsPlan, error) {
		p, next, err := c.writePlan(v, Secret{ID: id, VaultID: v.ID, Name: name}, value, false)
		out = next
		return p, err
	})
	if err != nil {
		return Secret{}, err
	}
	out.UpdatedAt = c.Now()
	return out, nil
}

// UpdateSecret writes value as revision cur.Revision+1, only if nobody
// wrote another revision meanwhile (ErrConflict otherwise).
func (c *Client) UpdateSecret(ctx context.Context, v Vault, cur Secret, value string) (Secret, error) {
	return c.updateSecret(ctx, v, cur, value, false)
}

func (c *Client) updateSecret(ctx context.Context, v Vault, cur Secret, value string, rotated bool) (Secret, error) {
	if err := checkValue(cur.Name, value); err != nil {
		return Secret{}, err
	}
	var out Secret
	_, err := c.commitSecrets(ctx, &v, func(l *listing) (*secretsPlan, error) {
		for _, s := range l.secrets {
			if s.ID == cur.ID {
				if s.Revision != cur.Revision {
					return nil, fmt.Errorf("secret %q: %w", cur.Name, ErrConflict)
				}
				p, next, err := c.writePlan(v, s, value, rotated)
				out = next
				return p, err
			}
		}
		return nil, fmt.Errorf("secret %q: %w", cur.Name, ErrConflict)
	})
	if err != nil {
		return Secret{}, err
	}
	out.UpdatedAt = c.Now()
	return out, nil
}

// DeleteSecret removes the named secret and its history.
func (c *Client) DeleteSecret(ctx context.Context, v Vault, name string) error {
	_, err := c.commitSecrets(ctx, &v, func(l *listing) (*secretsPlan, error) {
		for _, s := range l.secrets {
			if s.Name == name {
				return &secretsPlan{deletes: []Secret{s}}, nil
			}
		}
		return nil, fmt.Errorf("secret %q in vault %q: %w", name, v.Name, ErrNotFound)
	})
	return err
}

// History returns every stored revision of the named secret, newest first.
// Old revisions are checked like current ones (vault, id and revision bound
// into each envelope), so the server cannot pass one revision off as
// another.
func (c *Client) History(ctx context.Context, v Vault, name string) ([]Secret, error) {
	s, err := c.SecretByName(ctx, v, name)
	if err != nil {
		return nil, err
	}
	var rows []secretRow
	if err := c.rest(ctx, "GET", "/secret_versions?select=secret_id,vault_id,revision,key_generation,ciphertext,created_at&secret_id=eq."+s.ID.String()+"&order=revision.desc", nil, &rows); err != nil {
		return nil, err
	}
	var out []Secret
	for _, r := range rows {
		if r.SecretID != s.ID {
			return nil, tamper("history of another secret", nil)
		}
		h, err := c.openSecret(v, s.ID, r)
		if err != nil {
			return nil, err
		}
		if h.Name != s.Name {
			return nil, tamper(fmt.Sprintf("secret %q: revision %d carries another name", s.Name, h.Revision), nil)
		}
		out = append(out, h)
	}
	if len(out) == 0 || out[0].Revision != s.Revision {
		return nil, tamper(fmt.Sprintf("secret %q: history does not include the current revision", s.Name), nil)
	}
	return out, nil
}

// Restore writes the value of an earlier revision as a new revision.
func (c *Client) Restore(ctx context.Context, v Vault, name string, revision uint64) (Secret, error) {
	hist, err := c.History(ctx, v, name)
	if err != nil {
		return Secret{}, err
	}
	for _, h := range hist {
		if h.Revision == revision {
			return c.UpdateSecret(ctx, v, hist[0], h.Value)
		}
	}
	return Secret{}, fmt.Errorf("secret %q has no revision %d: %w", name, revision, ErrNotFound)
}

// NameValue is one secret to create.
type NameValue struct {
	Name, Value string
}

// bulkSize and bulkBytes bound how many new secrets one write carries (the
// gateway accepts 1 MiB per request).
const (
	bulkSize  = 500
	bulkBytes = 600 << 10
)

// CreateSecrets adds many new secrets, encrypting each here and writing
// them in batches, each with the vault's next manifest. As with
// CreateSecret, the caller must know the names are new. progress, if not
// nil, is called after each batch with the number written so far.
func (c *Client) CreateSecrets(ctx context.Context, v Vault, items []NameValue, progress func(done int)) ([]Secret, error) {
	for _, it := range items {
		if err := checkValue(it.Name, it.Value); err != nil {
			return nil, err
		}
	}
	if !canWrite(v.Role) {
		return nil, forbidden(v, "write to it")
	}
	out := make([]Secret, 0, len(items))
	var l *listing
	for start := 0; start < len(items); {
		var err error
		if l == nil {
			if l, err = c.listing(ctx, &v, true); err != nil {
				return out, err
			}
		}
		p := &secretsPlan{}
		size, end := 0, start
		for ; end < len(items) && end-start < bulkSize; end++ {
			it := items[end]
			sec := Secret{ID: uuid.New(), VaultID: v.ID, Name: it.Name, Value: it.Value, Revision: 1}
			ct, g, err := c.seal(v, sec.ID, 1, it.Name, it.Value)
			if err != nil {
				return out, err
			}
			if end > start && size+len(ct) > bulkBytes {
				break
			}
			size += len(ct)
			sec.Generation = g
			p.upserts = append(p.upserts, upsert{secret: sec, ciphertext: ct})
		}
		nl, err := c.apply(ctx, &v, l, p)
		if isConflict(err) {
			l = nil // written meanwhile: read the listing again, retry this batch
			continue
		}
		if err != nil {
			return out, err
		}
		l = nl
		now := c.Now()
		for _, u := range p.upserts {
			sec := u.secret
			sec.UpdatedAt = now
			out = append(out, sec)
		}
		start = end
		if progress != nil {
			progress(len(out))
		}
	}
	return out, nil
}
