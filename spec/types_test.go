package spec

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
)

// The JSON shapes of the vector files, shared by the generator and the
// verifier. Every byte string is lower-case hex ([Hex]); uuids are in their
// canonical text form; 64-bit integers are decimal strings; small
// parameters are JSON numbers.

const schema = "zsm-vectors-v1"

// Hex is a byte string written as lower-case hex. Decoding refuses upper
// case, so a file has one spelling.
type Hex []byte

func (h Hex) MarshalJSON() ([]byte, error) { return json.Marshal(hex.EncodeToString(h)) }

func (h *Hex) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	if strings.ToLower(s) != s {
		return fmt.Errorf("hex %q is not lower case", s)
	}
	d, err := hex.DecodeString(s)
	if err != nil {
		return err
	}
	*h = d
	return nil
}

type Note struct {
	BugType     string `json:"bugType"`
	Description string `json:"description"`
}

type File[G any] struct {
	Algorithm     string          `json:"algorithm"`
	Schema        string          `json:"schema"`
	Generator     string          `json:"generator"`
	NumberOfTests int             `json:"numberOfTests"`
	Header        []string        `json:"header"`
	Notes         map[string]Note `json:"notes"`
	TestGroups    []G             `json:"testGroups"`
}

// Case holds the members every test has.
type Case struct {
	TcID    int      `json:"tcId"`
	Comment string   `json:"comment"`
	Flags   []string `json:"flags"`
}

// Outcome is a test's expected result. Error names the class of failure for
// invalid tests (see each file's header).
type Outcome struct {
	Result string `json:"result"` // valid | invalid
	Error  string `json:"error,omitempty"`
}

// kdf.json

type KDFParamsJSON struct {
	Alg         string `json:"alg"`
	Salt        string `json:"salt"`
	MemoryKiB   uint32 `json:"memory_kib"`
	Iterations  uint32 `json:"iterations"`
	Parallelism uint8  `json:"parallelism"`
}

type KDFGroup struct {
	Type  string    `json:"type"` // argon2id | hkdf_split | derive | params
	Tests []KDFTest `json:"tests"`
}

type KDFTest struct {
	Case
	// argon2id
	Password    Hex    `json:"password,omitempty"`
	Salt        Hex    `json:"salt,omitempty"`
	MemoryKiB   uint32 `json:"memoryKiB,omitempty"`
	Iterations  uint32 `json:"iterations,omitempty"`
	Parallelism uint8  `json:"parallelism,omitempty"`
	// derive: the password as typed, before NFKC
	PasswordNFKC Hex            `json:"passwordNfkc,omitempty"`
	KDF          *KDFParamsJSON `json:"kdf,omitempty"`
	// argon2id output, hkdf_split input
	KPw        Hex    `json:"kpw,omitempty"`
	SecretKey  Hex    `json:"secretKey,omitempty"`
	Identity   string `json:"identity,omitempty"`
	InfoSRP    Hex    `json:"infoSrp,omitempty"`
	InfoUnlock Hex    `json:"infoUnlock,omitempty"`
	SRPSecret  Hex    `json:"srpSecret,omitempty"`
	UnlockKey  Hex    `json:"unlockKey,omitempty"`
	Outcome
}

// secret_key.json

type SecretKeyGroup struct {
	Type  string          `json:"type"`
	Tests []SecretKeyTest `json:"tests"`
}

type SecretKeyTest struct {
	Case
	Text      string `json:"text"`
	Canonical string `json:"canonical,omitempty"`
	Key       Hex    `json:"key,omitempty"`
	Outcome
}

// envelope.json

type ADInput struct {
	Type     uint8  `json:"type"`
	VaultID  string `json:"vaultId"`
	ObjectID string `json:"objectId"`
	Revision string `json:"revision"` // decimal u64
}

type EnvelopeGroup struct {
	Type  string         `json:"type"` // seal | open
	Tests []EnvelopeTest `json:"tests"`
}

type EnvelopeTest struct {
	Case
	Key        Hex     `json:"key"`
	Nonce      Hex     `json:"nonce,omitempty"`
	ADInput    ADInput `json:"adInput"`
	AD         Hex     `json:"ad"`
	Commitment Hex     `json:"commitment,omitempty"`
	Plaintext  Hex     `json:"plaintext,omitempty"`
	Envelope   Hex     `json:"envelope"`
	Outcome
}

