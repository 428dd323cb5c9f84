package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/zalando/go-keyring"

	"zsm.dev/zsm/sdk/keys"
	"zsm.dev/zsm/sdk/zsm"
)

// Where a secret of this device is kept.
const (
	inKeyring = "keyring"
	inFile    = "file" // the Secret Key in <home>/secret_key
	inEnv     = "env"  // the session key with the user, as ZSM_SESSION
)

// home is the configuration directory and what lives in it.
type home struct {
	dir string
	kr  keyStore // nil when the keyring is off or unavailable
	// krState says why kr is nil ("off", "unavailable: …") or "available".
	krState string
}

func (h *home) path(name string) string { return filepath.Join(h.dir, name) }

// homeDir returns $ZSM_HOME or <user config dir>/zsm.
func homeDir() (string, error) {
	if d := os.Getenv("ZSM_HOME"); d != "" {
		return filepath.Abs(d)
	}
	d, err := os.UserConfigDir()
	if err != nil {
		return "", withHint(ExitError, fmt.Errorf("no configuration directory: %w", err), "set ZSM_HOME to a directory zsm may use")
	}
	return filepath.Join(d, "zsm"), nil
}

func openHome() (*home, error) {
	d, err := homeDir()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(d, 0o700); err != nil {
		return nil, err
	}
	// The directory holds the sealed session and the Secret Key: nobody
	// else needs to list it.
	_ = os.Chmod(d, 0o700)
	h := &home{dir: d}
	h.kr, h.krState = openKeyring()
	return h, nil
}

// accounts.json: which accounts this device knows and the current session.
type accountsFile struct {
	Version  int                 `json:"version"`
	Last     string              `json:"last,omitempty"` // account key of the last login
	Accounts map[string]*account `json:"accounts"`
	Session  *sessionInfo        `json:"session,omitempty"`
}

type account struct {
	Server      string    `json:"server"`
	Identity    string    `json:"identity"`
	UserID      string    `json:"user_id"`
	SecretKeyIn string    `json:"secret_key_in,omitempty"` // keyring | file | "" (not kept)
	LastLogin   time.Time `json:"last_login"`
}

type sessionInfo struct {
	Account   string    `json:"account"`
	KeyIn     string    `json:"key_in"` // keyring | env
	CreatedAt time.Time `json:"created_at"`
}

func accountKey(server, identity string) string {
	return strings.TrimRight(server, "/") + "|" + identity
}

func (h *home) loadAccounts() (*accountsFile, error) {
	a := &accountsFile{Version: 1, Accounts: map[string]*account{}}
	b, err := os.ReadFile(h.path("accounts.json"))
	if errors.Is(err, fs.ErrNotExist) {
		return a, nil
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, a); err != nil || a.Version != 1 {
		return nil, withHint(ExitError, fmt.Errorf("%s is damaged", h.path("accounts.json")), "remove it and log in again")
	}
	if a.Accounts == nil {
		a.Accounts = map[string]*account{}
	}
	return a, nil
}

func (h *home) saveAccounts(a *accountsFile) error {
	b, err := json.MarshalIndent(a, "", "  ")
	if err != nil {
		return err
	}
	return zsm.WriteFileAtomic(h.path("accounts.json"), append(b, '\n'), 0o600)
}

func (h *home) loadState() (*zsm.FileState, error) {
	st, err := zsm.LoadFileState(h.path("state.json"))
	if err != nil {
		return nil, withHint(ExitError, err, "the state file pins what this device has seen; do not delete it lightly")
	}
	return st, nil
}

// The Secret Key: in the keyring, or in <home>/secret_key (0600), a JSON
// object from account key to the key's text form. It is useless without
// the password.
type secretKeyFile struct {
	Version int               `json:"version"`
	Keys    map[string]string `json:"keys"`
}

func (h *home) readSecretKeyFile() (*secretKeyFile, error) {
	f := &secretKeyFile{Version: 1, Keys: map[string]string{}}
	b, err := os.ReadFile(h.path("secret_key"))
	if errors.Is(err, fs.ErrNotExist) {
		return f, nil
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, f); err != nil || f.Version != 1 {
		return nil, fmt.Errorf("%s is damaged", h.path("secret_key"))
	}
	if f.Keys == nil {
		f.Keys = map[string]string{}
	}
	return f, nil
}

