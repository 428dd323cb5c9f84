package spec

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/hpke"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math/big"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode"

	"github.com/google/uuid"
	"golang.org/x/crypto/argon2"
	"golang.org/x/text/cases"
	"golang.org/x/text/unicode/norm"

	"zsm.dev/zsm/sdk/envelope"
	"zsm.dev/zsm/sdk/grant"
	"zsm.dev/zsm/sdk/keyrecord"
	"zsm.dev/zsm/sdk/keys"
	"zsm.dev/zsm/srpgroup"
)

// TestVectorsVerify reads each committed vector file (through the embedded
// Vectors) and checks every test against the implementation: valid ones
// must produce the recorded bytes, invalid ones must be refused with the
// recorded class. It does not use the generator.
func TestVectorsVerify(t *testing.T) {
	for name, f := range map[string]func(*testing.T, []byte){
		"kdf.json":              verifyKDF,
		"secret_key.json":       verifySecretKey,
		"envelope.json":         verifyEnvelope,
		"bundle.json":           verifyBundle,
		"hpke_vault_key.json":   verifyHPKE,
		"grant.json":            verifyGrant,
		"key_record.json":       verifyKeyRecord,
		"srp_blake2b_3072.json": verifySRP,
		"flow.json":             verifyFlow,
		"fingerprint.json":      verifyFingerprint,
		"pins.json":             verifyPins,
		"vault_log.json":        verifyVaultLog,
		"manifest.json":         verifyManifest,
		"identity.json":         verifyIdentity,
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			data, err := Vectors.ReadFile("vectors/" + name)
			if err != nil {
				t.Fatal(err)
			}
			f(t, data)
		})
	}
}

func load[G any](t *testing.T, data []byte, count func(G) int) File[G] {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var f File[G]
	if err := dec.Decode(&f); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, g := range f.TestGroups {
		n += count(g)
	}
	if f.Schema != schema || n != f.NumberOfTests || n == 0 {
		t.Fatalf("schema %q, %d tests, numberOfTests %d", f.Schema, n, f.NumberOfTests)
	}
	return f
}

// check runs one test and checks its outcome. run returns the class of the
// error it saw ("" for success).
func check(t *testing.T, c Case, o Outcome, run func() (string, error)) {
	t.Helper()
	if o.Result != "valid" && o.Result != "invalid" {
		t.Fatalf("tcId %d: unknown result %q", c.TcID, o.Result)
	}
	class, err := run()
	switch {
	case o.Result == "valid" && err != nil:
		t.Errorf("tcId %d (%s): %v", c.TcID, c.Comment, err)
	case o.Result == "invalid" && err == nil:
		t.Errorf("tcId %d (%s): accepted, want %s", c.TcID, c.Comment, o.Error)
	case o.Result == "invalid" && class != o.Error:
		t.Errorf("tcId %d (%s): refused as %q (%v), want %q", c.TcID, c.Comment, class, err, o.Error)
	}
}

var errMismatch = errors.New("output differs from the vector")

func eq(a, b []byte) error {
	if !bytes.Equal(a, b) {
		return errMismatch
	}
	return nil
}

func toParams(k *KDFParamsJSON) keys.KDFParams {
	return keys.KDFParams{Alg: k.Alg, Salt: k.Salt, MemoryKiB: k.MemoryKiB, Iterations: k.Iterations, Parallelism: k.Parallelism}
}

