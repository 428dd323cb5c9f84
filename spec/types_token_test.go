package spec

// token.json (docs/crypto.md §13)

type TokenGroup struct {
	Type  string      `json:"type"` // parse | derive | record | anchor | login | identity
	Tests []TokenTest `json:"tests"`
}

// TokenTest holds the members of every group; each group uses its own.
type TokenTest struct {
	Case
	Text    string `json:"text,omitempty"`    // parse: the token's text form
	TokenID string `json:"tokenId,omitempty"` // the token id (canonical uuid text)
	Secret  Hex    `json:"secret,omitempty"`  // the token's 32-byte secret
	Check   Hex    `json:"check,omitempty"`   // parse: the 4 check bytes

	// derive: the keys, each HKDF-SHA256(secret, salt = token id, info).
	InfoEd25519   string `json:"infoEd25519,omitempty"`
	InfoX25519    string `json:"infoX25519,omitempty"`
	InfoXWing     string `json:"infoXWing,omitempty"`
	InfoCache     string `json:"infoCache,omitempty"`
	InfoAnchor    string `json:"infoAnchor,omitempty"`
	Ed25519Seed   Hex    `json:"ed25519Seed,omitempty"`
	Ed25519Public Hex    `json:"ed25519Public,omitempty"`
	X25519Private Hex    `json:"x25519Private,omitempty"`
	X25519Public  Hex    `json:"x25519Public,omitempty"`
	XWingSeed     Hex    `json:"xwingSeed,omitempty"`
	XWingPublic   Hex    `json:"xwingPublic,omitempty"`
	CacheKey      Hex    `json:"cacheKey,omitempty"`
	AnchorKey     Hex    `json:"anchorKey,omitempty"`

	// record: the key record of the token, as published (base64).
	// identity: Identity as typed and Normal, its normal form.
	Identity     string `json:"identity,omitempty"`
	Normal       string `json:"normal,omitempty"`
	X25519B64    string `json:"x25519PublicB64,omitempty"`
	Ed25519B64   string `json:"ed25519PublicB64,omitempty"`
	XWingB64     string `json:"xwingPublicB64,omitempty"`
	Message      Hex    `json:"message,omitempty"`
	Signature    string `json:"signature,omitempty"` // base64 (record) or hex in SignatureHex (login)
	SignatureHex Hex    `json:"signatureHex,omitempty"`

	// anchor: the creator the MAC vouches for.
	CreatorID      string `json:"creatorId,omitempty"`
	CreatorEd25519 Hex    `json:"creatorEd25519Public,omitempty"`
	Anchor         Hex    `json:"anchor,omitempty"`

	// login: the challenge and the audience.
	Nonce    Hex    `json:"nonce,omitempty"`
	Audience string `json:"audience,omitempty"`
	Outcome
}
