package srplogin

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
)

// KDF is the client's password-hardening parameters, stored with the account
// and handed back before login. The server only stores and returns them; it
// checks them at sign-up so an account cannot be created below the floor, but
// the client is the one that must refuse weak parameters, whatever a server
// says.
type KDF struct {
	Alg         string `json:"alg"`
	Salt        string `json:"salt"` // standard base64 of SaltBytes bytes
	MemoryKiB   uint32 `json:"memory_kib"`
	Iterations  uint32 `json:"iterations"`
	Parallelism uint8  `json:"parallelism"`
}

// The Argon2id floor of zsm (DESIGN §5): m = 64 MiB, t = 3, p = 4.
const (
	FloorMemoryKiB   = 64 * 1024
	FloorIterations  = 3
	FloorParallelism = 4

	// SaltBytes is the size of the KDF salt.
	SaltBytes = 16

	maxMemoryKiB   = 4 * 1024 * 1024
	maxIterations  = 64
	maxParallelism = 16
)

// ErrKDF describes unacceptable KDF parameters.
var ErrKDF = errors.New("kdf parameters are not acceptable")

// ParseKDF decodes and checks parameters sent at sign-up.
func ParseKDF(raw json.RawMessage) (KDF, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var k KDF
	if err := dec.Decode(&k); err != nil {
		return KDF{}, fmt.Errorf("%w: %v", ErrKDF, err)
	}
	if k.Alg != "argon2id" {
		return KDF{}, fmt.Errorf("%w: alg must be argon2id", ErrKDF)
	}
	// Exactly the size the zsm client makes, in canonical base64: a salt of
	// another length would set the account apart from the made-up answers
	// login gives for identities that do not exist.
	salt, err := base64.StdEncoding.Strict().DecodeString(k.Salt)
	if err != nil || len(salt) != SaltBytes || base64.StdEncoding.EncodeToString(salt) != k.Salt {
		return KDF{}, fmt.Errorf("%w: salt must be %d bytes in canonical standard base64", ErrKDF, SaltBytes)
	}
	if k.MemoryKiB < FloorMemoryKiB || k.MemoryKiB > maxMemoryKiB ||
		k.Iterations < FloorIterations || k.Iterations > maxIterations ||
		k.Parallelism < FloorParallelism || k.Parallelism > maxParallelism {
		return KDF{}, fmt.Errorf("%w: argon2id needs memory_kib %d–%d, iterations %d–%d, parallelism %d–%d",
			ErrKDF, FloorMemoryKiB, maxMemoryKiB, FloorIterations, maxIterations, FloorParallelism, maxParallelism)
	}
	return k, nil
}
