package zsm

// Reading a vault's secrets against its manifest, and writing them with the
// next manifest in one transaction (docs/crypto.md §10, api.commit_secrets).

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	mrand "math/rand/v2"
	"sort"
	"time"

	"github.com/google/uuid"

	"zsm.dev/zsm/sdk/envelope"
	"zsm.dev/zsm/sdk/grant"
	"zsm.dev/zsm/sdk/manifest"
	"zsm.dev/zsm/sdk/memberlog"
	"zsm.dev/zsm/sdk/trust"
)

// ErrForbidden means this account's role in a vault does not allow what
// was asked (a viewer writing, an editor managing members, an admin
// removing an owner). The client refuses before asking; the server's
// row-level security refuses too.
var ErrForbidden = errors.New("not allowed for your role in this vault")

func forbidden(v Vault, what string) error {
	return fmt.Errorf("vault %q: you are %s %s and cannot %s: %w", v.Name, article(v.Role), v.Role, what, ErrForbidden)
}

func article(role string) string {
	if role != "" && (role[0] == 'o' || role[0] == 'a' || role[0] == 'e') {
		return "an"
	}
	return "a"
}

// roleErr turns the server's row-level refusal (403, 42501) into
// ErrForbidden, keeping its message.
func roleErr(err error) error {
	var e *restError
	if errors.As(err, &e) && e.Status == 403 && e.Code == "42501" {
		return fmt.Errorf("%w: the server refused: %s", ErrForbidden, e.Message)
	}
	return err
}

// isConflict reports a write that lost a race: the manifest, a secret or
// the log moved on meanwhile.
func isConflict(err error) bool {
	var e *restError
	return errors.As(err, &e) && e.Status == 409 && (e.Code == "write_conflict" || e.Code == "23505")
}

// canWrite: the roles that write secrets.
func canWrite(role string) bool { return role == "owner" || role == "admin" || role == "editor" }

// maxAttempts bounds the retries of a write that conflicts with another.
const maxAttempts = 8

func manifestBody(m manifest.Signed) map[string]any {
	msg, sig := m.Row()
	return map[string]any{"version": m.Manifest.Version, "manifest": msg, "signature": sig}
}

// listing is a vault's secrets as verified against its manifest.
type listing struct {
	secrets      []Secret // decrypted, by name
	items        map[uuid.UUID]manifest.Item
	man          *manifest.Signed
	metaRevision uint64
}

func (l *listing) clone() *listing {
	return &listing{secrets: append([]Secret(nil), l.secrets...), items: maps.Clone(l.items), man: l.man, metaRevision: l.metaRevision}
}

// reopen opens v again (a fresh snapshot of its log, grant, keys and
// manifest) and makes every copy of v see it.
func (c *Client) reopen(ctx context.Context, v *Vault) error {
	l, err := c.ListVaults(ctx)
	if err != nil {
		return err
	}
	for _, o := range l.Vaults {
		if o.ID == v.ID {
			v.st.replace(o.st)
			v.Name, v.Role, v.Revision, v.Generation = o.Name, o.Role, o.Revision, o.Generation
			return nil
		}
	}
	for _, r := range l.Refused {
		if r.ID == v.ID {
			return r
		}
	}
	return fmt.Errorf("vault %q: %w (no longer a member?)", v.Name, ErrNotFound)
}

// currentManifest fetches v's manifest and checks it (docs/crypto.md §10)
// against the log, reopening v once when it names log entries newer than
// the replayed ones, and against the newest manifest this device saw.
func (c *Client) currentManifest(ctx context.Context, v *Vault) (*manifest.Signed, error) {
	for attempt := 0; ; attempt++ {
		// What this device knew when it asked: a write of this client's own
		// that completes while the answer is on its way raises what it knows,
		// and an answer older than that but not older than what was known
		// when asking is not a rollback, only late: ask again.
		before := c.state.ManifestSeen(v.ID)
		m, err := c.fetchManifest(ctx, v)
		if errors.Is(err, ErrRollback) && m != nil && attempt < maxAttempts && manifest.CheckRollback(*m, before) == nil {
			continue
		}
		return m, err
	}
}