func verifyKDF(t *testing.T, data []byte) {
	f := load(t, data, func(g KDFGroup) int { return len(g.Tests) })
	for _, g := range f.TestGroups {
		for _, tc := range g.Tests {
			if testing.Short() && slices.Contains(tc.Flags, "Slow") {
				continue
			}
			check(t, tc.Case, tc.Outcome, func() (string, error) {
				switch g.Type {
				case "argon2id":
					return "", eq(argon2.IDKey(tc.Password, tc.Salt, tc.Iterations, tc.MemoryKiB, tc.Parallelism, 32), tc.KPw)
				case "hkdf_split":
					if err := eq(tc.InfoSRP, []byte("zsm v1 srp-secret\x00"+tc.Identity)); err != nil {
						return "", err
					}
					if err := eq(tc.InfoUnlock, []byte("zsm v1 unlock-key\x00"+tc.Identity)); err != nil {
						return "", err
					}
					s, _ := hkdfKey(tc.KPw, tc.SecretKey, tc.InfoSRP)
					u, _ := hkdfKey(tc.KPw, tc.SecretKey, tc.InfoUnlock)
					return "", errors.Join(eq(s, tc.SRPSecret), eq(u, tc.UnlockKey))
				case "derive":
					d, err := keys.Derive(string(tc.Password), keys.SecretKey(tc.SecretKey), tc.Identity, toParams(tc.KDF))
					if err != nil {
						switch {
						case errors.Is(err, keys.ErrWeakKDF):
							return "weak_kdf", err
						case errors.Is(err, keys.ErrBadPassword):
							return "bad_password", err
						case errors.Is(err, keys.ErrBadIdentity):
							return "bad_identity", err
						}
						return "other", err
					}
					return "", errors.Join(eq(d.SRPSecret, tc.SRPSecret), eq(d.UnlockKey, tc.UnlockKey))
				case "params":
					if err := toParams(tc.KDF).Check(); err != nil {
						if errors.Is(err, keys.ErrWeakKDF) {
							return "weak_kdf", err
						}
						return "other", err
					}
					return "", nil
				}
				t.Fatalf("unknown group type %q", g.Type)
				return "", nil
			})
		}
	}
}

func verifySecretKey(t *testing.T, data []byte) {
	f := load(t, data, func(g SecretKeyGroup) int { return len(g.Tests) })
	for _, g := range f.TestGroups {
		for _, tc := range g.Tests {
			check(t, tc.Case, tc.Outcome, func() (string, error) {
				k, err := keys.ParseSecretKey(tc.Text)
				if err != nil {
					return "bad_secret_key", err
				}
				if k.Text() != tc.Canonical {
					return "", errMismatch
				}
				return "", eq(k[:], tc.Key)
			})
		}
	}
}

func envClass(err error) string {
	for class, e := range map[string]error{
		"malformed": envelope.ErrMalformed, "unsupported_version": envelope.ErrUnsupportedVersion,
		"wrong_type": envelope.ErrWrongType, "tampered": envelope.ErrTampered,
	} {
		if errors.Is(err, e) {
			return class
		}
	}
	return "other"
}

