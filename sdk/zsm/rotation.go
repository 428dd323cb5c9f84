package zsm

// Rotation without server plaintext: the server keeps each secret's
// schedule (api.rotation_policies) and raises secret.rotation_due when it
// falls due; the rotation itself — a new value, encrypted here, written as
// the next revision — happens on this side.

import (
	"context"
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Bounds of a rotation interval (the database enforces the same).
const (
	MinRotationInterval = time.Minute
	MaxRotationInterval = 3650 * 24 * time.Hour
)

// RotationPolicy is a secret's rotation schedule.
type RotationPolicy struct {
	VaultID   uuid.UUID
	VaultName string
	SecretID  uuid.UUID
	Name      string // the secret's name, decrypted here; "" if this device cannot open it
	Every     time.Duration
	Revision  uint64 // the secret's current revision, as the server records it
	// LastRotatedAt is the last rotation, or the age of the value when the
	// policy was made; LastRotatedRevision is the revision that rotation
	// wrote (0: none yet).
	LastRotatedAt       time.Time
	LastRotatedRevision uint64
	NextDueAt           time.Time
}

// Due reports whether the rotation is due at now.
func (p RotationPolicy) Due(now time.Time) bool { return !p.NextDueAt.After(now) }

type rotationRow struct {
	SecretID            uuid.UUID `json:"secret_id"`
	VaultID             uuid.UUID `json:"vault_id"`
	IntervalSeconds     int64     `json:"interval_seconds"`
	Revision            uint64    `json:"revision"`
	LastRotatedAt       time.Time `json:"last_rotated_at"`
	LastRotatedRevision *uint64   `json:"last_rotated_revision"`
	NextDueAt           time.Time `json:"next_due_at"`
}

const rotationSelect = "secret_id,vault_id,interval_seconds,revision,last_rotated_at,last_rotated_revision,next_due_at"

func (r rotationRow) policy(v Vault, name string) RotationPolicy {
	p := RotationPolicy{
		VaultID: r.VaultID, VaultName: v.Name, SecretID: r.SecretID, Name: name,
		Every: time.Duration(r.IntervalSeconds) * time.Second, Revision: r.Revision,
		LastRotatedAt: r.LastRotatedAt, NextDueAt: r.NextDueAt,
	}
	if r.LastRotatedRevision != nil {
		p.LastRotatedRevision = *r.LastRotatedRevision
	}
	return p
}

// ParseInterval reads a rotation interval: a Go duration ("36h", "90m") or
// a whole number of days or weeks ("90d", "2w").
func ParseInterval(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	var d time.Duration
	if n, unit := strings.TrimRight(s, "dw"), strings.TrimLeft(s, "0123456789"); unit == "d" || unit == "w" {
		k, err := strconv.Atoi(n)
		if err != nil || k <= 0 || k > 3650 {
			return 0, fmt.Errorf("interval %q: use e.g. 90d, 2w or 36h", s)
		}
		d = time.Duration(k) * 24 * time.Hour
		if unit == "w" {
			d *= 7
		}
	} else {
		var err error
		if d, err = time.ParseDuration(s); err != nil {
			return 0, fmt.Errorf("interval %q: use e.g. 90d, 2w or 36h", s)
		}
	}
	if d < MinRotationInterval || d > MaxRotationInterval {
		return 0, fmt.Errorf("interval %q: must be between 1m and 3650d", s)
	}
	return d, nil
}

// SetRotationPolicy makes the named secret due for rotation every interval
// (counted from its last rotation or, for a new policy, from when its value
// was last written), or changes the interval of its policy.
func (c *Client) SetRotationPolicy(ctx context.Context, v Vault, name string, every time.Duration) (RotationPolicy, error) {
	if every < MinRotationInterval || every > MaxRotationInterval || every%time.Second != 0 {
		return RotationPolicy{}, fmt.Errorf("rotation interval %v: must be whole seconds between 1m and 3650d", every)
	}
	s, err := c.SecretByName(ctx, v, name)
	if err != nil {
		return RotationPolicy{}, err
	}
	secs := int64(every / time.Second)
	var rows []rotationRow
	if err := c.rest(ctx, "PATCH", "/rotation_policies?select="+rotationSelect+"&secret_id=eq."+s.ID.String(),
		map[string]any{"interval_seconds": secs}, &rows, "Prefer", "return=representation"); err != nil {
		return RotationPolicy{}, err
	}
	if len(rows) == 0 {
		err = c.rest(ctx, "POST", "/rotation_policies?select="+rotationSelect,
			map[string]any{"secret_id": s.ID, "vault_id": v.ID, "interval_seconds": secs}, &rows, "Prefer", "return=representation")
		if err != nil {
			return RotationPolicy{}, err
		}
	}
	if len(rows) != 1 || rows[0].SecretID != s.ID || rows[0].VaultID != v.ID {
		return RotationPolicy{}, tamper("the server answered with another rotation policy", nil)
	}
	return rows[0].policy(v, s.Name), nil
}

// RemoveRotationPolicy ends the named secret's rotation schedule.
func (c *Client) RemoveRotationPolicy(ctx context.Context, v Vault, name string) error {
	s, err := c.SecretByName(ctx, v, name)
	if err != nil {
		return err
	}
	var rows []rotationRow
	if err := c.rest(ctx, "DELETE", "/rotation_policies?select=secret_id&secret_id=eq."+s.ID.String(), nil, &rows,
		"Prefer", "return=representation"); err != nil {
		return err
	}
	if len(rows) != 1 {
		return fmt.Errorf("secret %q has no rotation policy: %w", name, ErrNotFound)
	}
	return nil
}

// RotationPolicies lists the rotation policies of a vault, soonest due
// first, with the secrets' names decrypted here.
func (c *Client) RotationPolicies(ctx context.Context, v Vault) ([]RotationPolicy, error) {
	return c.rotationPolicies(ctx, []Vault{v}, "&vault_id=eq."+v.ID.String())
}

// RotationsDue lists, across every vault this account can open, the
// secrets whose rotation is due now, soonest first.
func (c *Client) RotationsDue(ctx context.Context) ([]RotationPolicy, error) {
	vs, err := c.Vaults(ctx)
	if err != nil {
		return nil, err
	}
	return c.rotationPolicies(ctx, vs, "&next_due_at=lte."+url.QueryEscape(c.Now().UTC().Format(time.RFC3339Nano)))
}

func (c *Client) rotationPolicies(ctx context.Context, vs []Vault, filter string) ([]RotationPolicy, error) {
	var rows []rotationRow
	if err := c.rest(ctx, "GET", "/rotation_policies?select="+rotationSelect+filter+"&order=next_due_at,secret_id", nil, &rows); err != nil {
		return nil, err
	}
	byID := map[uuid.UUID]Vault{}
	for _, v := range vs {
		byID[v.ID] = v
	}
	names := map[uuid.UUID]map[uuid.UUID]string{}
	var out []RotationPolicy
	for _, r := range rows {
		v, ok := byID[r.VaultID]
		if !ok {
			continue // a vault this device cannot open
		}
		if names[v.ID] == nil {
			all, err := c.Secrets(ctx, v)
			if err != nil {
				return nil, err
			}
			m := map[uuid.UUID]string{}
			for _, s := range all {
				m[s.ID] = s.Name
			}
			names[v.ID] = m
		}
		out = append(out, r.policy(v, names[v.ID][r.SecretID]))
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].NextDueAt.Before(out[j].NextDueAt) })
	return out, nil
}

// Rotate gives the named secret a new value: newValue receives the current
// value and returns the next one (it may, say, change a database password
// first). The new value is encrypted here and written as the next revision,
// with the vault's next manifest, in the transaction that marks the
// rotation done on the server (api.commit_secrets with "rotated"), which
// records secret.rotated. It fails with ErrConflict if somebody wrote the
// secret meanwhile.
func (c *Client) Rotate(ctx context.Context, v Vault, name string, newValue func(old string) (string, error)) (Secret, error) {
	cur, err := c.SecretByName(ctx, v, name)
	if err != nil {
		return Secret{}, err
	}
	value, err := newValue(cur.Value)
	if err != nil {
		return Secret{}, fmt.Errorf("secret %q: making the new value: %w", name, err)
	}
	if value == cur.Value {
		return Secret{}, fmt.Errorf("secret %q: the new value is the old one; nothing was rotated", name)
	}
	if len(value) > MaxValueBytes {
		return Secret{}, fmt.Errorf("secret %q: the value is %d bytes; at most %d are allowed", name, len(value), MaxValueBytes)
	}
	return c.updateSecret(ctx, v, cur, value, true)
}
