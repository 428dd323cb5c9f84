package spec

import (
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/base64"
	"slices"
	"strings"
	"testing"

	"github.com/google/uuid"

	"zsm.dev/zsm/sdk/machinetoken"
	"zsm.dev/zsm/srpgroup"
)

// Generator of token.json (docs/crypto.md §13).

// tokenParts reads a token's id, secret and check from its text form
// without the implementation.
func tokenParts(text string) (uuid.UUID, []byte, []byte) {
	raw, _ := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(text, machinetoken.Prefix))
	return uuid.UUID(raw[:16]), raw[16:48], raw[48:52]
}

// tokenText builds a text form from parts, with the check computed here.
func tokenText(id uuid.UUID, secret []byte) string {
	sum := sha256.Sum256(slices.Concat([]byte("zsm v1 token-check\x00"), id[:], secret))
	return machinetoken.Prefix + base64.RawURLEncoding.EncodeToString(slices.Concat(id[:], secret, sum[:4]))
}

func tokenHKDF(t *testing.T, id uuid.UUID, secret []byte, info string) []byte {
	return must[[]byte](t)(hkdf.Key(sha256.New, secret, id[:], info, 32))
}

func genMachineToken(t *testing.T) []byte {
	r := seeded("machine-token")
	next := counter()
	b64 := base64.StdEncoding.EncodeToString
	var groups []TokenGroup
	valid := Outcome{Result: "valid"}
	bad := func(class string) Outcome { return Outcome{"invalid", class} }
	flag := func(f string) []string {
		if f == "" {
			return []string{}
		}
		return []string{f}
	}

	// parse
	parse := TokenGroup{Type: "parse"}
	var toks []machinetoken.Token
	for range 3 {
		tok := must[machinetoken.Token](t)(machinetoken.New(r))
		toks = append(toks, tok)
		id, secret, check := tokenParts(tok.Reveal())
		if tokenText(id, secret) != tok.Reveal() {
			t.Fatal("token text differs from the construction")
		}
		parse.Tests = append(parse.Tests, TokenTest{Case: Case{next(), "a token", flag("")}, Text: tok.Reveal(),
			TokenID: id.String(), Secret: secret, Check: check, Outcome: valid})
	}
	tok := toks[0]
	text := tok.Reveal()
	id, secret, check := tokenParts(text)
	parse.Tests = append(parse.Tests, TokenTest{Case: Case{next(), "surrounded by a space and a line break, which are ignored", flag("")},
		Text: " " + text + "\n", TokenID: id.String(), Secret: secret, Check: check, Outcome: valid})
	flip := func(i int) string {
		b := []byte(text)
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
		return string(b)
	}
	notV4 := id
	notV4[6] = notV4[6]&0x0f | 0x70
	nilVariant := id
	nilVariant[8] &= 0x3f
	for _, c := range []struct{ comment, text, flag string }{
		{"one character of the id changed", flip(len(machinetoken.Prefix) + 3), "Typo"},
		{"one character of the secret changed", flip(len(machinetoken.Prefix) + 40), "Typo"},
		{"one character of the check changed", flip(len(text) - 2), "Typo"},
		{"the last character cut off", text[:len(text)-1], "Length"},
		{"one character too many", text + "A", "Length"},
		{"padded base64url", text + "==", "Encoding"},
		{"standard base64 alphabet where base64url has - and _", machinetoken.Prefix + strings.NewReplacer("-", "+", "_", "/").Replace(strings.TrimPrefix(tokenText(uuid.MustParse("fb7f3e5c-2a9b-4c1d-8e0f-1a2b3c4d5e6f"), []byte(strings.Repeat("\xfb\xff", 16))), machinetoken.Prefix)), "Encoding"},
		{"another prefix (version 2)", "zsm_tok_v2_" + strings.TrimPrefix(text, machinetoken.Prefix), "Prefix"},
		{"upper-case prefix", strings.ToUpper(machinetoken.Prefix) + strings.TrimPrefix(text, machinetoken.Prefix), "Prefix"},
		{"no prefix", strings.TrimPrefix(text, machinetoken.Prefix), "Prefix"},
		{"a valid check over an id that is not a version 4 uuid", tokenText(notV4, secret), "NotV4"},
		{"a valid check over an id whose variant is not RFC 9562's", tokenText(nilVariant, secret), "NotV4"},
		{"empty", "", "Length"},
	} {
		parse.Tests = append(parse.Tests, TokenTest{Case: Case{next(), c.comment, flag(c.flag)}, Text: c.text, Outcome: bad("malformed")})
	}
	groups = append(groups, parse)

	// derive
	derive := TokenGroup{Type: "derive"}
	for i, tk := range toks[:2] {
		k := must[*machinetoken.Keys](t)(machinetoken.Derive(tk))
		id, secret, _ := tokenParts(tk.Reveal())
		seed := tokenHKDF(t, id, secret, machinetoken.InfoEd25519)
		if !k.Ed25519.Equal(ed25519.NewKeyFromSeed(seed)) {
			t.Fatal("Ed25519 key differs from the construction")
		}
		tc := TokenTest{Case: Case{next(), []string{"first token", "second token"}[i], flag("")}, TokenID: id.String(), Secret: secret,
			InfoEd25519: machinetoken.InfoEd25519, InfoX25519: machinetoken.InfoX25519, InfoXWing: machinetoken.InfoXWing,
			InfoCache: machinetoken.InfoCache, InfoAnchor: machinetoken.InfoAnchor,
			Ed25519Seed: seed, Ed25519Public: Hex(k.Ed25519.Public().(ed25519.PublicKey)),
			X25519Private: tokenHKDF(t, id, secret, machinetoken.InfoX25519), X25519Public: k.X25519.PublicKey().Bytes(),
			XWingSeed: tokenHKDF(t, id, secret, machinetoken.InfoXWing), XWingPublic: k.XWing.PublicKey().Bytes(),
			CacheKey: tokenHKDF(t, id, secret, machinetoken.InfoCache), AnchorKey: tokenHKDF(t, id, secret, machinetoken.InfoAnchor),
			Outcome: valid}
		derive.Tests = append(derive.Tests, tc)
	}
	groups = append(groups, derive)

	// record
	record := TokenGroup{Type: "record"}
	k := must[*machinetoken.Keys](t)(machinetoken.Derive(tok))
	other := must[*machinetoken.Keys](t)(machinetoken.Derive(toks[1]))
	p, op := k.Public(), other.Public()
	sig := must[string](t)(k.SignRecord())
	mkRecord := func(comment, fl string, q machinetoken.Public, signature string, o Outcome) {
		tc := TokenTest{Case: Case{next(), comment, flag(fl)}, TokenID: q.TokenID.String(), Identity: machinetoken.Identity(q.TokenID),
			X25519B64: b64(q.X25519), Ed25519B64: b64(q.Ed25519), XWingB64: b64(q.XWing), Signature: signature, Outcome: o}
		if m, err := q.RecordMessage(); err == nil {
			tc.Message = m
		}
		if o.Result == "valid" {
			tc.Ed25519Seed = k.Ed25519.Seed()
		}
		record.Tests = append(record.Tests, tc)
	}
	mkRecord("the token's own record, signed by its Ed25519 key", "", p, sig, valid)
	mkRecord("another token id", "ModifiedField", machinetoken.Public{TokenID: op.TokenID, X25519: p.X25519, Ed25519: p.Ed25519, XWing: p.XWing}, sig, bad("bad_signature"))
	mkRecord("another X25519 key", "ModifiedField", machinetoken.Public{TokenID: p.TokenID, X25519: op.X25519, Ed25519: p.Ed25519, XWing: p.XWing}, sig, bad("bad_signature"))
	mkRecord("another X-Wing key", "ModifiedField", machinetoken.Public{TokenID: p.TokenID, X25519: p.X25519, Ed25519: p.Ed25519, XWing: op.XWing}, sig, bad("bad_signature"))
	mkRecord("another Ed25519 key (verified under it)", "WrongKey", machinetoken.Public{TokenID: p.TokenID, X25519: p.X25519, Ed25519: op.Ed25519, XWing: p.XWing}, sig, bad("bad_signature"))
	raw := must[[]byte](t)(base64.StdEncoding.DecodeString(sig))
	flipped := slices.Clone(raw)
	flipped[10] ^= 1
	mkRecord("signature changed", "ModifiedSignature", p, b64(flipped), bad("bad_signature"))
	mkRecord("signature without base64 padding", "ModifiedSignature", p, base64.RawStdEncoding.EncodeToString(raw), bad("bad_signature"))
	// The same keys signed as a version 1 record would be: another label.
	v1 := slices.Concat([]byte("zsm v1 key-record\x00"), p.TokenID[:], []byte{byte(len(machinetoken.Identity(p.TokenID)))},
		[]byte(machinetoken.Identity(p.TokenID)), p.X25519, p.Ed25519)
	mkRecord("a version 1 record's signature by the same key", "ModifiedSignature", p, b64(ed25519.Sign(k.Ed25519, v1)), bad("bad_signature"))
	groups = append(groups, record)

	// anchor
	anchor := TokenGroup{Type: "anchor"}
	creator := newUUID(r)
	cpub := ed25519.NewKeyFromSeed(read(r, 32)).Public().(ed25519.PublicKey)
	opub := ed25519.NewKeyFromSeed(read(r, 32)).Public().(ed25519.PublicKey)
	mac := must[[]byte](t)(k.Anchor(creator, cpub))
	id, secret, _ = tokenParts(text)
	mkAnchor := func(comment, fl string, tid uuid.UUID, sec []byte, c uuid.UUID, pub, a []byte, o Outcome) {
		tc := TokenTest{Case: Case{next(), comment, flag(fl)}, TokenID: tid.String(), Secret: sec, CreatorID: c.String(),
			CreatorEd25519: pub, Anchor: a, Outcome: o}
		if m, err := machinetoken.AnchorMessage(tid, c, pub); err == nil {
			tc.Message = m
		}
		anchor.Tests = append(anchor.Tests, tc)
	}
	mkAnchor("the creator's anchor", "", id, secret, creator, cpub, mac, valid)
	mkAnchor("another creator user id", "ModifiedField", id, secret, newUUID(r), cpub, mac, bad("bad_anchor"))
	mkAnchor("another creator key", "ModifiedField", id, secret, creator, opub, mac, bad("bad_anchor"))
	oid, osecret, _ := tokenParts(toks[1].Reveal())
	mkAnchor("checked by another token", "WrongKey", oid, osecret, creator, cpub, mac, bad("bad_anchor"))
	short := slices.Clone(mac[:31])
	mkAnchor("a 31-byte anchor", "ModifiedField", id, secret, creator, cpub, short, bad("bad_anchor"))
	groups = append(groups, anchor)

	// login
	login := TokenGroup{Type: "login"}
	nonce := read(r, 32)
	lsig := must[[]byte](t)(k.SignLogin(nonce, "zsm-api"))
	mkLogin := func(comment, fl, tid string, pub, n []byte, aud string, s []byte, o Outcome) {
		tc := TokenTest{Case: Case{next(), comment, flag(fl)}, TokenID: tid, Ed25519Public: pub, Nonce: n, Audience: aud, SignatureHex: s, Outcome: o}
		if u, err := uuid.Parse(tid); err == nil {
			if m, err := machinetoken.LoginMessage(u, n, aud); err == nil {
				tc.Message = m
			}
		}
		if o.Result == "valid" {
			tc.Ed25519Seed = k.Ed25519.Seed()
		}
		login.Tests = append(login.Tests, tc)
	}
	mkLogin("a login signature", "", k.TokenID.String(), p.Ed25519, nonce, "zsm-api", lsig, valid)
	aud255 := strings.Repeat("a", 255)
	mkLogin("an audience of 255 bytes", "", k.TokenID.String(), p.Ed25519, nonce, aud255, must[[]byte](t)(k.SignLogin(nonce, aud255)), valid)
	mkLogin("another audience", "Replay", k.TokenID.String(), p.Ed25519, nonce, "zsm-api-2", lsig, bad("bad_signature"))
	n2 := slices.Clone(nonce)
	n2[31] ^= 1
	mkLogin("another nonce", "Replay", k.TokenID.String(), p.Ed25519, n2, "zsm-api", lsig, bad("bad_signature"))
	mkLogin("another token id", "Replay", other.TokenID.String(), p.Ed25519, nonce, "zsm-api", lsig, bad("bad_signature"))
	mkLogin("another token's key", "WrongKey", k.TokenID.String(), op.Ed25519, nonce, "zsm-api", lsig, bad("bad_signature"))
	mkLogin("a nonce of 31 bytes", "Unencodable", k.TokenID.String(), p.Ed25519, nonce[:31], "zsm-api", lsig, bad("bad_signature"))
	mkLogin("an audience of 256 bytes", "Unencodable", k.TokenID.String(), p.Ed25519, nonce, aud255+"a", lsig, bad("bad_signature"))
	groups = append(groups, login)

	// identity: the form no person may register.
	ident := TokenGroup{Type: "identity"}
	for _, c := range []struct{ comment, identity, flag string }{
		{"the identity of a token's key record", machinetoken.Identity(k.TokenID), "Reserved"},
		{"the same in capitals: the normal form is reserved", strings.ToUpper(machinetoken.Identity(k.TokenID)), "Reserved"},
		{"fullwidth t (U+FF54), which NFKC makes t", "\uff54oken:build@example.test", "Reserved"},
		{"the prefix alone", "token:", "Reserved"},
		{"tokens: is not the prefix", "tokens:build", ""},
		{"token: inside an identity", "my-token:build@example.test", ""},
		{"token@ is not the prefix", "token@example.test", ""},
	} {
		n, err := srpgroup.NormalizeIdentity(c.identity)
		if err != nil {
			t.Fatalf("%s: %v", c.identity, err)
		}
		o := valid
		if srpgroup.CheckNewIdentity(n) != nil {
			o = bad("reserved")
		}
		if (c.flag == "Reserved") != (o.Result == "invalid") {
			t.Fatalf("%s: CheckNewIdentity disagrees with the case", c.identity)
		}
		ident.Tests = append(ident.Tests, TokenTest{Case: Case{next(), c.comment, flag(c.flag)}, Identity: c.identity, Normal: n, Outcome: o})
	}
	groups = append(groups, ident)

	return encode(t, File[TokenGroup]{
		Algorithm: "ZSM-V1-MACHINE-TOKEN", Schema: schema, Generator: generatorName, NumberOfTests: next() - 1,
		Header: []string{
			"docs/crypto.md §13. A machine token is \"zsm_tok_v1_\" || base64url-nopad(token_id (16) || secret (32) || check (4)), 81 characters, where check = SHA-256(\"zsm v1 token-check\" || 0x00 || token_id || secret)[0:4] and token_id is a version 4 uuid (RFC 9562 variant). Group parse: valid tests give the parts; every other text is refused as malformed (one class: which part was wrong is never told). Space, tab, CR and LF around the text are ignored.",
			"Group derive: each key is HKDF-SHA256(ikm = secret, salt = token_id (16 bytes), info, L = 32) with the info given: the Ed25519 seed, the X25519 private key (as X25519 takes it; the public key is X25519(it, 9)), the X-Wing seed (crypto/hpke MLKEM768-X25519 NewPrivateKey; xwingPublic is the 1216-byte public key it gives), the offline cache key and the anchor MAC key.",
			"Group record: the token's key record, version 2 of the key record of docs/crypto.md §3 with user_id = token_id and identity = \"token:\" || the token id's canonical text: message = \"zsm v2 key-record\" || 0x00 || token_id || u8(len(identity)) || identity || x25519 (32) || ed25519 (32) || xwing (1216); signature = base64(Ed25519(ed25519Seed, message)), verified under the record's own Ed25519 key. Anything else is bad_signature.",
			"Group anchor: anchor = HMAC-SHA256(anchorKey, \"zsm v1 token-anchor\" || 0x00 || token_id || creator user_id (16) || creator ed25519_public (32)); checked in constant time (bad_anchor otherwise).",
			"Group identity: sign-up refuses every identity whose normal form (docs/auth.md, identity.json) begins with \"token:\", the form of a token's key record, so no person's record can pass for a token's (reserved); normal is the normal form. Other identities follow identity.json's rules.",
			"Group login: signature = Ed25519(token's seed, \"zsm v1 machine-login\" || 0x00 || token_id || nonce (32) || u8(len(audience)) || audience), audience 1-255 bytes. A signature for another nonce, audience, token id or key, or over a nonce or audience out of bounds, is bad_signature.",
		},
		Notes: map[string]Note{
			"Typo":              {"EDGE_CASE", "a mistyped token: the check catches it before any request"},
			"Length":            {"EDGE_CASE", "a token of the wrong length"},
			"Encoding":          {"EDGE_CASE", "a second spelling of the same bytes, or another alphabet"},
			"Prefix":            {"EDGE_CASE", "a wrong or missing prefix"},
			"NotV4":             {"EDGE_CASE", "a token id that is not a random (version 4) uuid"},
			"ModifiedField":     {"AUTH_BYPASS", "one input changed after signing or MACing"},
			"ModifiedSignature": {"AUTH_BYPASS", "signature modified, mis-encoded, or made for another message"},
			"WrongKey":          {"AUTH_BYPASS", "checked under another key"},
			"Replay":            {"AUTH_BYPASS", "a login signature presented for another challenge, audience or token"},
			"Unencodable":       {"EDGE_CASE", "a message that cannot be built"},
			"Reserved":          {"AUTH_BYPASS", "a person registering the identity form of a machine token"},
		},
		TestGroups: groups,
	})
}