// storedSecretKey returns the Secret Key this device keeps for acct.
func (h *home) storedSecretKey(acct string, where string) (keys.SecretKey, bool) {
	var text string
	switch where {
	case inKeyring:
		if h.kr == nil {
			return keys.SecretKey{}, false
		}
		t, err := h.kr.Get("secret-key " + acct)
		if err != nil {
			return keys.SecretKey{}, false
		}
		text = t
	default:
		f, err := h.readSecretKeyFile()
		if err != nil || f.Keys[acct] == "" {
			return keys.SecretKey{}, false
		}
		text = f.Keys[acct]
	}
	sk, err := keys.ParseSecretKey(text)
	return sk, err == nil
}

// storeSecretKey keeps the Secret Key on this device and says where.
func (h *home) storeSecretKey(acct string, sk keys.SecretKey) (string, error) {
	if h.kr != nil {
		if err := h.kr.Set("secret-key "+acct, sk.Text()); err == nil {
			_ = h.forgetSecretKeyFile(acct)
			return inKeyring, nil
		}
	}
	f, err := h.readSecretKeyFile()
	if err != nil {
		return "", err
	}
	f.Keys[acct] = sk.Text()
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return "", err
	}
	return inFile, zsm.WriteFileAtomic(h.path("secret_key"), append(b, '\n'), 0o600)
}

func (h *home) forgetSecretKeyFile(acct string) error {
	f, err := h.readSecretKeyFile()
	if err != nil {
		return err
	}
	if _, ok := f.Keys[acct]; !ok {
		return nil
	}
	delete(f.Keys, acct)
	if len(f.Keys) == 0 {
		return os.Remove(h.path("secret_key"))
	}
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return err
	}
	return zsm.WriteFileAtomic(h.path("secret_key"), append(b, '\n'), 0o600)
}

func (h *home) forgetSecretKey(acct string) {
	if h.kr != nil {
		_ = h.kr.Delete("secret-key " + acct)
	}
	_ = h.forgetSecretKeyFile(acct)
}

// sessionKeyName is the keyring entry of this home's session key (one
// session per configuration directory).
func (h *home) sessionKeyName() string { return "session " + h.dir }

// keyStore is the OS keyring.
type keyStore interface {
	Get(name string) (string, error)
	Set(name, value string) error
	Delete(name string) error
}

const keyringService = "zsm"

type osKeyring struct{}

// keyringTimeout bounds each keyring call: a Secret Service that is on the
// bus but never answers must not hang the CLI.
const keyringTimeout = 5 * time.Second

func timed[T any](f func() (T, error)) (T, error) {
	type res struct {
		v   T
		err error
	}
	ch := make(chan res, 1)
	go func() { v, err := f(); ch <- res{v, err} }()
	select {
	case r := <-ch:
		return r.v, r.err
	case <-time.After(keyringTimeout):
		var zero T
		return zero, errors.New("the keyring did not answer")
	}
}

func (osKeyring) Get(name string) (string, error) {
	return timed(func() (string, error) { return keyring.Get(keyringService, name) })
}

func (osKeyring) Set(name, value string) error {
	_, err := timed(func() (struct{}, error) { return struct{}{}, keyring.Set(keyringService, name, value) })
	return err
}

func (osKeyring) Delete(name string) error {
	_, err := timed(func() (struct{}, error) { return struct{}{}, keyring.Delete(keyringService, name) })
	return err
}

// openKeyring returns the OS keyring if it works here. ZSM_KEYRING=off
// turns it off; so does a failing probe (no Secret Service on D-Bus, as in
// containers and CI).
func openKeyring() (keyStore, string) {
	switch strings.ToLower(os.Getenv("ZSM_KEYRING")) {
	case "off", "0", "false", "no":
		return nil, "off"
	}
	// Linux and the BSDs reach the keyring over the D-Bus session bus.
	// Without one, the D-Bus library would try to start a bus of its own
	// (dbus-launch): a headless machine simply has no keyring.
	if runtime.GOOS != "darwin" && runtime.GOOS != "windows" && os.Getenv("DBUS_SESSION_BUS_ADDRESS") == "" {
		return nil, "unavailable (no D-Bus session bus)"
	}
	kr := osKeyring{}
	if _, err := kr.Get("probe"); err != nil && !errors.Is(err, keyring.ErrNotFound) {
		return nil, "unavailable: " + err.Error()
	}
	return kr, "available"
}