// bundle.json

type BundleGroup struct {
	Type  string       `json:"type"`
	Tests []BundleTest `json:"tests"`
}

type BundleTest struct {
	Case
	UnlockKey     Hex    `json:"unlockKey"`
	UserID        string `json:"userId"`
	Bundle        string `json:"bundle"` // the JSON document, verbatim
	AccountKey    Hex    `json:"accountKey,omitempty"`
	X25519Private Hex    `json:"x25519Private,omitempty"`
	X25519Public  Hex    `json:"x25519Public,omitempty"`
	Ed25519Seed   Hex    `json:"ed25519Seed,omitempty"`
	Ed25519Public Hex    `json:"ed25519Public,omitempty"`
	XWingSeed     Hex    `json:"xwingSeed,omitempty"`   // version 2
	XWingPublic   Hex    `json:"xwingPublic,omitempty"` // version 2: derived from the seed
	Outcome
}

// hpke_vault_key.json

type HPKEGroup struct {
	Type   string     `json:"type"`
	KEMID  uint16     `json:"kemId"`
	KDFID  uint16     `json:"kdfId"`
	AEADID uint16     `json:"aeadId"`
	Tests  []HPKETest `json:"tests"`
}

type HPKETest struct {
	Case
	SkR        Hex    `json:"skR"` // X25519 scalar, or the 32-byte X-Wing seed
	PkR        Hex    `json:"pkR"` // derived from skR
	VaultID    string `json:"vaultId"`
	UserID     string `json:"userId"`
	Generation string `json:"generation,omitempty"` // version 2: decimal u64
	Info       Hex    `json:"info"`
	Enc        Hex    `json:"enc,omitempty"`
	Ciphertext Hex    `json:"ciphertext,omitempty"`
	Sealed     string `json:"sealed"` // base64(enc || ciphertext), the stored form
	VaultKey   Hex    `json:"vaultKey,omitempty"`
	Outcome
}

// grant.json

type GrantGroup struct {
	Type         string      `json:"type"` // verify | verify_v2 | key_commitment | key_chain
	SignerSeed   Hex         `json:"signerSeed,omitempty"`
	SignerPublic Hex         `json:"signerPublic,omitempty"`
	Tests        []GrantTest `json:"tests"`
}

type GrantTest struct {
	Case
	VaultID         string `json:"vaultId"`
	UserID          string `json:"userId,omitempty"`
	GrantedBy       string `json:"grantedBy,omitempty"`
	Role            string `json:"role,omitempty"`
	Generation      string `json:"generation,omitempty"` // verify_v2, key_commitment: decimal u64
	KEMID           uint16 `json:"kemId,omitempty"`      // verify_v2
	SealedKey       string `json:"sealedKey,omitempty"`
	SealedKeySHA256 Hex    `json:"sealedKeySha256,omitempty"`
	Message         Hex    `json:"message,omitempty"`
	Public          Hex    `json:"public,omitempty"`    // overrides the group's signer public key
	Signature       string `json:"signature,omitempty"` // base64, the stored form
	SignatureHex    Hex    `json:"signatureHex,omitempty"`
	// verify_v2: whether the recipient's key record has an X-Wing key
	// (a grant with kemId 0x0020 is then a downgrade).
	RecipientHasXWing *bool `json:"recipientHasXwing,omitempty"`
	// key_commitment
	Key        Hex `json:"key,omitempty"`
	Commitment Hex `json:"commitment,omitempty"`
	// key_chain: walk from the newest key back to oldestGeneration.
	NewestGeneration string            `json:"newestGeneration,omitempty"`
	NewestKey        Hex               `json:"newestKey,omitempty"`
	OldestGeneration string            `json:"oldestGeneration,omitempty"`
	Wrapped          map[string]string `json:"wrapped,omitempty"`     // generation g -> base64 envelope type 8 under the key of g+1
	Commitments      map[string]Hex    `json:"commitments,omitempty"` // generation -> commitment, from the log
	Keys             map[string]Hex    `json:"keys,omitempty"`        // expected: generation -> key
	Outcome
}

