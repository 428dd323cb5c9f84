package zsm

// Verifying other people's keys and the pins that remember it
// (docs/crypto.md §7). The pin set is one row of api.pins, sealed under the
// account key: only this account's own devices can read or write it, so a
// server can neither plant a pin nor read who this account trusts; a
// device refuses a pin row older than the newest it has seen.

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"time"

	"zsm.dev/zsm/sdk/trust"
)

// Errors of verification.
var (
	// ErrNotVerified means an identity has no pin: compare safety numbers
	// and confirm (zsm verify IDENTITY --confirm), or ask explicitly to trust
	// it on first use.
	ErrNotVerified = errors.New("this identity's keys are not verified")
	// ErrKeyChanged means an identity shows other keys than the ones this
	// account pinned for it: refused until the user compares safety numbers
	// again and confirms.
	ErrKeyChanged = errors.New("this identity has new keys")
)

// IdentityStatus says what this account's pins say of an identity's keys.
type IdentityStatus string

// The statuses CheckIdentity reports.
const (
	StatusUnverified IdentityStatus = "unverified" // no pin
	StatusVerified   IdentityStatus = "verified"   // pinned after comparing safety numbers
	StatusTOFU       IdentityStatus = "tofu"       // pinned on first use, not compared
	StatusChanged    IdentityStatus = "changed"    // other keys than the pinned ones
	StatusDowngrade  IdentityStatus = "downgrade"  // an older key record than the one seen
)

// IdentityCheck is an identity's keys as the server shows them now, checked
// here, with their fingerprint and what the pins say of them.
type IdentityCheck struct {
	Keys        PublicKeys
	Fingerprint Fingerprint
	Status      IdentityStatus
	Pin         *trust.Pin // the current pin, if any
}

// pinRow is the account's row of api.pins.
type pinRow struct {
	Revision   uint64 `json:"revision"`
	Ciphertext string `json:"ciphertext"`
}

// loadPins fetches and opens the account's pin set and its revision (0 and
// an empty set when there is none). A row older than one this device saw,
// or a missing row after one was seen, is ErrRollback; a row that does not
// open under the account key is ErrTampered.
func (c *Client) loadPins(ctx context.Context) (*trust.PinSet, uint64, error) {
	s := c.Session()
	var rows []pinRow
	if err := c.rest(ctx, "GET", "/pins?select=revision,ciphertext", nil, &rows); err != nil {
		return nil, 0, err
	}
	seen := c.state.PinsSeen(s.UserID)
	if len(rows) == 0 {
		if seen > 0 {
			return nil, 0, fmt.Errorf("pins: the server shows none after revision %d: %w", seen, ErrRollback)
		}
		return &trust.PinSet{}, 0, nil
	}
	if len(rows) > 1 {
		return nil, 0, tamper("pins: the server returned more than one pin set", nil)
	}
	r := rows[0]
	if err := trust.CheckRevision(seen, r.Revision); err != nil {
		return nil, 0, fmt.Errorf("pins: revision %d after %d: %w", r.Revision, seen, ErrRollback)
	}
	set, err := trust.OpenPinSet(s.Keys.AccountKey, s.UserID, r.Revision, r.Ciphertext)
	if err != nil {
		return nil, 0, tamper("pins", err)
	}
	c.state.SetPinsSeen(s.UserID, r.Revision)
	return set, r.Revision, nil
}

// updatePins applies change to the account's pin set and stores it as the
// next revision. When another device wrote meanwhile, it fetches that
// revision and applies change again (a few times at most).
func (c *Client) updatePins(ctx context.Context, change func(*trust.PinSet) error) error {
	s := c.Session()
	for attempt := 0; attempt < 5; attempt++ {
		set, rev, err := c.loadPins(ctx)
		if err != nil {
			return err
		}
		if err := change(set); err != nil {
			return err
		}
		sealed, err := set.Seal(s.Keys.AccountKey, s.UserID, rev+1, rand.Reader)
		if err != nil {
			return err
		}
		var out []pinRow
		if rev == 0 {
			err = c.rest(ctx, "POST", "/pins?select=revision", map[string]any{"revision": 1, "ciphertext": sealed}, &out,
				"Prefer", "return=representation")
			if isRest(err, 409) {
				continue
			}
		} else {
			err = c.rest(ctx, "PATCH", fmt.Sprintf("/pins?select=revision&revision=eq.%d", rev),
				map[string]any{"revision": rev + 1, "ciphertext": sealed}, &out, "Prefer", "return=representation")
		}
		if err != nil {
			return err
		}
		if len(out) == 1 {
			c.state.SetPinsSeen(s.UserID, rev+1)
			c.mu.Lock()
			c.pinCache = set
			c.mu.Unlock()
			return nil
		}
	}
	return fmt.Errorf("pins: %w", ErrConflict)
}

// pins returns the pin set, fetched once per Client and kept after.
func (c *Client) pins(ctx context.Context) (*trust.PinSet, error) {
	c.mu.Lock()
	cached := c.pinCache
	c.mu.Unlock()
	if cached != nil {
		return cached, nil
	}
	set, _, err := c.loadPins(ctx)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.pinCache = set
	c.mu.Unlock()
	return set, nil
}

