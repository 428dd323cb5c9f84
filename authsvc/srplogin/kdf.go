package srplogin

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	"zsm.dev/zsm/api"
)

// ErrKDF describes unacceptable KDF parameters.
var ErrKDF = errors.New("kdf parameters are not acceptable")

// ParseKDF decodes and checks the KDF parameters sent at sign-up or with a
// password change: exactly api.KDF's members, within its bounds. The server
// only stores and returns them; checking them here means no account is
// ever made below the floor.
func ParseKDF(raw json.RawMessage) (api.KDF, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var k api.KDF
	if err := dec.Decode(&k); err != nil {
		return api.KDF{}, fmt.Errorf("%w: %v", ErrKDF, err)
	}
	if err := k.Check(); err != nil {
		return api.KDF{}, fmt.Errorf("%w: %v", ErrKDF, err)
	}
	return k, nil
}
