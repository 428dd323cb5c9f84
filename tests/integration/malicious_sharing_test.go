package integration

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"zsm.dev/zsm/sdk/grant"
	"zsm.dev/zsm/sdk/keyrecord"
	"zsm.dev/zsm/sdk/keys"
	"zsm.dev/zsm/sdk/manifest"
	"zsm.dev/zsm/sdk/memberlog"
	"zsm.dev/zsm/sdk/trust"
	"zsm.dev/zsm/sdk/zsm"
)

// member is an account whose every request goes through a tampering
// proxy of its own, so a test can lie to one member and not the others.
type member struct {
	*account
	evil *evilServer
}

func newMember(t *testing.T) *member {
	t.Helper()
	evil := newEvilServer(t)
	return &member{account: newAccount(t, evil), evil: evil}
}

func (m *member) ID() uuid.UUID { return m.client.Session().UserID }

func (m *member) ident() trust.Identity {
	s := m.client.Session()
	return trust.Identity{UserID: s.UserID, Identity: s.Identity, Ed25519Public: s.Keys.Ed25519.Public().(ed25519.PublicKey)}
}

// pin makes m pin other's keys as verified (after comparing safety numbers).
func (m *member) pin(t *testing.T, other *member) {
	t.Helper()
	ctx := context.Background()
	chk, err := m.client.CheckIdentity(ctx, other.Identity)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.client.ConfirmIdentity(ctx, chk, trust.Verified); err != nil {
		t.Fatal(err)
	}
}

func (m *member) vault(t *testing.T, name string) zsm.Vault {
	t.Helper()
	v, err := m.client.VaultByName(context.Background(), name)
	if err != nil {
		t.Fatalf("%s opens %s: %v", m.Identity, name, err)
	}
	return v
}

// refusedVault lists m's vaults and returns why vault was refused.
func (m *member) refusedVault(t *testing.T, vault uuid.UUID) error {
	t.Helper()
	l, err := m.client.ListVaults(context.Background())
	if err != nil {
		t.Fatalf("the listing itself failed: %v", err)
	}
	for _, r := range l.Refused {
		if r.ID == vault {
			return r.Err
		}
	}
	for _, v := range l.Vaults {
		if v.ID == vault {
			t.Fatalf("%s opened the vault", m.Identity)
		}
	}
	t.Fatalf("the vault is neither opened nor refused: invitations %+v", l.Invitations)
	return nil
}

// capture records the next answer to a path prefix, passing it through.
type capture struct {
	mu   sync.Mutex
	body []byte
}

func (c *capture) rewrite(prefix string) func(string, []byte) []byte {
	return func(path string, body []byte) []byte {
		if strings.HasPrefix(path, prefix) {
			c.mu.Lock()
			c.body = append([]byte(nil), body...)
			c.mu.Unlock()
		}
		return body
	}
}

func (c *capture) get(t *testing.T) []byte {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.body == nil {
		t.Fatal("nothing was captured")
	}
	return c.body
}

// replay answers a path prefix with body.
func replay(prefix string, body []byte) func(string, []byte) []byte {
	return func(path string, b []byte) []byte {
		if strings.HasPrefix(path, prefix) {
			return body
		}
		return b
	}
}

// vaultRow edits the vault_states row of vault.
func vaultRow(vault uuid.UUID, edit func(map[string]any)) func(string, []byte) []byte {
	return states(func(rs []map[string]any) []map[string]any {
		for _, r := range rs {
			if r["id"] == vault.String() {
				edit(r)
			}
		}
		return rs
	})
}

