package zsm

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"zsm.dev/zsm/sdk/envelope"
)

// Secret is one decrypted secret.
type Secret struct {
	ID        uuid.UUID
	VaultID   uuid.UUID
	Name      string
	Value     string
	Revision  uint64
	UpdatedAt time.Time
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
	ID         uuid.UUID `json:"id"`
	SecretID   uuid.UUID `json:"secret_id"` // secret_versions
	VaultID    uuid.UUID `json:"vault_id"`
	Revision   uint64    `json:"revision"`
	Ciphertext string    `json:"ciphertext"`
	UpdatedAt  time.Time `json:"updated_at"`
	CreatedAt  time.Time `json:"created_at"` // secret_versions
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
// open under the vault's key with associated data naming this vault, the
// row's id and its revision, and the revision must be no older than this
// device has seen.
func (c *Client) Secrets(ctx context.Context, v Vault) ([]Secret, error) {
	var out []Secret
	after := uuid.Nil
	for {
		var rows []secretRow
		path := fmt.Sprintf("/secrets?select=id,vault_id,revision,ciphertext,updated_at&vault_id=eq.%s&order=id&limit=%d", v.ID, pageSize)
		if after != uuid.Nil {
			path += "&id=gt." + after.String()
		}
		if err := c.rest(ctx, "GET", path, nil, &rows); err != nil {
			return nil, err
		}
		for _, r := range rows {
			if r.ID.String() <= after.String() && after != uuid.Nil {
				return nil, tamper("the server repeated or reordered secrets", nil)
			}
			s, err := c.openSecret(v, r.ID, r)
			if err != nil {
				return nil, err
			}
			out = append(out, s)
			after = r.ID
		}
		if len(rows) < pageSize {
			break
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// openSecret checks and decrypts one row of secrets or secret_versions.
// The vault id bound into the associated data is the vault the caller asked
// about, not whatever the row claims, so a row moved to another vault fails.
func (c *Client) openSecret(v Vault, id uuid.UUID, r secretRow) (Secret, error) {
	if r.VaultID != v.ID {
		return Secret{}, tamper(fmt.Sprintf("secret %s is listed in vault %s but claims vault %s", id, v.ID, r.VaultID), nil)
	}
	plain, err := envelope.OpenString(v.key, envelope.Context{Type: envelope.Secret, VaultID: v.ID, ObjectID: id, Revision: r.Revision}, r.Ciphertext)
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
	return Secret{ID: id, VaultID: v.ID, Name: p.Name, Value: p.Value, Revision: r.Revision, UpdatedAt: when}, nil
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

func (c *Client) sealSecret(v Vault, id uuid.UUID, rev uint64, name, value string) (string, error) {
	plain, err := json.Marshal(secretPayload{Name: name, Value: value})
	if err != nil {
		return "", err
	}
	defer clear(plain)
	return envelope.SealString(v.key, envelope.Context{Type: envelope.Secret, VaultID: v.ID, ObjectID: id, Revision: rev}, plain, rand.Reader)
}

// SetSecret creates the named secret or writes a new revision of it.
func (c *Client) SetSecret(ctx context.Context, v Vault, name, value string) (Secret, error) {
	if err := ValidSecretName(name); err != nil {
		return Secret{}, err
	}
	if len(value) > MaxValueBytes {
		return Secret{}, fmt.Errorf("secret %q: the value is %d bytes; at most %d are allowed", name, len(value), MaxValueBytes)
	}
	cur, err := c.SecretByName(ctx, v, name)
	switch {
	case errors.Is(err, ErrNotFound):
		return c.CreateSecret(ctx, v, name, value)
	case err != nil:
		return Secret{}, err
	}
	return c.UpdateSecret(ctx, v, cur, value)
}

// CreateSecret adds a new secret without looking for one of the same name
// first; the caller must know the name is new (SetSecret looks).
func (c *Client) CreateSecret(ctx context.Context, v Vault, name, value string) (Secret, error) {
	s := Secret{ID: uuid.New(), VaultID: v.ID, Name: name, Value: value, Revision: 1}
	ct, err := c.sealSecret(v, s.ID, 1, name, value)
	if err != nil {
		return Secret{}, err
	}
	if err := c.rest(ctx, "POST", "/secrets", map[string]any{"id": s.ID, "vault_id": v.ID, "revision": 1, "ciphertext": ct}, nil); err != nil {
		return Secret{}, err
	}
	c.state.See(s.ID, 1)
	s.UpdatedAt = c.Now()
	return s, nil
}

// UpdateSecret writes value as revision cur.Revision+1, only if nobody
// wrote another revision meanwhile.
func (c *Client) UpdateSecret(ctx context.Context, v Vault, cur Secret, value string) (Secret, error) {
	next := cur
	next.Value, next.Revision = value, cur.Revision+1
	ct, err := c.sealSecret(v, cur.ID, next.Revision, cur.Name, value)
	if err != nil {
		return Secret{}, err
	}
	var rows []secretRow
	err = c.rest(ctx, "PATCH", fmt.Sprintf("/secrets?id=eq.%s&revision=eq.%d", cur.ID, cur.Revision),
		map[string]any{"revision": next.Revision, "ciphertext": ct}, &rows, "Prefer", "return=representation")
	if err != nil {
		return Secret{}, err
	}
	if len(rows) != 1 {
		return Secret{}, fmt.Errorf("secret %q: %w", cur.Name, ErrConflict)
	}
	c.state.See(cur.ID, next.Revision)
	next.UpdatedAt = c.Now()
	return next, nil
}

// DeleteSecret removes the named secret and its history.
func (c *Client) DeleteSecret(ctx context.Context, v Vault, name string) error {
	s, err := c.SecretByName(ctx, v, name)
	if err != nil {
		return err
	}
	var rows []secretRow
	if err := c.rest(ctx, "DELETE", "/secrets?id=eq."+s.ID.String(), nil, &rows, "Prefer", "return=representation"); err != nil {
		return err
	}
	if len(rows) != 1 {
		return fmt.Errorf("secret %q: %w", name, ErrConflict)
	}
	return nil
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
	if err := c.rest(ctx, "GET", "/secret_versions?select=secret_id,vault_id,revision,ciphertext,created_at&secret_id=eq."+s.ID.String()+"&order=revision.desc", nil, &rows); err != nil {
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

// bulkSize is how many new secrets one request carries.
const bulkSize = 500

// CreateSecrets adds many new secrets, encrypting each here and sending
// them in batches. As with CreateSecret, the caller must know the names are
// new. progress, if not nil, is called after each batch with the number
// written so far.
func (c *Client) CreateSecrets(ctx context.Context, v Vault, items []NameValue, progress func(done int)) ([]Secret, error) {
	out := make([]Secret, 0, len(items))
	for start := 0; start < len(items); start += bulkSize {
		batch := items[start:min(start+bulkSize, len(items))]
		body := make([]map[string]any, 0, len(batch))
		for _, it := range batch {
			if err := ValidSecretName(it.Name); err != nil {
				return out, err
			}
			if len(it.Value) > MaxValueBytes {
				return out, fmt.Errorf("secret %q: the value is %d bytes; at most %d are allowed", it.Name, len(it.Value), MaxValueBytes)
			}
			s := Secret{ID: uuid.New(), VaultID: v.ID, Name: it.Name, Value: it.Value, Revision: 1}
			ct, err := c.sealSecret(v, s.ID, 1, it.Name, it.Value)
			if err != nil {
				return out, err
			}
			body = append(body, map[string]any{"id": s.ID, "vault_id": v.ID, "revision": 1, "ciphertext": ct})
			out = append(out, s)
		}
		if err := c.rest(ctx, "POST", "/secrets", body, nil); err != nil {
			return out[:start], err
		}
		now := c.Now()
		for i := start; i < len(out); i++ {
			c.state.See(out[i].ID, 1)
			out[i].UpdatedAt = now
		}
		if progress != nil {
			progress(len(out))
		}
	}
	return out, nil
}
