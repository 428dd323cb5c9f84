package spec

// The JSON shapes of the vector files of sharing (docs/crypto.md §6-§10):
// fingerprint.json, pins.json, vault_log.json and manifest.json.

// IdentityJSON is what a fingerprint covers (a verified key record's user
// id, identity and Ed25519 key).
type IdentityJSON struct {
	UserID        string `json:"userId"`
	Identity      string `json:"identity"`
	Ed25519Public Hex    `json:"ed25519Public"`
}

// fingerprint.json

type FingerprintGroup struct {
	Type  string            `json:"type"` // fingerprint | qr
	Tests []FingerprintTest `json:"tests"`
}

type FingerprintTest struct {
	Case
	IdentityJSON
	Input        Hex    `json:"input,omitempty"`  // the bytes SHA-512 hashes
	Digest       Hex    `json:"digest,omitempty"` // 64 bytes
	Fingerprint  Hex    `json:"fingerprint,omitempty"`
	SafetyNumber string `json:"safetyNumber,omitempty"`
	QR           string `json:"qr,omitempty"`
	Outcome
}

// pins.json

type PinsGroup struct {
	Type  string     `json:"type"` // parse | check | merge | sealed
	Tests []PinsTest `json:"tests"`
}

type RecordJSON struct {
	IdentityJSON
	Version     int `json:"version"`
	XWingPublic Hex `json:"xwingPublic,omitempty"`
}

type PinsTest struct {
	Case
	Pins      string `json:"pins,omitempty"`      // a pin set document (parse: the input; check: the set)
	Canonical string `json:"canonical,omitempty"` // parse, merge: the canonical re-encoding
	// check
	Record *RecordJSON `json:"record,omitempty"`
	Raised *bool       `json:"raised,omitempty"` // the pin is raised to record version 2
	// merge
	Remote    string   `json:"remote,omitempty"`
	Conflicts []string `json:"conflicts,omitempty"` // identities
	// sealed
	AccountKey Hex    `json:"accountKey,omitempty"`
	UserID     string `json:"userId,omitempty"`
	Revision   string `json:"revision,omitempty"` // decimal u64
	Sealed     string `json:"sealed,omitempty"`   // base64 envelope type 7
	Outcome
}

// vault_log.json and manifest.json

// RowJSON is a stored log entry or manifest: base64 of the message and of
// the signature, as in the database.
type RowJSON struct {
	Message   string `json:"message"`
	Signature string `json:"signature"`
	Signer    string `json:"signer,omitempty"` // manifests: the signer column
}

type EntryJSON struct {
	VaultID     string `json:"vaultId"`
	Seq         string `json:"seq"`
	Prev        Hex    `json:"prev"`
	Op          uint8  `json:"op"`
	Subject     string `json:"subject"`
	Role        string `json:"role"`
	SubjectFP   Hex    `json:"subjectFingerprint"`
	Generation  string `json:"generation"`
	Commitment  Hex    `json:"keyCommitment"`
	Signer      string `json:"signer"`
	UnixMilli   string `json:"unixMilli"`
	MessageHex  Hex    `json:"messageHex,omitempty"`
	SignatureHx Hex    `json:"signatureHex,omitempty"`
	Hash        Hex    `json:"hash,omitempty"`
}

type MemberJSON struct {
	UserID      string `json:"userId"`
	Role        string `json:"role"`
	Fingerprint Hex    `json:"fingerprint"`
	AddedBy     string `json:"addedBy"`
	AddedSeq    string `json:"addedSeq"`
}

type HeadJSON struct {
	Seq  string `json:"seq"`
	Hash Hex    `json:"hash"`
}

type LogGroup struct {
	Type    string         `json:"type"` // entry | parse | replay | open
	VaultID string         `json:"vaultId,omitempty"`
	Keys    []IdentityJSON `json:"keys,omitempty"` // verified key records
	Tests   []LogTest      `json:"tests"`
}

type LogTest struct {
	Case
	// entry: fields -> message (and signed: the hash); parse: a message
	Entry   *EntryJSON `json:"entry,omitempty"`
	Message Hex        `json:"message,omitempty"`
	// replay and open
	Rows []RowJSON      `json:"rows,omitempty"`
	Keys []IdentityJSON `json:"keys,omitempty"` // overrides the group's
	// replay results
	Members     []MemberJSON   `json:"members,omitempty"`
	Generation  string         `json:"generation,omitempty"`
	Commitments map[string]Hex `json:"commitments,omitempty"`
	Head        *HeadJSON      `json:"head,omitempty"`
	LastCut     string         `json:"lastCut,omitempty"`
	RotationDue *bool          `json:"rotationDue,omitempty"`
	// open
	Remembered   *HeadJSON    `json:"remembered,omitempty"`
	Self         *MemberJSON  `json:"self,omitempty"` // userId and fingerprint
	Pinned       []MemberJSON `json:"pinned,omitempty"`
	InvitedBy    string       `json:"invitedBy,omitempty"`
	InvitedBySeq string       `json:"invitedBySeq,omitempty"`
	Creator      *bool        `json:"creator,omitempty"`
	Outcome
}

type ManifestJSON struct {
	VaultID       string `json:"vaultId"`
	Version       string `json:"version"`
	Prev          Hex    `json:"prev"`
	KeyGeneration string `json:"keyGeneration"`
	LogSeq        string `json:"logSeq"`
	LogHash       Hex    `json:"logHash"`
	MetaRevision  string `json:"metaRevision"`
	SecretCount   string `json:"secretCount"`
	ItemsDigest   Hex    `json:"itemsDigest"`
}

type ItemJSON struct {
	ID         string `json:"id"`
	Revision   string `json:"revision"`
	Generation string `json:"generation"`
}

type SeenJSON struct {
	Version string `json:"version"`
	Hash    Hex    `json:"hash"`
}

type ManifestGroup struct {
	Type    string         `json:"type"` // manifest | parse | digest | accept
	VaultID string         `json:"vaultId,omitempty"`
	Keys    []IdentityJSON `json:"keys,omitempty"`
	Log     []RowJSON      `json:"log,omitempty"` // accept: the membership log; a test uses its first logLength rows
	Tests   []ManifestTest `json:"tests"`
}

type ManifestTest struct {
	Case
	Manifest *ManifestJSON `json:"manifest,omitempty"`
	Message  Hex           `json:"message,omitempty"`
	// digest
	Items  []ItemJSON `json:"items,omitempty"`
	Digest Hex        `json:"digest,omitempty"`
	// accept
	LogLength    string     `json:"logLength,omitempty"`
	Row          *RowJSON   `json:"row,omitempty"`
	Seen         *SeenJSON  `json:"seen,omitempty"` // what the device remembers; absent: nothing
	Listing      []ItemJSON `json:"listing,omitempty"`
	MetaRevision string     `json:"metaRevision,omitempty"`
	NewSeen      *SeenJSON  `json:"newSeen,omitempty"`
	Outcome
}
