package spec

import (
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/hpke"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/google/uuid"

	"zsm.dev/zsm/sdk/machinetoken"
	"zsm.dev/zsm/srpgroup"
)

// Verifier of token.json. Every value is computed twice: by the
// construction written out here (HKDF, SHA-256, HMAC and Ed25519 from the
// standard library) and by sdk/machinetoken, and both are compared with the
// vector.

// tokenFromParts builds a token through the implementation's parser from
// parts, so that the derive, anchor and record groups can run
// machinetoken on them.
func tokenFromParts(t *testing.T, id string, secret []byte) machinetoken.Token {
	tok, err := machinetoken.Parse(tokenText(uuid.MustParse(id), secret))
	if err != nil {
		t.Fatalf("token %s: %v", id, err)
	}
	return tok
}

func verifyMachineToken(t *testing.T, data []byte) {
	f := load(t, data, func(g TokenGroup) int { return len(g.Tests) })
	for _, g := range f.TestGroups {
		for _, tc := range g.Tests {
			check(t, tc.Case, tc.Outcome, func() (string, error) {
				switch g.Type {
				case "parse":
					return verifyTokenParse(tc)
				case "derive":
					return verifyTokenDerive(t, tc)
				case "record":
					return verifyTokenRecord(tc)
				case "anchor":
					return verifyTokenAnchor(t, tc)
				case "login":
					return verifyTokenLogin(tc)
				case "identity":
					return verifyTokenIdentity(tc)
				}
				t.Fatalf("unknown group type %q", g.Type)
				return "", nil
			})
		}
	}
}

// tokenParseHere is the parser written from the header: the "malformed"
// class for everything that is not exactly a token.
func tokenParseHere(text string) (uuid.UUID, []byte, []byte, bool) {
	text = strings.Trim(text, " \t\r\n")
	body, ok := strings.CutPrefix(text, "zsm_tok_v1_")
	if !ok || len(body) != 70 {
		return uuid.UUID{}, nil, nil, false
	}
	raw, err := base64.RawURLEncoding.Strict().DecodeString(body)
	if err != nil || len(raw) != 52 {
		return uuid.UUID{}, nil, nil, false
	}
	id := uuid.UUID(raw[:16])
	sum := sha256.Sum256(slices.Concat([]byte("zsm v1 token-check\x00"), raw[:48]))
	if !hmac.Equal(sum[:4], raw[48:]) || id[6]>>4 != 4 || id[8]>>6 != 2 {
		return uuid.UUID{}, nil, nil, false
	}
	return id, raw[16:48], raw[48:], true
}

func verifyTokenParse(tc TokenTest) (string, error) {
	id, secret, c, ok := tokenParseHere(tc.Text)
	tok, err := machinetoken.Parse(tc.Text)
	switch {
	case err != nil && ok:
		return "other", errors.New("the implementation refuses a token the construction accepts")
	case err == nil && !ok:
		return "other", errors.New("the implementation accepts a token the construction refuses")
	case err != nil:
		if !errors.Is(err, machinetoken.ErrMalformed) {
			return "other", err
		}
		return "malformed", err
	}
	return "", errors.Join(eq([]byte(id.String()), []byte(tc.TokenID)), eq([]byte(tok.ID().String()), []byte(tc.TokenID)),
		eq(secret, tc.Secret), eq(c, tc.Check), eq([]byte(tok.Reveal()), []byte(strings.Trim(tc.Text, " \t\r\n"))))
}

func verifyTokenDerive(t *testing.T, tc TokenTest) (string, error) {
	id := uuid.MustParse(tc.TokenID)
	k, err := machinetoken.Derive(tokenFromParts(t, tc.TokenID, tc.Secret))
	if err != nil {
		return "other", err
	}
	var errs []error
	for _, c := range []struct {
		info, want string
		got        []byte
	}{
		{tc.InfoEd25519, machinetoken.InfoEd25519, tc.Ed25519Seed},
		{tc.InfoX25519, machinetoken.InfoX25519, tc.X25519Private},
		{tc.InfoXWing, machinetoken.InfoXWing, tc.XWingSeed},
		{tc.InfoCache, machinetoken.InfoCache, tc.CacheKey},
		{tc.InfoAnchor, machinetoken.InfoAnchor, tc.AnchorKey},
	} {
		errs = append(errs, eq([]byte(c.info), []byte(c.want)), eq(tokenHKDF(t, id, tc.Secret, c.info), c.got))
	}
	x, err := ecdh.X25519().NewPrivateKey(tc.X25519Private)
	if err != nil {
		return "other", err
	}
	xw, err := hpke.MLKEM768X25519().NewPrivateKey(tc.XWingSeed)
	if err != nil {
		return "other", err
	}
	errs = append(errs,
		eq(ed25519.NewKeyFromSeed(tc.Ed25519Seed).Public().(ed25519.PublicKey), tc.Ed25519Public), eq(k.Ed25519.Seed(), tc.Ed25519Seed),
		eq(x.PublicKey().Bytes(), tc.X25519Public), eq(k.X25519.PublicKey().Bytes(), tc.X25519Public),
		eq(xw.PublicKey().Bytes(), tc.XWingPublic), eq(k.XWing.PublicKey().Bytes(), tc.XWingPublic),
		eq(k.CacheKey(), tc.CacheKey))
	return "", errors.Join(errs...)
}