// fetchManifest is one round of currentManifest. On ErrRollback it also
// returns the manifest it refused.
func (c *Client) fetchManifest(ctx context.Context, v *Vault) (*manifest.Signed, error) {
	var rows []manifestRow
	if err := c.rest(ctx, "GET", "/vault_manifests?select=version,manifest,signature,signer_id&vault_id=eq."+v.ID.String(), nil, &rows); err != nil {
		return nil, err
	}
	if len(rows) != 1 {
		return nil, tamper(fmt.Sprintf("vault %q: %d manifests", v.Name, len(rows)), nil)
	}
	r := rows[0]
	m, err := manifest.ParseRow(r.Manifest, r.Signature, r.SignerID)
	if err != nil {
		return nil, tamper(fmt.Sprintf("vault %q: manifest", v.Name), err)
	}
	if m.Manifest.Version != r.Version {
		return nil, tamper(fmt.Sprintf("vault %q: the manifest row and its message disagree on the version", v.Name), nil)
	}
	for attempt := 0; ; attempt++ {
		log, rows, known, _ := v.st.snapshot()
		if known != nil && known.Seen() == m.Seen() {
			return known, nil
		}
		err := verifyManifest(m, log, rows, v.st.ids, c.state.ManifestSeen(v.ID))
		if errors.Is(err, manifest.ErrLogMismatch) && attempt == 0 {
			// Written after entries this client has not replayed yet.
			if err := c.reopen(ctx, v); err != nil {
				return nil, err
			}
			continue
		}
		if err != nil {
			return nil, checkErr(fmt.Sprintf("vault %q: manifest", v.Name), err)
		}
		break
	}
	if err := manifest.CheckRollback(m, c.state.ManifestSeen(v.ID)); err != nil {
		return &m, checkErr(fmt.Sprintf("vault %q: manifest", v.Name), err)
	}
	v.st.mu.Lock()
	if v.st.man == nil || m.Manifest.Version >= v.st.man.Manifest.Version {
		v.st.man = &m
	}
	v.st.mu.Unlock()
	c.state.SetManifestSeen(v.ID, m.Seen())
	return &m, nil
}

// secretRows fetches every row of a vault's secrets, in pages, in id order.
func (c *Client) secretRows(ctx context.Context, v Vault) ([]secretRow, error) {
	var out []secretRow
	after := uuid.Nil
	for {
		var rows []secretRow
		path := fmt.Sprintf("/secrets?select=id,vault_id,revision,key_generation,ciphertext,updated_at&vault_id=eq.%s&order=id&limit=%d", v.ID, pageSize)
		if after != uuid.Nil {
			path += "&id=gt." + after.String()
		}
		if err := c.rest(ctx, "GET", path, nil, &rows); err != nil {
			return nil, err
		}
		for _, r := range rows {
			if after != uuid.Nil && r.ID.String() <= after.String() {
				return nil, tamper("the server repeated or reordered secrets", nil)
			}
			out = append(out, r)
			after = r.ID
		}
		if len(rows) < pageSize {
			return out, nil
		}
	}
}

// prepare makes a vault ready to be read and written: a vault of this
// account's from before membership logs gets its log and first manifest
// (adopt), and an owner or admin rotates the key when a member left since
// the last rotation.
func (c *Client) prepare(ctx context.Context, v *Vault) error {
	if v.st == nil {
		return errors.New("this vault was not opened by this client (use VaultByName or ListVaults)")
	}
	_, _, _, legacy := v.st.snapshot()
	if legacy {
		if err := c.adopt(ctx, v); err != nil {
			return err
		}
	}
	log, _, _, _ := v.st.snapshot()
	if log.RotationDue() && (v.Role == "owner" || v.Role == "admin") {
		if err := c.rotate(ctx, v); err != nil {
			return fmt.Errorf("vault %q: a member left and the key must be rotated: %w", v.Name, err)
		}
	}
	return nil
}