func context(t *testing.T, in ADInput) envelope.Context {
	rev, err := strconv.ParseUint(in.Revision, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return envelope.Context{Type: envelope.Type(in.Type), VaultID: uuid.MustParse(in.VaultID), ObjectID: uuid.MustParse(in.ObjectID), Revision: rev}
}

func verifyEnvelope(t *testing.T, data []byte) {
	f := load(t, data, func(g EnvelopeGroup) int { return len(g.Tests) })
	for _, g := range f.TestGroups {
		for _, tc := range g.Tests {
			ctx := context(t, tc.ADInput)
			if !bytes.Equal(ctx.AD(), tc.AD) {
				t.Errorf("tcId %d: AD differs", tc.TcID)
			}
			check(t, tc.Case, tc.Outcome, func() (string, error) {
				if g.Type == "seal" {
					env, err := envelope.Seal(tc.Key, ctx, tc.Plaintext, bytes.NewReader(tc.Nonce))
					if err != nil {
						return envClass(err), err
					}
					if err := eq(env, tc.Envelope); err != nil {
						return "", err
					}
					if err := eq(env[26:58], tc.Commitment); err != nil {
						return "", err
					}
				}
				pt, err := envelope.Open(tc.Key, ctx, tc.Envelope)
				if err != nil {
					return envClass(err), err
				}
				// The text form opens the same way.
				if _, err := envelope.OpenString(tc.Key, ctx, base64.StdEncoding.EncodeToString(tc.Envelope)); err != nil {
					return envClass(err), err
				}
				return "", eq(pt, tc.Plaintext)
			})
		}
	}
}

func bundleClass(err error) string {
	switch {
	case errors.Is(err, keys.ErrMalformedBundle):
		return "malformed"
	case errors.Is(err, keys.ErrUnlock):
		return "unlock"
	case errors.Is(err, keys.ErrTamperedBundle):
		return "tampered"
	}
	return "other"
}

func verifyBundle(t *testing.T, data []byte) {
	f := load(t, data, func(g BundleGroup) int { return len(g.Tests) })
	for _, g := range f.TestGroups {
		for _, tc := range g.Tests {
			check(t, tc.Case, tc.Outcome, func() (string, error) {
				b, err := keys.ParseBundle([]byte(tc.Bundle))
				if err != nil {
					return bundleClass(err), err
				}
				a, err := keys.OpenBundle(b, tc.UnlockKey, uuid.MustParse(tc.UserID))
				if err != nil {
					return bundleClass(err), err
				}
				if err := errors.Join(eq(a.AccountKey, tc.AccountKey), eq(a.X25519.Bytes(), tc.X25519Private),
					eq(a.X25519.PublicKey().Bytes(), tc.X25519Public), eq(a.Ed25519.Seed(), tc.Ed25519Seed),
					eq(a.Ed25519.Public().(ed25519.PublicKey), tc.Ed25519Public)); err != nil {
					return "", err
				}
				if (a.XWing == nil) != (tc.XWingSeed == nil) {
					return "", errMismatch
				}
				if a.XWing == nil {
					return "", nil
				}
				// The seed yields the public key (checked with crypto/hpke
				// directly, not through the bundle code).
				k, err := hpke.MLKEM768X25519().NewPrivateKey(tc.XWingSeed)
				if err != nil {
					return "other", err
				}
				seed, _ := a.XWing.Bytes()
				return "", errors.Join(eq(seed, tc.XWingSeed), eq(a.XWing.PublicKey().Bytes(), tc.XWingPublic), eq(k.PublicKey().Bytes(), tc.XWingPublic))
			})
		}
	}
}

func verifyHPKE(t *testing.T, data []byte) {
	f := load(t, data, func(g HPKEGroup) int { return len(g.Tests) })
	for _, g := range f.TestGroups {
		if g.Type == "open_v2" {
			verifyHPKEv2(t, g)
			continue
		}
		if g.Type != "open" || g.KEMID != 0x20 || g.KDFID != 1 || g.AEADID != 3 {
			t.Fatalf("group %s, suite %x/%x/%x", g.Type, g.KEMID, g.KDFID, g.AEADID)
		}
		for _, tc := range g.Tests {
			vault, user := uuid.MustParse(tc.VaultID), uuid.MustParse(tc.UserID)
			if !bytes.Equal(tc.Info, vaultKeyInfo(vault, user)) {
				t.Errorf("tcId %d: info differs", tc.TcID)
			}
			check(t, tc.Case, tc.Outcome, func() (string, error) {
				sk, err := ecdh.X25519().NewPrivateKey(tc.SkR)
				if err != nil {
					return "other", err
				}
				if err := eq(sk.PublicKey().Bytes(), tc.PkR); err != nil {
					return "", err
				}
				k, err := grant.OpenVaultKey(sk, vault, user, tc.Sealed)
				switch {
				case errors.Is(err, grant.ErrBadSealedKey):
					return "malformed", err
				case errors.Is(err, grant.ErrOpenVaultKey):
					return "does_not_open", err
				case err != nil:
					return "other", err
				}
				return "", errors.Join(eq(k, tc.VaultKey), eq(append(bytes.Clone(tc.Enc), tc.Ciphertext...), mustB64(tc.Sealed)))
			})
		}
	}
}

// verifyHPKEv2 checks a group of version 2 sealed keys: the info built
// here, the public key derived from skR with crypto/hpke directly, then
// grant.OpenVaultKeyV2.
func verifyHPKEv2(t *testing.T, g HPKEGroup) {
	if (g.KEMID != 0x647a && g.KEMID != 0x20) || g.KDFID != 1 || g.AEADID != 3 {
		t.Fatalf("suite %x/%x/%x", g.KEMID, g.KDFID, g.AEADID)
	}
	kem := must2(hpke.NewKEM(g.KEMID))
	for _, tc := range g.Tests {
		vault, user := uuid.MustParse(tc.VaultID), uuid.MustParse(tc.UserID)
		gen, err := strconv.ParseUint(tc.Generation, 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		info := []byte("zsm v2 vault-key\x00")
		info = append(append(info, vault[:]...), user[:]...)
		info = append(info, byte(gen>>56), byte(gen>>48), byte(gen>>40), byte(gen>>32), byte(gen>>24), byte(gen>>16), byte(gen>>8), byte(gen))
		if !bytes.Equal(tc.Info, info) {
			t.Errorf("tcId %d: info differs", tc.TcID)
		}
		check(t, tc.Case, tc.Outcome, func() (string, error) {
			sk, err := kem.NewPrivateKey(tc.SkR)
			if err != nil {
				return "other", err
			}
			if err := eq(sk.PublicKey().Bytes(), tc.PkR); err != nil {
				return "", err
			}
			k, err := grant.OpenVaultKeyV2(sk, vault, user, gen, tc.Sealed)
			switch {
			case errors.Is(err, grant.ErrBadSealedKey):
				return "malformed", err
			case errors.Is(err, grant.ErrOpenVaultKey):
				return "does_not_open", err
			case err != nil:
				return "other", err
			}
			return "", errors.Join(eq(k, tc.VaultKey), eq(append(bytes.Clone(tc.Enc), tc.Ciphertext...), mustB64(tc.Sealed)))
		})
	}
}

func must2[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func mustB64(s string) []byte {
	b, _ := base64.StdEncoding.DecodeString(s)
	return b
}

func verifyGrant(t *testing.T, data []byte) {
	f := load(t, data, func(g GrantGroup) int { return len(g.Tests) })
	for _, g := range f.TestGroups {
		switch g.Type {
		case "verify":
		case "verify_v2":
			verifyGrantV2(t, g)
			continue
		case "key_commitment", "key_chain":
			verifyKeyChain(t, g)
			continue
		default:
			t.Fatalf("unknown group type %q", g.Type)
		}
		if !bytes.Equal(ed25519.NewKeyFromSeed(g.SignerSeed).Public().(ed25519.PublicKey), g.SignerPublic) {
			t.Fatal("signerPublic does not match signerSeed")
		}
		for _, tc := range g.Tests {
			gr := grant.Grant{VaultID: uuid.MustParse(tc.VaultID), UserID: uuid.MustParse(tc.UserID), GrantedBy: uuid.MustParse(tc.GrantedBy), Role: tc.Role, SealedKey: tc.SealedKey}
			if m, err := gr.Message(); err == nil && !bytes.Equal(m, tc.Message) {
				t.Errorf("tcId %d: message differs", tc.TcID)
			}
			pub := ed25519.PublicKey(g.SignerPublic)
			if tc.Public != nil {
				pub = ed25519.PublicKey(tc.Public)
			}
			check(t, tc.Case, tc.Outcome, func() (string, error) {
				if err := grant.Verify(gr, tc.Signature, pub); err != nil {
					if errors.Is(err, grant.ErrBadSignature) {
						return "bad_signature", err
					}
					return "other", err
				}
				// Ed25519 is deterministic: signing again gives the same bytes.
				sig, err := grant.Sign(gr, ed25519.NewKeyFromSeed(g.SignerSeed))
				if err != nil || sig != tc.Signature {
					return "", errMismatch
				}
				return "", nil
			})
		}
	}
}

func u64(t *testing.T, s string) uint64 {
	t.Helper()
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil || strconv.FormatUint(v, 10) != s {
		t.Fatalf("%q is not a decimal u64", s)
	}
	return v
}

func verifyGrantV2(t *testing.T, g GrantGroup) {
	if !bytes.Equal(ed25519.NewKeyFromSeed(g.SignerSeed).Public().(ed25519.PublicKey), g.SignerPublic) {
		t.Fatal("signerPublic does not match signerSeed")
	}
	for _, tc := range g.Tests {
		gr := grant.GrantV2{VaultID: uuid.MustParse(tc.VaultID), UserID: uuid.MustParse(tc.UserID), GrantedBy: uuid.MustParse(tc.GrantedBy),
			Role: tc.Role, Generation: u64(t, tc.Generation), KEM: grant.KEM(tc.KEMID), SealedKey: tc.SealedKey}
		if m, err := gr.Message(); err == nil && !bytes.Equal(m, tc.Message) {
			t.Errorf("tcId %d: message differs", tc.TcID)
		}
		pub := ed25519.PublicKey(g.SignerPublic)
		if tc.Public != nil {
			pub = ed25519.PublicKey(tc.Public)
		}
		if tc.RecipientHasXWing == nil {
			t.Fatalf("tcId %d: recipientHasXwing missing", tc.TcID)
		}
		check(t, tc.Case, tc.Outcome, func() (string, error) {
			if err := grant.VerifyV2(gr, tc.Signature, pub); err != nil {
				if errors.Is(err, grant.ErrBadSignature) {
					return "bad_signature", err
				}
				return "other", err
			}
			if err := grant.CheckKEM(gr.KEM, *tc.RecipientHasXWing); err != nil {
				if errors.Is(err, grant.ErrDowngrade) {
					return "downgrade", err
				}
				return "other", err
			}
			sig, err := grant.SignV2(gr, ed25519.NewKeyFromSeed(g.SignerSeed))
			if err != nil || sig != tc.Signature {
				return "", errMismatch
			}
			return "", nil
		})
	}
}

func verifyKeyChain(t *testing.T, g GrantGroup) {
	for _, tc := range g.Tests {
		vault := uuid.MustParse(tc.VaultID)
		check(t, tc.Case, tc.Outcome, func() (string, error) {
			class := func(err error) (string, error) {
				switch {
				case errors.Is(err, grant.ErrKeyCommitment):
					return "key_commitment", err
				case errors.Is(err, grant.ErrChain):
					return "chain", err
				}
				return "other", err
			}
			if g.Type == "key_commitment" {
				gen := u64(t, tc.Generation)
				c, err := grant.KeyCommitment(tc.Key, vault, gen)
				if err != nil {
					return "other", err
				}
				// The commitment of the vector is what the log holds; the
				// key is accepted only if it matches.
				if err := grant.CheckKeyCommitment(tc.Key, vault, gen, [32]byte(tc.Commitment)); err != nil {
					return class(err)
				}
				return "", eq(c[:], tc.Commitment)
			}
			ch := grant.Chain{VaultID: vault, Wrapped: map[uint64]string{}, Commitments: map[uint64][32]byte{}}
			for k, w := range tc.Wrapped {
				ch.Wrapped[u64(t, k)] = w
			}
			for k, c := range tc.Commitments {
				ch.Commitments[u64(t, k)] = [32]byte(c)
			}
			got, err := ch.Keys(u64(t, tc.NewestGeneration), tc.NewestKey, u64(t, tc.OldestGeneration))
			if err != nil {
				return class(err)
			}
			if len(got) != len(tc.Keys) {
				return "", errMismatch
			}
			for k, want := range tc.Keys {
				if err := eq(got[u64(t, k)], want); err != nil {
					return "", err
				}
			}
			return "", nil
		})
	}
}

func verifySRP(t *testing.T, data []byte) {
	f := load(t, data, func(g SRPGroup) int { return len(g.Tests) })
	for _, g := range f.TestGroups {
		if !bytes.Equal(g.N, srpgroup.N.Bytes()) || !bytes.Equal(g.G, []byte{srpgroup.G}) || g.Hash != "BLAKE2b-256" {
			t.Fatal("group differs from srpgroup's")
		}
		for _, tc := range g.Tests {
			check(t, tc.Case, tc.Outcome, func() (string, error) {
				m := srpRegister(tc.Identity, tc.SRPSecret, tc.Salt)
				if err := errors.Join(eq(srpgroup.IdentityHash(tc.Identity), tc.IdentityHash), eq(m.x.Bytes(), tc.X), eq(m.v.Bytes(), tc.V)); err != nil {
					return "", err
				}
				if g.Type == "registration" {
					if err := eq(m.secretHash, tc.SecretHash); err != nil {
						return "", err
					}
					// v really is go-srp's verifier for (identity, secret,
					// salt): a real go-srp client with that secret logs in
					// to a real go-srp server holding v.
					return "", goSRPLogin(tc.Identity, tc.SRPSecret, tc.Salt, tc.V)
				}
				// Login: the client's checks on B come first (as authclient
				// does them), then the math, then the server's proof.
				B, err := srpgroup.ParsePublic(tc.BHex)
				if err != nil {
					return "bad_b", err
				}
				c := srpClient(tc.Identity, tc.SRPSecret, tc.Salt, new(big.Int).SetBytes(tc.A), B)
				if err := errors.Join(eq(c.A.Bytes(), tc.APub), eq(c.u.Bytes(), tc.U), eq(c.k.Bytes(), tc.K),
					eq(c.S.Bytes(), tc.S), eq(c.K, tc.SessionKey), eq(c.M, tc.M)); err != nil {
					return "", err
				}
				if !bytes.Equal(c.Z, tc.ServerProof) {
					return "bad_server_proof", errors.New("server proof differs")
				}
				return "", nil
			})
		}
	}
}

func goSRPLogin(identity string, secret, salt, v []byte) error {
	ver, err := srpgroup.Verifier(identity, salt, v)
	if err != nil {
		return err
	}
	cl, err := srpgroup.Env().NewClient([]byte(identity), secret)
	if err != nil {
		return err
	}
	cred := cl.Credentials()
	A, _ := new(big.Int).SetString(cred[strings.IndexByte(cred, ':')+1:], 16)
	srv, err := srpgroup.Env().NewServer(ver, A)
	if err != nil {
		return err
	}
	M, err := cl.Generate(srv.Credentials())
	if err != nil {
		return err
	}
	proof, ok := srv.ClientOk(M)
	if !ok || !cl.ServerOk(proof) {
		return errors.New("go-srp login with the vector's verifier failed")
	}
	return nil
}

func verifyFlow(t *testing.T, data []byte) {
	f := load(t, data, func(g FlowGroup) int { return len(g.Tests) })
	for _, g := range f.TestGroups {
		for _, tc := range g.Tests {
			if testing.Short() {
				continue
			}
			check(t, tc.Case, tc.Outcome, func() (string, error) {
				sk, err := keys.ParseSecretKey(tc.SecretKeyText)
				if err != nil {
					return "", err
				}
				d, err := keys.Derive(tc.Password, sk, tc.Identity, toParams(&tc.KDF))
				if err != nil {
					return "", err
				}
				if err := errors.Join(eq(d.SRPSecret, tc.SRPSecret), eq(d.UnlockKey, tc.UnlockKey)); err != nil {
					return "", err
				}
				userID, vaultID := uuid.MustParse(tc.UserID), uuid.MustParse(tc.VaultID)
				b, err := keys.ParseBundle([]byte(tc.Bundle))
				if err != nil {
					return "", err
				}
				a, err := keys.OpenBundle(b, d.UnlockKey, userID)
				if err != nil {
					return "", err
				}
				if err := eq(a.AccountKey, tc.AccountKey); err != nil {
					return "", err
				}
				vk, err := grant.OpenVaultKey(a.X25519, vaultID, userID, tc.SealedKey)
				if err != nil {
					return "", err
				}
				if err := eq(vk, tc.VaultKey); err != nil {
					return "", err
				}
				pub, err := b.Ed25519PublicKey()
				if err != nil {
					return "", err
				}
				gr := grant.Grant{VaultID: vaultID, UserID: userID, GrantedBy: userID, Role: tc.GrantRole, SealedKey: tc.SealedKey}
				if err := grant.Verify(gr, tc.GrantSig, pub); err != nil {
					return "", err
				}
				rev, _ := strconv.ParseUint(tc.Revision, 10, 64)
				pt, err := envelope.OpenString(vk, envelope.Context{Type: envelope.Secret, VaultID: vaultID, ObjectID: uuid.MustParse(tc.SecretID), Revision: rev}, tc.SecretEnv)
				if err != nil {
					return "", err
				}
				return "", eq(pt, tc.Plaintext)
			})
		}
	}
}

func verifyKeyRecord(t *testing.T, data []byte) {
	f := load(t, data, func(g KeyRecordGroup) int { return len(g.Tests) })
	for _, g := range f.TestGroups {
		if g.Type != "verify" {
			t.Fatalf("unknown group type %q", g.Type)
		}
		for _, tc := range g.Tests {
			check(t, tc.Case, tc.Outcome, func() (string, error) {
				version := tc.Version
				if version == 0 {
					version = keyrecord.V1
				}
				rec, err := keyrecord.FromPublished(version, uuid.MustParse(tc.UserID), tc.Identity, tc.X25519Public, tc.Ed25519Public, tc.XWingPublic)
				if err != nil {
					return "bad_signature", err
				}
				if len(tc.XWingSeed) > 0 {
					// The seed must yield the published X-Wing key.
					w, err := hpke.MLKEM768X25519().NewPrivateKey(tc.XWingSeed)
					if err != nil || !bytes.Equal(w.PublicKey().Bytes(), rec.XWing) {
						return "", errMismatch
					}
				}
				if m, err := rec.Message(); err == nil && !bytes.Equal(m, tc.Message) {
					return "", errMismatch
				}
				if err := keyrecord.Verify(rec, tc.Signature); err != nil {
					if errors.Is(err, keyrecord.ErrBadSignature) {
						return "bad_signature", err
					}
					return "other", err
				}
				// Ed25519 is deterministic: signing again gives the same bytes.
				if len(tc.SignerSeed) != ed25519.SeedSize {
					return "", errors.New("a valid test must give signerSeed")
				}
				sig, err := keyrecord.Sign(rec, ed25519.NewKeyFromSeed(tc.SignerSeed))
				if err != nil || sig != tc.Signature {
					return "", errMismatch
				}
				return "", nil
			})
		}
	}
}

// verifyIdentity checks srpgroup's identity rules against identity.json,
// and that the Unicode tables this build links are the ones the vectors
// follow: a Go or x/text upgrade that moves to another Unicode version can
// change an identity's normal form, and so lock an account out or make two
// spellings two accounts (docs/auth.md).
func verifyIdentity(t *testing.T, data []byte) {
	f := load(t, data, func(g IdentityGroup) int { return len(g.Tests) })
	for _, g := range f.TestGroups {
		for name, v := range map[string]string{"unicode": unicode.Version, "x/text/unicode/norm": norm.Version, "x/text/cases": cases.UnicodeVersion} {
			if v != g.UnicodeVersion {
				t.Fatalf("%s has Unicode %s tables, identity.json follows %s: identities may normalize differently; see docs/auth.md", name, v, g.UnicodeVersion)
			}
		}
		for _, tc := range g.Tests {
			check(t, tc.Case, tc.Outcome, func() (string, error) {
				switch g.Type {
				case "normalize":
					got, err := srpgroup.NormalizeIdentity(string(tc.Input))
					if err != nil {
						return "bad_identity", err
					}
					if got != tc.Normalized {
						return "", errMismatch
					}
					// The normal form is a fixed point.
					if again, err := srpgroup.NormalizeIdentity(got); err != nil || again != got {
						return "", errors.New("the normal form does not normalize to itself")
					}
					return "", nil
				case "new_identity":
					if n, err := srpgroup.NormalizeIdentity(tc.Identity); err != nil || n != tc.Identity {
						return "", errors.New("identity is not in normal form")
					}
					err := srpgroup.CheckNewIdentity(tc.Identity)
					switch {
					case err == nil:
						return "", nil
					case errors.Is(err, srpgroup.ErrReplacementChar):
						return "replacement_character", err
					case errors.Is(err, srpgroup.ErrMixedScripts):
						return "mixed_scripts", err
					}
					return "other", err
				}
				t.Fatalf("unknown group type %q", g.Type)
				return "", nil
			})
		}
	}
}