// Pins lists the identities this account pinned.
func (c *Client) Pins(ctx context.Context) ([]trust.Pin, error) {
	set, _, err := c.loadPins(ctx)
	if err != nil {
		return nil, err
	}
	return set.Pins(), nil
}

// CheckIdentity looks identity up, checks its key record, and says what
// this account's pins say of the keys (nothing is pinned).
func (c *Client) CheckIdentity(ctx context.Context, identity string) (IdentityCheck, error) {
	pk, err := c.LookupIdentity(ctx, identity)
	if err != nil {
		return IdentityCheck{}, err
	}
	if !pk.Signed {
		return IdentityCheck{}, fmt.Errorf("identity %q has published no key record yet (it must log in once with a current client): %w", pk.Identity, ErrNotVerified)
	}
	fp, err := fingerprintOf(pk)
	if err != nil {
		return IdentityCheck{}, err
	}
	set, _, err := c.loadPins(ctx)
	if err != nil {
		return IdentityCheck{}, err
	}
	out := IdentityCheck{Keys: pk, Fingerprint: fp}
	if p, ok := set.Lookup(pk.Identity); ok {
		out.Pin = &p
	}
	_, _, err = set.Check(pk.record())
	switch {
	case err == nil:
		out.Status = IdentityStatus(out.Pin.Status)
	case errors.Is(err, trust.ErrNotPinned):
		out.Status = StatusUnverified
	case errors.Is(err, trust.ErrKeyChanged):
		out.Status = StatusChanged
	case errors.Is(err, trust.ErrDowngrade):
		out.Status = StatusDowngrade
	default:
		return IdentityCheck{}, tamper(fmt.Sprintf("identity %q", pk.Identity), err)
	}
	return out, nil
}

// ConfirmIdentity pins the keys of a CheckIdentity result, after the user
// compared its safety number out of band (trust.Verified) or chose to
// trust it on first use (trust.TOFU, which never replaces a pin of other
// keys). A downgraded record is never pinned.
func (c *Client) ConfirmIdentity(ctx context.Context, check IdentityCheck, status trust.Status) (trust.Pin, error) {
	if check.Status == StatusDowngrade {
		return trust.Pin{}, fmt.Errorf("identity %q shows an older key record than this account has seen: %w",
			check.Keys.Identity, tamper("downgraded key record", trust.ErrDowngrade))
	}
	var pin trust.Pin
	err := c.updatePins(ctx, func(set *trust.PinSet) error {
		p, err := set.Confirm(check.Keys.record(), status, c.Now())
		if errors.Is(err, trust.ErrKeyChanged) {
			return fmt.Errorf("identity %q: %w; compare safety numbers and confirm", check.Keys.Identity, ErrKeyChanged)
		}
		pin = p
		return err
	})
	return pin, err
}

// trustKeys checks keys against the pins before this account relies on
// them (sharing a vault with them): pinned keys pass (a pin at version 1 is
// raised to 2 when a version 2 record appears), changed keys are
// ErrKeyChanged, an older record ErrTampered, and keys without a pin are
// ErrNotVerified unless tofu, which pins them as trusted on first use.
func (c *Client) trustKeys(ctx context.Context, pk PublicKeys, tofu bool) error {
	if !pk.Signed {
		return fmt.Errorf("identity %q has published no key record yet (it must log in once with a current client): %w", pk.Identity, ErrNotVerified)
	}
	set, _, err := c.loadPins(ctx)
	if err != nil {
		return err
	}
	_, raised, err := set.Check(pk.record())
	switch {
	case err == nil && !raised:
		return nil
	case err == nil && raised:
		return c.updatePins(ctx, func(s *trust.PinSet) error {
			p, raised, err := s.Check(pk.record())
			if err == nil && raised {
				_, err = s.Confirm(pk.record(), p.Status, time.UnixMilli(p.PinnedAt.UnixMilli()))
			}
			return err
		})
	case errors.Is(err, trust.ErrNotPinned) && tofu:
		_, err := c.ConfirmIdentity(ctx, IdentityCheck{Keys: pk, Status: StatusUnverified}, trust.TOFU)
		return err
	case errors.Is(err, trust.ErrNotPinned):
		return fmt.Errorf("identity %q: %w; compare safety numbers (zsm verify %s) or trust it on first use", pk.Identity, ErrNotVerified, pk.Identity)
	case errors.Is(err, trust.ErrKeyChanged):
		return fmt.Errorf("identity %q: %w; compare safety numbers and run zsm verify %s --confirm", pk.Identity, ErrKeyChanged, pk.Identity)
	case errors.Is(err, trust.ErrDowngrade):
		return tamper(fmt.Sprintf("identity %q: an older key record than this account has seen", pk.Identity), err)
	}
	return tamper(fmt.Sprintf("identity %q", pk.Identity), err)
}