func verifyTokenRecord(tc TokenTest) (string, error) {
	dec := func(s string) []byte { b, _ := base64.StdEncoding.Strict().DecodeString(s); return b }
	id := uuid.MustParse(tc.TokenID)
	p := machinetoken.Public{TokenID: id, X25519: dec(tc.X25519B64), Ed25519: dec(tc.Ed25519B64), XWing: dec(tc.XWingB64)}
	identity := "token:" + tc.TokenID
	m := slices.Concat([]byte("zsm v2 key-record\x00"), id[:], []byte{byte(len(identity))}, []byte(identity), p.X25519, p.Ed25519, p.XWing)
	if err := machinetoken.VerifyRecord(p, tc.Signature); err != nil {
		if !errors.Is(err, machinetoken.ErrBadRecord) {
			return "other", err
		}
		return "bad_signature", err
	}
	sig, err := base64.StdEncoding.Strict().DecodeString(tc.Signature)
	if err != nil || !ed25519.Verify(p.Ed25519, m, sig) {
		return "other", errors.New("the implementation verifies what the construction does not")
	}
	got, _ := p.RecordMessage()
	errs := []error{eq([]byte(identity), []byte(tc.Identity)), eq(m, tc.Message), eq(got, tc.Message)}
	if tc.Ed25519Seed != nil {
		errs = append(errs, eq(ed25519.Sign(ed25519.NewKeyFromSeed(tc.Ed25519Seed), m), sig))
	}
	return "", errors.Join(errs...)
}

func verifyTokenAnchor(t *testing.T, tc TokenTest) (string, error) {
	id, creator := uuid.MustParse(tc.TokenID), uuid.MustParse(tc.CreatorID)
	k, err := machinetoken.Derive(tokenFromParts(t, tc.TokenID, tc.Secret))
	if err != nil {
		return "other", err
	}
	m := slices.Concat([]byte("zsm v1 token-anchor\x00"), id[:], creator[:], tc.CreatorEd25519)
	mac := hmac.New(sha256.New, tokenHKDF(t, id, tc.Secret, machinetoken.InfoAnchor))
	mac.Write(m)
	here := hmac.Equal(mac.Sum(nil), tc.Anchor)
	if err := k.CheckAnchor(creator, tc.CreatorEd25519, tc.Anchor); err != nil {
		if here {
			return "other", errors.New("the implementation refuses an anchor the construction accepts")
		}
		if !errors.Is(err, machinetoken.ErrBadAnchor) {
			return "other", err
		}
		return "bad_anchor", err
	}
	if !here {
		return "other", errors.New("the implementation accepts an anchor the construction refuses")
	}
	got, _ := machinetoken.AnchorMessage(id, creator, tc.CreatorEd25519)
	return "", errors.Join(eq(m, tc.Message), eq(got, tc.Message))
}

func verifyTokenLogin(tc TokenTest) (string, error) {
	id := uuid.MustParse(tc.TokenID)
	here := false
	var m []byte
	if len(tc.Nonce) == 32 && len(tc.Audience) >= 1 && len(tc.Audience) <= 255 {
		m = slices.Concat([]byte("zsm v1 machine-login\x00"), id[:], tc.Nonce, []byte{byte(len(tc.Audience))}, []byte(tc.Audience))
		here = ed25519.Verify(ed25519.PublicKey(tc.Ed25519Public), m, tc.SignatureHex)
	}
	ok := machinetoken.VerifyLogin(id, tc.Ed25519Public, tc.Nonce, tc.Audience, tc.SignatureHex)
	switch {
	case ok != here:
		return "other", errors.New("the implementation and the construction disagree")
	case !ok:
		return "bad_signature", errors.New("the login signature does not verify")
	}
	got, _ := machinetoken.LoginMessage(id, tc.Nonce, tc.Audience)
	errs := []error{eq(m, tc.Message), eq(got, tc.Message)}
	if tc.Ed25519Seed != nil {
		errs = append(errs, eq(ed25519.Sign(ed25519.NewKeyFromSeed(tc.Ed25519Seed), m), tc.SignatureHex))
	}
	return "", errors.Join(errs...)
}

func verifyTokenIdentity(tc TokenTest) (string, error) {
	n, err := srpgroup.NormalizeIdentity(tc.Identity)
	if err != nil {
		return "other", err
	}
	if n != tc.Normal {
		return "other", errors.New("the normal form differs")
	}
	err = srpgroup.CheckNewIdentity(n)
	here := strings.HasPrefix(n, "token:")
	switch {
	case errors.Is(err, srpgroup.ErrReserved) && here:
		return "reserved", err
	case err != nil || here:
		return "other", errors.New("the implementation and the construction disagree")
	}
	return "", nil
}