// shared sets up the vault "team" of a, shared with b (editor) and c
// (viewer), everyone having verified everyone, and one secret.
func shared(t *testing.T) (a, b, c *member, v zsm.Vault) {
	t.Helper()
	ctx := context.Background()
	a, b, c = newMember(t), newMember(t), newMember(t)
	for _, x := range []*member{a, b, c} {
		for _, y := range []*member{a, b, c} {
			if x != y {
				x.pin(t, y)
			}
		}
	}
	v, err := a.client.CreateVault(ctx, "team")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.client.SetSecret(ctx, v, "API_KEY", "v1"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.client.Share(ctx, v, b.Identity, "editor", false); err != nil {
		t.Fatal(err)
	}
	if _, err := a.client.Share(ctx, v, c.Identity, "viewer", false); err != nil {
		t.Fatal(err)
	}
	return a, b, c, a.vault(t, "team")
}

func expectIs(t *testing.T, err error, what string, wants ...error) {
	t.Helper()
	for _, w := range wants {
		if !errors.Is(err, w) {
			t.Fatalf("%s: %v; want %v", what, err, w)
		}
	}
}

// The malicious-server cases of issue 11: a server that lies about keys,
// members or contents of a shared vault is caught by the client.
func TestMaliciousServerAndSharing(t *testing.T) {
	ctx := context.Background()
	a, b, c, v := shared(t)
	if err := b.client.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	b.vault(t, "team")
	c.vault(t, "team")

	t.Run("substitute the public key of the member being added", func(t *testing.T) {
		// The server makes up an account of its own under d's identity,
		// with keys it holds and a key record that verifies (it signed it
		// with those keys).
		d := newMember(t)
		fake, err := keys.NewAccountKeys(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		if err := fake.AddXWing(rand.Reader); err != nil {
			t.Fatal(err)
		}
		fakeID := uuid.New()
		rec := keyrecord.Record{UserID: fakeID, Identity: d.Identity, X25519: fake.X25519.PublicKey().Bytes(),
			Ed25519: fake.Ed25519.Public().(ed25519.PublicKey), XWing: fake.XWing.PublicKey().Bytes()}
		sig, err := keyrecord.Sign(rec, fake.Ed25519)
		if err != nil {
			t.Fatal(err)
		}
		b64 := base64.StdEncoding.EncodeToString
		a.evil.set(rows("/rest/rpc/lookup_identity", func(rs []map[string]any) []map[string]any {
			for _, r := range rs {
				r["user_id"], r["x25519_public"], r["ed25519_public"] = fakeID.String(), b64(rec.X25519), b64(rec.Ed25519)
				r["xwing_public"], r["key_record_version"], r["key_record_signature"] = b64(rec.XWing), 2, sig
			}
			return rs
		}))
		defer a.evil.set(nil)
		// Not pinned: refused unless the user compares safety numbers, and
		// the number shown is not the one d reads out.
		_, err = a.client.Share(ctx, v, d.Identity, "viewer", false)
		expectIs(t, err, "share with a substituted, unverified key", zsm.ErrNotVerified)
		chk, err := a.client.CheckIdentity(ctx, d.Identity)
		if err != nil {
			t.Fatal(err)
		}
		own, _ := d.client.OwnFingerprint()
		if chk.Fingerprint.SafetyNumber == own.SafetyNumber {
			t.Fatal("the substituted key shows d's own safety number")
		}
		// Pinned (a compared d's real safety number earlier): refused as a
		// changed key, whatever the record says.
		a.evil.set(nil)
		a.pin(t, d)
		a.evil.set(rows("/rest/rpc/lookup_identity", func(rs []map[string]any) []map[string]any {
			for _, r := range rs {
				r["user_id"], r["x25519_public"], r["ed25519_public"] = fakeID.String(), b64(rec.X25519), b64(rec.Ed25519)
				r["xwing_public"], r["key_record_version"], r["key_record_signature"] = b64(rec.XWing), 2, sig
			}
			return rs
		}))
		_, err = a.client.Share(ctx, v, d.Identity, "viewer", true)
		expectIs(t, err, "share with a substituted key of a pinned identity (even asking for trust on first use)", zsm.ErrKeyChanged)
		if ms, err := a.client.Members(ctx, a.vault(t, "team")); err != nil || len(ms) != 3 {
			t.Fatalf("members after the refused shares: %d %v", len(ms), err)
		}
	})

	t.Run("a member row the server wrote", func(t *testing.T) {
		// A grant the server inserts by itself (behind row-level security)
		// for an account it controls: the member list comes from the log,
		// which does not have it, and the account does not open the vault.
		e := newMember(t)
		if _, err := db(t).Exec(ctx, `INSERT INTO api.access_policies (vault_id, user_id, role, sealed_key, granted_by, signature)
			VALUES ($1, $2, 'editor', $3, $4, $5)`, v.ID, e.ID(), base64.StdEncoding.EncodeToString(randBytes(80)), a.ID(),
			base64.StdEncoding.EncodeToString(randBytes(64))); err != nil {
			t.Fatal(err)
		}
		ms, err := c.client.Members(ctx, c.vault(t, "team"))
		if err != nil || len(ms) != 3 {
			t.Fatalf("C's members with the server's row: %d %v", len(ms), err)
		}
		for _, m := range ms {
			if m.UserID == e.ID() {
				t.Fatal("the server's row is listed as a member")
			}
		}
		if l, err := e.client.ListVaults(ctx); err != nil || len(l.Vaults) != 0 {
			t.Fatalf("the server's account opens %v (%v)", l.Vaults, err)
		}
		// A log entry the server wrote, in A's name, adding its account.
		st := replayLog(t, v.ID, a.ident(), b.ident(), c.ident(), e.ident())
		_, serverKey, _ := ed25519.GenerateKey(rand.Reader)
		fp, _ := e.ident().Fingerprint()
		forged, err := memberlog.Sign(st.Next(memberlog.OpAdd, e.ID(), "editor", fp, [32]byte{}, a.ID(), time.Now()), serverKey)
		if err != nil {
			t.Fatal(err)
		}
		entry, fsig := forged.Row()
		c.evil.set(vaultRow(v.ID, func(r map[string]any) {
			r["log"] = append(r["log"].([]any), map[string]any{"seq": forged.Entry.Seq, "entry": entry, "signature": fsig})
		}))
		defer c.evil.set(nil)
		expectIs(t, c.refusedVault(t, v.ID), "a log entry the server signed", zsm.ErrTampered, memberlog.ErrBadSignature)
	})

	t.Run("replay an older log", func(t *testing.T) {
		var old capture
		b.evil.set(old.rewrite("/rest/rpc/vault_states"))
		b.vault(t, "team")
		b.evil.set(nil)
		// A membership change B sees; then the server shows B the log from
		// before it.
		d := newMember(t)
		a.pin(t, d)
		if _, err := a.client.Share(ctx, a.vault(t, "team"), d.Identity, "viewer", false); err != nil {
			t.Fatal(err)
		}
		b.vault(t, "team")
		b.evil.set(replay("/rest/rpc/vault_states", old.get(t)))
		defer b.evil.set(nil)
		expectIs(t, b.refusedVault(t, v.ID), "an older log", zsm.ErrRollback, memberlog.ErrRollback)
	})

	t.Run("replay an older manifest", func(t *testing.T) {
		var oldStates, oldMan capture
		b.evil.set(oldStates.rewrite("/rest/rpc/vault_states"))
		vb := b.vault(t, "team")
		b.evil.set(oldMan.rewrite("/rest/vault_manifests"))
		if _, err := b.client.Secrets(ctx, vb); err != nil {
			t.Fatal(err)
		}
		b.evil.set(nil)
		if _, err := a.client.SetSecret(ctx, a.vault(t, "team"), "API_KEY", "v2"); err != nil {
			t.Fatal(err)
		}
		vb = b.vault(t, "team")
		if got, err := b.client.SecretByName(ctx, vb, "API_KEY"); err != nil || got.Value != "v2" {
			t.Fatalf("B reads the new value: %v %v", got, err)
		}
		// The manifest from before the write, in the listing of vaults…
		b.evil.set(vaultRow(v.ID, func(r map[string]any) {
			var rs []map[string]any
			_ = json.Unmarshal(oldStates.get(t), &rs)
			for _, o := range rs {
				if o["id"] == v.ID.String() {
					r["manifest"] = o["manifest"]
				}
			}
		}))
		expectIs(t, b.refusedVault(t, v.ID), "an older manifest in the vault listing", zsm.ErrRollback, manifest.ErrRollback)
		// …and when reading the secrets.
		b.evil.set(nil)
		vb = b.vault(t, "team")
		b.evil.set(replay("/rest/vault_manifests", oldMan.get(t)))
		defer b.evil.set(nil)
		_, err := b.client.Secrets(ctx, vb)
		expectIs(t, err, "an older manifest when reading", zsm.ErrRollback, manifest.ErrRollback)
	})

	t.Run("hide a secret from a member's listing", func(t *testing.T) {
		if _, err := a.client.SetSecret(ctx, a.vault(t, "team"), "DB_PASSWORD", "hunter2"); err != nil {
			t.Fatal(err)
		}
		vc := c.vault(t, "team")
		c.evil.set(rows("/rest/secrets", func(rs []map[string]any) []map[string]any {
			if len(rs) < 2 {
				return rs
			}
			return rs[1:]
		}))
		defer c.evil.set(nil)
		_, err := c.client.Secrets(ctx, vc)
		expectIs(t, err, "a listing without one secret", zsm.ErrTampered, manifest.ErrListing)
		_, err = c.client.SecretByName(ctx, vc, "API_KEY")
		expectIs(t, err, "a lookup in a listing without one secret", zsm.ErrTampered)
	})

	t.Run("resurrect a deleted secret", func(t *testing.T) {
		var before capture
		vc := c.vault(t, "team")
		c.evil.set(before.rewrite("/rest/secrets"))
		if _, err := c.client.Secrets(ctx, vc); err != nil {
			t.Fatal(err)
		}
		c.evil.set(nil)
		if err := a.client.DeleteSecret(ctx, a.vault(t, "team"), "DB_PASSWORD"); err != nil {
			t.Fatal(err)
		}
		vc = c.vault(t, "team")
		if got, err := c.client.Secrets(ctx, vc); err != nil || len(got) != 1 {
			t.Fatalf("C after the delete: %v %v", got, err)
		}
		var old []map[string]any
		_ = json.Unmarshal(before.get(t), &old)
		c.evil.set(rows("/rest/secrets", func(rs []map[string]any) []map[string]any {
			for _, o := range old {
				if !strings.Contains(string(must(json.Marshal(rs))), o["id"].(string)) {
					rs = append(rs, o)
				}
			}
			// In id order, as the server pages them.
			sort.Slice(rs, func(i, j int) bool { return rs[i]["id"].(string) < rs[j]["id"].(string) })
			return rs
		}))
		defer c.evil.set(nil)
		_, err := c.client.Secrets(ctx, vc)
		expectIs(t, err, "a deleted secret brought back", zsm.ErrTampered, manifest.ErrListing)
	})

	t.Run("show a member a forked log", func(t *testing.T) {
		// A (honest) signed two different entries at the same seq — say two
		// of A's devices raced and the server kept both, showing each member
		// one of them. B saw one; the server now shows B the other.
		d := newMember(t)
		a.pin(t, d)
		if _, err := a.client.Share(ctx, a.vault(t, "team"), d.Identity, "viewer", false); err != nil {
			t.Fatal(err)
		}
		b.vault(t, "team") // B remembers the head, which is the add of d
		ids := []trust.Identity{a.ident(), b.ident(), c.ident(), d.ident()}
		rows := logRows(t, v.ID)
		at := len(rows) - 1
		st, err := memberlog.Replay(v.ID, rows[:at], ids)
		if err != nil {
			t.Fatal(err)
		}
		fp, _ := d.ident().Fingerprint()
		other, err := memberlog.Sign(st.Next(memberlog.OpAdd, d.ID(), "editor", fp, [32]byte{}, a.ID(), time.Now()), a.client.Session().Keys.Ed25519)
		if err != nil {
			t.Fatal(err)
		}
		entry, sig := other.Row()
		b.evil.set(vaultRow(v.ID, func(r map[string]any) {
			log := r["log"].([]any)
			log[at] = map[string]any{"seq": other.Entry.Seq, "entry": entry, "signature": sig}
		}))
		defer b.evil.set(nil)
		expectIs(t, b.refusedVault(t, v.ID), "a forked log", zsm.ErrTampered, memberlog.ErrFork)
	})

	t.Run("seal a vault key the server knows", func(t *testing.T) {
		// The server seals a key of its own to B's X-Wing key, in a grant
		// that even verifies (signed with A's key, as if A's client had been
		// fooled): the log commits to another key.
		evilKey := randBytes(32)
		b.evil.set(vaultRow(v.ID, func(r map[string]any) {
			g := grantOf(r)
			gen := uint64(g["key_generation"].(float64))
			rk, _ := grant.RecipientKey(nil, b.client.Session().Keys.XWing.PublicKey().Bytes())
			sealed, kem, err := grant.SealVaultKeyV2(rk, v.ID, b.ID(), gen, evilKey)
			if err != nil {
				panic(err)
			}
			sig, err := grant.SignV2(grant.GrantV2{VaultID: v.ID, UserID: b.ID(), GrantedBy: a.ID(), Role: g["role"].(string),
				Generation: gen, KEM: kem, SealedKey: sealed}, a.client.Session().Keys.Ed25519)
			if err != nil {
				panic(err)
			}
			g["sealed_key"], g["signature"], g["granted_by"], g["kem_id"] = sealed, sig, a.ID().String(), int(kem)
		}))
		defer b.evil.set(nil)
		expectIs(t, b.refusedVault(t, v.ID), "a vault key the server chose", zsm.ErrTampered, grant.ErrKeyCommitment)
	})

	t.Run("downgrade a hybrid grant to X25519", func(t *testing.T) {
		// The real vault key, sealed to B's X25519 key only (what a
		// recording could give a quantum computer), in a grant signed by A.
		b.evil.set(vaultRow(v.ID, func(r map[string]any) {
			g := grantOf(r)
			gen := uint64(g["key_generation"].(float64))
			key, err := grant.OpenVaultKeyV2(b.client.Session().Keys.XWing, v.ID, b.ID(), gen, g["sealed_key"].(string))
			if err != nil {
				panic(err)
			}
			rk, _ := grant.RecipientKey(b.client.Session().Keys.X25519.PublicKey().Bytes(), nil)
			sealed, kem, err := grant.SealVaultKeyV2(rk, v.ID, b.ID(), gen, key)
			if err != nil || kem != grant.KEMX25519 {
				panic(err)
			}
			sig, err := grant.SignV2(grant.GrantV2{VaultID: v.ID, UserID: b.ID(), GrantedBy: a.ID(), Role: g["role"].(string),
				Generation: gen, KEM: kem, SealedKey: sealed}, a.client.Session().Keys.Ed25519)
			if err != nil {
				panic(err)
			}
			g["sealed_key"], g["signature"], g["granted_by"], g["kem_id"] = sealed, sig, a.ID().String(), int(kem)
		}))
		defer b.evil.set(nil)
		expectIs(t, b.refusedVault(t, v.ID), "an X25519-only grant for a member with a hybrid key", zsm.ErrTampered, grant.ErrDowngrade)
	})

	// With the server honest again, every member opens the vault.
	for _, m := range []*member{a, b, c} {
		m.vault(t, "team")
	}
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

// logRows reads a vault's log as a superuser.
func logRows(t *testing.T, vault uuid.UUID) []memberlog.Signed {
	t.Helper()
	rs, err := db(t).Query(context.Background(), `SELECT entry, signature FROM api.vault_log WHERE vault_id = $1 ORDER BY seq`, vault)
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	var out []memberlog.Signed
	for rs.Next() {
		var e, s string
		_ = rs.Scan(&e, &s)
		r, err := memberlog.ParseRow(e, s)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

func replayLog(t *testing.T, vault uuid.UUID, ids ...trust.Identity) *memberlog.State {
	t.Helper()
	st, err := memberlog.Replay(vault, logRows(t, vault), ids)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// freshDevice logs m in again with nothing remembered, as a new device.
func (m *member) freshDevice(t *testing.T) *zsm.Client {
	t.Helper()
	st := zsm.NewMemState()
	hc := httpFrom(sourceIP())
	sess, err := zsm.Login(context.Background(), hc, m.evil.URL, m.Identity, m.password, m.sk, st)
	if err != nil {
		t.Fatal(err)
	}
	return zsm.New(sess, st, hc)
}

// Members leaving keep the vault open for the others (docs/crypto.md §9,
// §10): a grant signed by an admin who left still opens, a manifest whose
// signer left is still the vault's manifest (its hash is in the leave
// entry), also on a device that never saw it, while a manifest the leaver
// signs afterwards is refused; the owner's next read rotates the key.
func TestLeavesKeepTheVaultOpen(t *testing.T) {
	ctx := context.Background()
	a, d, b, c := newMember(t), newMember(t), newMember(t), newMember(t)
	for _, x := range []*member{a, d, b, c} {
		for _, y := range []*member{a, d, b, c} {
			if x != y {
				x.pin(t, y)
			}
		}
	}
	v, err := a.client.CreateVault(ctx, "leaves")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.client.SetSecret(ctx, v, "A", "from-a"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.client.Share(ctx, v, d.Identity, "admin", false); err != nil {
		t.Fatal(err)
	}
	if _, err := a.client.Share(ctx, a.vault(t, "leaves"), c.Identity, "viewer", false); err != nil {
		t.Fatal(err)
	}
	if _, err := d.client.Share(ctx, d.vault(t, "leaves"), b.Identity, "editor", false); err != nil {
		t.Fatal(err)
	}
	// The admin who added b (and signed b's grant) leaves.
	if err := d.client.Leave(ctx, d.vault(t, "leaves")); err != nil {
		t.Fatal(err)
	}
	vb := b.vault(t, "leaves")
	if _, err := b.client.SetSecret(ctx, vb, "B", "from-b"); err != nil {
		t.Fatalf("b writes after its granter left: %v", err)
	}
	// b, who signed the current manifest, leaves.
	if err := b.client.Leave(ctx, b.vault(t, "leaves")); err != nil {
		t.Fatal(err)
	}
	// A device of c's that never saw b's manifest reads it.
	fresh := c.freshDevice(t)
	fv, err := fresh.VaultByName(ctx, "leaves")
	if err != nil {
		t.Fatalf("a new device of c's after the leaves: %v", err)
	}
	if got, err := fresh.SecretByName(ctx, fv, "B"); err != nil || got.Value != "from-b" {
		t.Fatalf("c reads b's secret: %v %v", got, err)
	}

	// b, gone, signs the next manifest (hiding a secret) with the log head
	// it knew; the server shows it to c.
	var cur manifestRow
	if err := db(t).QueryRow(ctx, `SELECT version, manifest, signature, signer_id FROM api.vault_manifests WHERE vault_id = $1`, v.ID).
		Scan(&cur.Version, &cur.Manifest, &cur.Signature, &cur.SignerID); err != nil {
		t.Fatal(err)
	}
	prev, err := manifest.ParseRow(cur.Manifest, cur.Signature, cur.SignerID)
	if err != nil || prev.Signer != b.ID() {
		t.Fatalf("the current manifest is %v's (%v), want b's", prev.Signer, err)
	}
	m := prev.Manifest
	m.Version, m.Prev = m.Version+1, prev.Hash()
	m.SecretCount, m.ItemsDigest = 1, [32]byte{9}
	forged, err := manifest.Sign(m, b.ID(), b.client.Session().Keys.Ed25519)
	if err != nil {
		t.Fatal(err)
	}
	fm, fs := forged.Row()
	row := map[string]any{"version": m.Version, "manifest": fm, "signature": fs, "signer_id": b.ID().String()}
	c.evil.set(func(path string, body []byte) []byte {
		switch {
		case strings.HasPrefix(path, "/rest/vault_manifests"):
			out, _ := json.Marshal([]any{row})
			return out
		case strings.HasPrefix(path, "/rest/rpc/vault_states"):
			return vaultRow(v.ID, func(r map[string]any) { r["manifest"] = row })(path, body)
		}
		return body
	})
	expectIs(t, c.refusedVault(t, v.ID), "a manifest signed by a member after leaving", zsm.ErrTampered, manifest.ErrStale)
	c.evil.set(nil)

	// The owner's next read rotates the key; everyone agrees again.
	va := a.vault(t, "leaves")
	gen := va.Generation
	if got, err := a.client.SecretByName(ctx, va, "B"); err != nil || got.Value != "from-b" {
		t.Fatalf("the owner reads: %v %v", got, err)
	}
	if va = a.vault(t, "leaves"); va.Generation != gen+1 {
		t.Fatalf("generation %d after the owner's read, want %d", va.Generation, gen+1)
	}
	if got, err := c.client.SecretByName(ctx, c.vault(t, "leaves"), "A"); err != nil || got.Value != "from-a" {
		t.Fatalf("c after the rotation: %v %v", got, err)
	}
	if ms, err := c.client.Members(ctx, c.vault(t, "leaves")); err != nil || len(ms) != 2 {
		t.Fatalf("members after two leaves: %d %v", len(ms), err)
	}
}

// manifestRow is a row of api.vault_manifests.
type manifestRow struct {
	Version   int64
	Manifest  string
	Signature string
	SignerID  uuid.UUID
}