// key_record.json

type KeyRecordGroup struct {
	Type  string          `json:"type"`
	Tests []KeyRecordTest `json:"tests"`
}

type KeyRecordTest struct {
	Case
	SignerSeed    Hex    `json:"signerSeed,omitempty"` // the account's Ed25519 seed (valid tests)
	UserID        string `json:"userId"`
	Identity      string `json:"identity"`
	X25519Public  string `json:"x25519Public"`          // base64, as published
	Ed25519Public string `json:"ed25519Public"`         // base64, as published; the verifying key
	Version       int    `json:"version,omitempty"`     // 2 for a version 2 record; absent for version 1
	XWingPublic   string `json:"xwingPublic,omitempty"` // version 2: base64 of 1216 bytes, as published
	XWingSeed     Hex    `json:"xwingSeed,omitempty"`   // valid version 2 tests: the seed of xwingPublic
	Message       Hex    `json:"message,omitempty"`
	Signature     string `json:"signature"` // base64, the stored form
	SignatureHex  Hex    `json:"signatureHex,omitempty"`
	Outcome
}

// srp_blake2b_3072.json

type SRPGroup struct {
	Type  string    `json:"type"` // registration | login
	N     Hex       `json:"N"`
	G     Hex       `json:"g"`
	Hash  string    `json:"hash"`
	Tests []SRPTest `json:"tests"`
}

type SRPTest struct {
	Case
	Identity     string `json:"identity"`
	SRPSecret    Hex    `json:"srpSecret"`
	Salt         Hex    `json:"salt"`
	IdentityHash Hex    `json:"identityHash,omitempty"`
	SecretHash   Hex    `json:"secretHash,omitempty"`
	X            Hex    `json:"x,omitempty"`
	V            Hex    `json:"v,omitempty"`
	A            Hex    `json:"a,omitempty"`
	APub         Hex    `json:"A,omitempty"`
	BHex         string `json:"B,omitempty"` // as sent on the wire
	U            Hex    `json:"u,omitempty"`
	K            Hex    `json:"k,omitempty"`
	S            Hex    `json:"S,omitempty"`
	SessionKey   Hex    `json:"K,omitempty"`
	M            Hex    `json:"M,omitempty"`
	ServerProof  Hex    `json:"serverProof,omitempty"`
	Outcome
}

// flow.json

type FlowGroup struct {
	Type  string     `json:"type"`
	Tests []FlowTest `json:"tests"`
}

type FlowTest struct {
	Case
	Password      string        `json:"password"`
	SecretKeyText string        `json:"secretKeyText"`
	Identity      string        `json:"identity"`
	KDF           KDFParamsJSON `json:"kdf"`
	UserID        string        `json:"userId"`
	SRPSecret     Hex           `json:"srpSecret"`
	UnlockKey     Hex           `json:"unlockKey"`
	Bundle        string        `json:"bundle"`
	AccountKey    Hex           `json:"accountKey"`
	VaultID       string        `json:"vaultId"`
	SealedKey     string        `json:"sealedKey"`
	VaultKey      Hex           `json:"vaultKey"`
	GrantRole     string        `json:"grantRole"`
	GrantSig      string        `json:"grantSignature"`
	SecretID      string        `json:"secretId"`
	Revision      string        `json:"revision"`
	SecretEnv     string        `json:"secretEnvelope"` // base64, the stored form
	Plaintext     Hex           `json:"plaintext"`
	Outcome
}

// identity.json

type IdentityGroup struct {
	Type string `json:"type"` // normalize | new_identity
	// UnicodeVersion is the version of the Unicode tables the outcomes
	// follow (NFKC, case folding, White_Space, the printable categories
	// and the Script property).
	UnicodeVersion string         `json:"unicodeVersion"`
	Tests          []IdentityTest `json:"tests"`
}

type IdentityTest struct {
	Case
	// normalize: the bytes as sent (UTF-8 or not) and their normal form
	Input      Hex    `json:"input,omitempty"`
	Normalized string `json:"normalized,omitempty"`
	// new_identity: an identity in normal form
	Identity string `json:"identity,omitempty"`
	Outcome
}
