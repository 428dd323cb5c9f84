package api

import (
	"encoding/base64"
	"fmt"
)

// KDF is an account's password-hardening parameters: the client derives its
// SRP secret and unlock key with them (docs/crypto.md §1), authsvc stores
// them at sign-up and hands them back before every login. Only the client
// uses them; the server checks them at sign-up so that no account is made
// below the floor, and the client refuses weak parameters whatever a server
// says.
type KDF struct {
	Alg         string `json:"alg"`
	Salt        string `json:"salt"` // standard base64 of KDFSaltBytes bytes, with padding
	MemoryKiB   uint32 `json:"memory_kib"`
	Iterations  uint32 `json:"iterations"`
	Parallelism uint8  `json:"parallelism"`
}

// The only KDF, zsm's Argon2id floor (DESIGN §5, RFC 9106's second
// recommendation: m = 64 MiB, t = 3, p = 4) and the sane maxima. Both sides
// hold parameters to exactly these bounds.
const (
	KDFAlg = "argon2id"

	KDFFloorMemoryKiB   = 64 * 1024
	KDFFloorIterations  = 3
	KDFFloorParallelism = 4

	KDFMaxMemoryKiB   = 4 * 1024 * 1024 // 4 GiB
	KDFMaxIterations  = 64
	KDFMaxParallelism = 16

	// KDFSaltBytes is the size of the KDF salt. It is exact, not a
	// minimum: an account with a salt of another size would stand apart
	// from the made-up answers authsvc gives for identities that do not
	// exist.
	KDFSaltBytes = 16
)

// Check reports why k is not acceptable: not Argon2id, outside the floor
// and maxima, or a salt that is not exactly KDFSaltBytes bytes in canonical
// standard base64. Its errors describe the fault only; callers wrap them in
// their own sentinel.
func (k KDF) Check() error {
	if k.Alg != KDFAlg {
		return fmt.Errorf("alg %q is not %q", k.Alg, KDFAlg)
	}
	if _, err := k.SaltBytes(); err != nil {
		return err
	}
	switch {
	case k.MemoryKiB < KDFFloorMemoryKiB:
		return fmt.Errorf("memory_kib %d is below the floor %d", k.MemoryKiB, KDFFloorMemoryKiB)
	case k.MemoryKiB > KDFMaxMemoryKiB:
		return fmt.Errorf("memory_kib %d is above the maximum %d", k.MemoryKiB, KDFMaxMemoryKiB)
	case k.Iterations < KDFFloorIterations:
		return fmt.Errorf("iterations %d is below the floor %d", k.Iterations, KDFFloorIterations)
	case k.Iterations > KDFMaxIterations:
		return fmt.Errorf("iterations %d is above the maximum %d", k.Iterations, KDFMaxIterations)
	case k.Parallelism < KDFFloorParallelism:
		return fmt.Errorf("parallelism %d is below the floor %d", k.Parallelism, KDFFloorParallelism)
	case k.Parallelism > KDFMaxParallelism:
		return fmt.Errorf("parallelism %d is above the maximum %d", k.Parallelism, KDFMaxParallelism)
	}
	return nil
}

// errSalt is the one description of a salt Check refuses.
var errSalt = fmt.Errorf("salt must be %d bytes in canonical standard base64", KDFSaltBytes)

// SaltBytes decodes the salt, refusing every form but the canonical one.
func (k KDF) SaltBytes() ([]byte, error) {
	salt, err := base64.StdEncoding.Strict().DecodeString(k.Salt)
	// Strict still skips CR and LF; re-encoding catches those and every
	// other second spelling of the same bytes.
	if err != nil || len(salt) != KDFSaltBytes || base64.StdEncoding.EncodeToString(salt) != k.Salt {
		return nil, errSalt
	}
	return salt, nil
}
