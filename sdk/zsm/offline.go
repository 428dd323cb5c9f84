package zsm

// The offline cache (docs/crypto.md §14): the server's answers to the reads
// of a vault, as they were, kept sealed after they were verified; and a
// client that answers its reads from them when the server cannot be
// reached, verifying them exactly as it verifies the server's.

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"

	"zsm.dev/zsm/sdk/offline"
)

// statesPath is the read that lists every vault of the caller with its
// grant, log and manifest; it is kept per vault, each file with its own
// row.
const statesPath = "/rpc/vault_states"

// RecordAnswers makes c keep the server's answers to its reads, for
// SaveOffline.
func (c *Client) RecordAnswers() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.recorded == nil {
		c.recorded = map[string][]byte{}
	}
}

func (c *Client) record(path string, data []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.recorded != nil {
		c.recorded[path] = bytes.Clone(data)
	}
}

// cachedAnswers is what one vault's cache file holds: the answers by path,
// and for a machine token its creator and anchor as the last login gave
// them (the anchor is checked again when the copy is used).
type cachedAnswers struct {
	Paths   map[string]json.RawMessage `json:"paths"`
	Creator string                     `json:"creator,omitempty"`
	Anchor  string                     `json:"anchor,omitempty"`
}

// SaveOffline keeps, for each vault of vaults, the answers c read that
// concern it: its own row of the vault list, the reads that name it
// (manifest, secrets), and the reads that concern every vault (the members'
// keys, the pin set). Call it only after the answers were verified (the
// vaults opened and their secrets read).
func (c *Client) SaveOffline(cache *offline.Cache, vaults []Vault, fetched time.Time) error {
	c.mu.Lock()
	rec := make(map[string][]byte, len(c.recorded))
	for p, b := range c.recorded {
		rec[p] = b
	}
	m := c.machine
	c.mu.Unlock()
	if len(rec) == 0 {
		return errors.New("offline: nothing was recorded (RecordAnswers)")
	}
	var states []json.RawMessage
	if err := json.Unmarshal(rec[statesPath], &states); err != nil {
		return fmt.Errorf("offline: the vault list: %w", err)
	}
	for _, v := range vaults {
		a := cachedAnswers{Paths: map[string]json.RawMessage{}}
		if m != nil {
			a.Creator, a.Anchor = m.creator.String(), base64.StdEncoding.EncodeToString(m.anchor)
		}
		for _, row := range states {
			var id struct {
				ID uuid.UUID `json:"id"`
			}
			if json.Unmarshal(row, &id) == nil && id.ID == v.ID {
				b, _ := json.Marshal([]json.RawMessage{row})
				a.Paths[statesPath] = b
			}
		}
		if a.Paths[statesPath] == nil {
			return fmt.Errorf("offline: vault %s is not in the vault list read", v.ID)
		}
		for p, b := range rec {
			if p == statesPath {
				continue
			}
			if strings.Contains(p, v.ID.String()) || !mentionsAnyVault(p, states) {
				a.Paths[p] = b
			}
		}
		data, err := json.Marshal(a)
		if err != nil {
			return err
		}
		if err := cache.Put(v.ID, fetched, data); err != nil {
			return err
		}
	}
	return nil
}

// mentionsAnyVault reports whether path names one of the listed vaults.
func mentionsAnyVault(path string, states []json.RawMessage) bool {
	for _, row := range states {
		var id struct {
			ID uuid.UUID `json:"id"`
		}
		if json.Unmarshal(row, &id) == nil && strings.Contains(path, id.ID.String()) {
			return true
		}
	}
	return false
}

// OfflineCopy is one vault's cached copy in use, and when it was fetched.
type OfflineCopy struct {
	VaultID uuid.UUID
	Fetched time.Time
}

// ErrCacheTooOld means the cached copies are older than allowed.
var ErrCacheTooOld = offline.ErrTooOld

// UseOffline makes c answer its reads from the cached copies of vaults
// (those at most maxAge old at now) and refuse writes; it returns the
// copies in use. Copies that are too old are left out (ErrCacheTooOld when
// none is young enough); a damaged copy is ErrTampered.
func (c *Client) UseOffline(cache *offline.Cache, vaults []uuid.UUID, maxAge time.Duration, now time.Time) ([]OfflineCopy, error) {
	o := &offlineAnswers{paths: map[string][]byte{}}
	var states []json.RawMessage
	var used []OfflineCopy
	var tooOld error
	var newest time.Time
	for _, id := range vaults {
		data, fetched, err := cache.Get(id, maxAge, now)
		switch {
		case errors.Is(err, offline.ErrTooOld):
			tooOld = err
			continue
		case errors.Is(err, offline.ErrMissing):
			continue
		case errors.Is(err, offline.ErrTampered):
			return nil, tamper("offline cache", err)
		case err != nil:
			return nil, err
		}
		var a cachedAnswers
		if err := json.Unmarshal(data, &a); err != nil {
			return nil, tamper("offline cache", err)
		}
		var rows []json.RawMessage
		if err := json.Unmarshal(a.Paths[statesPath], &rows); err != nil || len(rows) != 1 {
			return nil, tamper("offline cache: the vault's row", err)
		}
		states = append(states, rows[0])
		for p, b := range a.Paths {
			// Reads of every vault come from the newest copy.
			if _, ok := o.paths[p]; p != statesPath && (!ok || fetched.After(newest)) {
				o.paths[p] = b
			}
		}
		if c.machine != nil && (c.machine.creator == uuid.Nil || fetched.After(newest)) {
			creator, err1 := uuid.Parse(a.Creator)
			anchor, err2 := base64.StdEncoding.Strict().DecodeString(a.Anchor)
			if err1 != nil || err2 != nil || len(anchor) != 32 {
				return nil, tamper("offline cache: the creator and anchor", errors.Join(err1, err2))
			}
			c.machine.creator, c.machine.anchor = creator, anchor
		}
		if fetched.After(newest) {
			newest = fetched
		}
		used = append(used, OfflineCopy{VaultID: id, Fetched: fetched})
	}
	if len(used) == 0 {
		if tooOld != nil {
			return nil, tooOld
		}
		return nil, fmt.Errorf("offline: no cached copy: %w", offline.ErrMissing)
	}
	b, err := json.Marshal(states)
	if err != nil {
		return nil, err
	}
	o.paths[statesPath] = b
	c.mu.Lock()
	c.offline = o
	c.mu.Unlock()
	return used, nil
}

// CachedVaults lists the vaults a cache holds copies of.
func CachedVaults(cache *offline.Cache) ([]uuid.UUID, error) { return cache.Vaults() }

// offlineAnswers answers reads from cached copies.
type offlineAnswers struct {
	paths map[string][]byte
}

func (o *offlineAnswers) answer(method, path string, out any) error {
	if method != http.MethodGet {
		return fmt.Errorf("%w: working from the offline cache, which only reads", ErrUnreachable)
	}
	data, ok := o.paths[path]
	if !ok {
		return fmt.Errorf("%w: %s is not in the offline cache", ErrUnreachable, path)
	}
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			return tamper("offline cache", err)
		}
	}
	return nil
}