// verifiedListing reads v's secrets and checks them against its manifest:
// the manifest is read before and after the secrets, and the two must be
// the same version (writes change both in one transaction, so the listing
// between them is that version's). Every secret must open under the key of
// the generation it names, and the (id, revision, generation) of all of
// them must be exactly what the manifest commits to: a hidden, resurrected,
// older or relabelled secret is ErrTampered.
func (c *Client) verifiedListing(ctx context.Context, v *Vault) (*listing, error) {
	return c.listing(ctx, v, false)
}

// listing is verifiedListing; with cached, a listing this client verified
// or wrote before is used when the vault's current manifest is still
// exactly the one it belongs to (the manifest commits to every secret's id,
// revision and generation, so nothing else can have changed). Writes use
// it; reads always fetch.
func (c *Client) listing(ctx context.Context, v *Vault, cached bool) (*listing, error) {
	if err := c.prepare(ctx, v); err != nil {
		return nil, err
	}
	if cached {
		v.st.mu.Lock()
		l := v.st.cache
		v.st.mu.Unlock()
		if l != nil {
			man, err := c.currentManifest(ctx, v)
			if err != nil {
				return nil, err
			}
			if man.Seen() == l.man.Seen() {
				return l.clone(), nil
			}
		}
	}
	reopened := false
	for attempt := 0; attempt < maxAttempts; attempt++ {
		man, err := c.currentManifest(ctx, v)
		if err != nil {
			return nil, err
		}
		rows, err := c.secretRows(ctx, *v)
		if err != nil {
			return nil, err
		}
		again, err := c.currentManifest(ctx, v)
		if err != nil {
			return nil, err
		}
		if again.Manifest.Version != man.Manifest.Version {
			continue // written meanwhile: read again
		}
		l := &listing{items: make(map[uuid.UUID]manifest.Item, len(rows)), man: man, metaRevision: man.Manifest.MetaRevision}
		items := make([]manifest.Item, 0, len(rows))
		missing, stale := false, false
		for _, r := range rows {
			if _, ok := v.st.key(r.KeyGeneration); !ok {
				missing = true
				break
			}
			s, err := c.openSecret(*v, r.ID, r)
			if err != nil {
				return nil, err
			}
			// An older revision than this device saw is a rollback, whatever
			// the manifest says, unless this client wrote a newer manifest
			// meanwhile (a write of its own, while this was read).
			if seen := c.state.Seen(s.ID); s.Revision < seen {
				if c.state.ManifestSeen(v.ID).Version > man.Manifest.Version {
					stale = true
					break
				}
				return nil, fmt.Errorf("secret %q: revision %d after %d: %w", s.Name, s.Revision, seen, ErrRollback)
			}
			it := manifest.Item{ID: r.ID, Revision: r.Revision, Generation: r.KeyGeneration}
			items = append(items, it)
			l.items[r.ID] = it
			l.secrets = append(l.secrets, s)
		}
		if stale {
			continue
		}
		if missing {
			// Sealed under a generation made after this client opened
			// the vault: open it again, once.
			if reopened {
				return nil, tamper(fmt.Sprintf("vault %q: a secret is sealed under a key generation the log does not give this account", v.Name), nil)
			}
			if err := c.reopen(ctx, v); err != nil {
				return nil, err
			}
			reopened = true
			continue
		}
		if err := manifest.CheckListing(man.Manifest, items, man.Manifest.MetaRevision); err != nil {
			return nil, tamper(fmt.Sprintf("vault %q: the secrets listed are not the ones its manifest names", v.Name), err)
		}
		for _, sec := range l.secrets {
			c.state.See(sec.ID, sec.Revision)
		}
		sort.SliceStable(l.secrets, func(i, j int) bool { return l.secrets[i].Name < l.secrets[j].Name })
		v.st.mu.Lock()
		v.st.cache = l.clone()
		v.st.mu.Unlock()
		return l, nil
	}
	return nil, fmt.Errorf("vault %q keeps changing while it is read: %w", v.Name, ErrConflict)
}

// upsert is one secret a write creates (revision 1) or changes.
type upsert struct {
	secret     Secret
	ciphertext string
	rotated    bool
}

type metaChange struct {
	meta     string
	revision uint64
}

// secretsPlan is what one write changes.
type secretsPlan struct {
	upserts []upsert
	deletes []Secret
	meta    *metaChange
}

// seal encrypts a secret's name and value under v's newest key generation.
func (c *Client) seal(v Vault, id uuid.UUID, revision uint64, name, value string) (string, uint64, error) {
	gen, key := v.st.newest()
	plain, err := json.Marshal(secretPayload{Name: name, Value: value})
	if err != nil {
		return "", 0, err
	}
	defer clear(plain)
	ct, err := envelope.SealString(key, envelope.Context{Type: envelope.Secret, VaultID: v.ID, ObjectID: id, Revision: revision}, plain, rand.Reader)
	return ct, gen, err
}

// apply sends plan, made from l, with the next manifest, in one
// transaction (api.commit_secrets), and returns the listing after it. A
// conflict (somebody wrote meanwhile) is returned as it is, for the caller
// to read again and retry.
func (c *Client) apply(ctx context.Context, v *Vault, l *listing, p *secretsPlan) (*listing, error) {
	s := c.Session()
	nl := l.clone()
	var ups, dels []map[string]any
	for _, u := range p.upserts {
		it := manifest.Item{ID: u.secret.ID, Revision: u.secret.Revision, Generation: u.secret.Generation}
		nl.items[it.ID] = it
		ups = append(ups, map[string]any{"id": it.ID, "revision": it.Revision, "key_generation": it.Generation,
			"ciphertext": u.ciphertext, "rotated": u.rotated})
	}
	for _, d := range p.deletes {
		delete(nl.items, d.ID)
		dels = append(dels, map[string]any{"id": d.ID, "revision": d.Revision})
	}
	if p.meta != nil {
		nl.metaRevision = p.meta.revision
	}
	items := make([]manifest.Item, 0, len(nl.items))
	for _, it := range nl.items {
		items = append(items, it)
	}
	log, _, _, _ := v.st.snapshot()
	m, err := manifest.Next(l.man, log, nl.metaRevision, items)
	if err != nil {
		return nil, err
	}
	signed, err := manifest.Sign(m, s.UserID, s.Keys.Ed25519)
	if err != nil {
		return nil, err
	}
	body := map[string]any{"vault_id": v.ID, "manifest": manifestBody(signed), "upserts": orEmpty(ups), "deletes": orEmpty(dels)}
	if p.meta != nil {
		body["meta"] = map[string]any{"meta": p.meta.meta, "revision": p.meta.revision}
	}
	if err := c.rest(ctx, "POST", "/rpc/commit_secrets", body, nil); err != nil {
		return nil, roleErr(err)
	}
	nl.man = &signed
	defer func() {
		v.st.mu.Lock()
		v.st.cache = nl.clone()
		v.st.mu.Unlock()
	}()
	v.st.mu.Lock()
	v.st.man = &signed
	v.st.mu.Unlock()
	c.state.SetManifestSeen(v.ID, signed.Seen())
	now := c.Now()
	deleted := map[uuid.UUID]bool{}
	for _, d := range p.deletes {
		deleted[d.ID] = true
	}
	changed := map[uuid.UUID]Secret{}
	for _, u := range p.upserts {
		sec := u.secret
		sec.UpdatedAt = now
		changed[sec.ID] = sec
		c.state.See(sec.ID, sec.Revision)
	}
	out := nl.secrets[:0:0]
	for _, sec := range nl.secrets {
		if deleted[sec.ID] {
			continue
		}
		if n, ok := changed[sec.ID]; ok {
			sec = n
			delete(changed, sec.ID)
		}
		out = append(out, sec)
	}
	for _, sec := range changed {
		out = append(out, sec)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	nl.secrets = out
	if p.meta != nil {
		v.Revision = p.meta.revision
		c.state.See(v.ID, p.meta.revision)
	}
	return nl, nil
}

func orEmpty(m []map[string]any) []map[string]any {
	if m == nil {
		return []map[string]any{}
	}
	return m
}

// commitSecrets reads v's verified listing, makes a plan from it and
// applies it; when somebody else wrote meanwhile it reads again and makes
// the plan anew (a few times at most). Only owners, admins and editors
// write.
func (c *Client) commitSecrets(ctx context.Context, v *Vault, plan func(*listing) (*secretsPlan, error)) (*listing, error) {
	if !canWrite(v.Role) {
		return nil, forbidden(*v, "write to it")
	}
	for attempt := 0; attempt < maxAttempts; attempt++ {
		l, err := c.listing(ctx, v, true)
		if err != nil {
			return nil, err
		}
		p, err := plan(l)
		if err != nil {
			return nil, err
		}
		if len(p.upserts) == 0 && len(p.deletes) == 0 && p.meta == nil {
			return l, nil // nothing to write
		}
		nl, err := c.apply(ctx, v, l, p)
		if isConflict(err) {
			if err := backoff(ctx, attempt); err != nil {
				return nil, err
			}
			continue
		}
		return nl, err
	}
	return nil, fmt.Errorf("vault %q: %w", v.Name, ErrConflict)
}

// backoff waits a little, randomly, before the next attempt of a write
// that lost a race, so that writers who collided do not collide again.
func backoff(ctx context.Context, attempt int) error {
	d := time.Duration(1+mrand.IntN(20*(attempt+1))) * time.Millisecond
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

// adopt gives a vault of this account's from before membership logs its
// log (the create entry, committing to its key as generation 1) and its
// first manifest (over the secrets it has now, each checked as before:
// sealed under its key for its own id and revision, no older than this
// device saw), in one transaction. The version 1 grant stays. If another of
// this account's devices adopted it meanwhile, the vault is opened again.
func (c *Client) adopt(ctx context.Context, v *Vault) error {
	s := c.Session()
	me := s.UserID
	rows, err := c.secretRows(ctx, *v)
	if err != nil {
		return err
	}
	items := make([]manifest.Item, 0, len(rows))
	for _, r := range rows {
		if r.KeyGeneration != 1 {
			return tamper(fmt.Sprintf("vault %q: a secret of key generation %d in a vault that has only one", v.Name, r.KeyGeneration), nil)
		}
		sec, err := c.openSecret(*v, r.ID, r)
		if err != nil {
			return err
		}
		if err := c.checkFresh(sec); err != nil {
			return err
		}
		items = append(items, manifest.Item{ID: r.ID, Revision: r.Revision, Generation: 1})
	}
	_, key := v.st.newest()
	commit, err := grant.KeyCommitment(key, v.ID, 1)
	if err != nil {
		return err
	}
	selfFP, err := c.ownFP()
	if err != nil {
		return err
	}
	log, err := memberlog.New(v.ID, c.ownIdentity())
	if err != nil {
		return err
	}
	entry, err := memberlog.Sign(log.Next(memberlog.OpCreate, me, "owner", selfFP, commit, me, c.Now()), s.Keys.Ed25519)
	if err != nil {
		return err
	}
	if err := log.Apply(entry); err != nil {
		return err
	}
	m, err := manifest.Next(nil, log, v.Revision, items)
	if err != nil {
		return err
	}
	man, err := manifest.Sign(m, me, s.Keys.Ed25519)
	if err != nil {
		return err
	}
	e, sig := entry.Row()
	err = c.rest(ctx, "POST", "/rpc/commit_members", map[string]any{
		"vault_id": v.ID, "log_entries": []map[string]any{{"seq": 1, "entry": e, "signature": sig}},
		"manifest": manifestBody(man),
	}, nil)
	if isConflict(err) {
		return c.reopen(ctx, v)
	}
	if err != nil {
		return roleErr(err)
	}
	v.st.mu.Lock()
	v.st.legacy, v.st.rows, v.st.ids, v.st.log, v.st.man = false, []memberlog.Signed{entry}, []trust.Identity{c.ownIdentity()}, log, &man
	v.st.people = map[uuid.UUID][]PublicKeys{me: {c.ownKeys()}}
	v.st.mu.Unlock()
	c.state.SetLogHead(v.ID, log.Head())
	c.state.SetManifestSeen(v.ID, man.Seen())
	return nil
}
