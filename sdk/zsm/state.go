package zsm

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"github.com/google/uuid"

	"zsm.dev/zsm/sdk/keys"
	"zsm.dev/zsm/sdk/manifest"
	"zsm.dev/zsm/sdk/memberlog"
)

// State is what a device remembers between runs so that a malicious server
// cannot quietly undo what the device has already seen: the KDF parameters
// pinned per account, the highest revision seen of every vault and secret,
// and for shared vaults the membership log head and the manifest it last
// accepted per vault and the highest revision of its account's pin set
// (docs/crypto.md §5).
type State interface {
	PinnedKDF(account string) (keys.KDFParams, bool)
	PinKDF(account string, p keys.KDFParams)
	Seen(id uuid.UUID) uint64
	See(id uuid.UUID, revision uint64)
	// LogHead is the membership log head last accepted for a vault (the
	// zero Head if none); SetLogHead remembers a newer one.
	LogHead(vault uuid.UUID) memberlog.Head
	SetLogHead(vault uuid.UUID, h memberlog.Head)
	// ManifestSeen is the highest vault manifest verified for a vault;
	// SetManifestSeen remembers a newer one.
	ManifestSeen(vault uuid.UUID) manifest.Seen
	SetManifestSeen(vault uuid.UUID, m manifest.Seen)
	// PinsSeen is the highest revision of a user's pin set seen here.
	PinsSeen(user uuid.UUID) uint64
	SetPinsSeen(user uuid.UUID, revision uint64)
}

// FileState is a State kept in a JSON file. Changes are held in memory
// until Save, which replaces the file atomically.
type FileState struct {
	path string
	mu   sync.Mutex
	data fileStateData
}

type fileStateData struct {
	Version   int                       `json:"version"`
	KDF       map[string]keys.KDFParams `json:"kdf"`
	Seen      map[uuid.UUID]uint64      `json:"seen"`
	LogHeads  map[uuid.UUID]seenHash    `json:"log_heads,omitempty"`
	Manifests map[uuid.UUID]seenHash    `json:"manifests,omitempty"`
	Pins      map[uuid.UUID]uint64      `json:"pins,omitempty"`
}

// seenHash is a (sequence number or version, hash) pair as the state file
// keeps it.
type seenHash struct {
	N    uint64 `json:"n"`
	Hash []byte `json:"hash"`
}

func (h seenHash) hash() (out [32]byte) {
	copy(out[:], h.Hash)
	return out
}

// LoadFileState reads the state at path; a missing file is an empty state.
func LoadFileState(path string) (*FileState, error) {
	s := &FileState{path: path, data: fileStateData{Version: 1, KDF: map[string]keys.KDFParams{}, Seen: map[uuid.UUID]uint64{}}}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		s.init()
		return s, nil
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, &s.data); err != nil {
		return nil, fmt.Errorf("state file %s is damaged: %w", path, err)
	}
	if s.data.Version != 1 {
		return nil, fmt.Errorf("state file %s has unknown version %d", path, s.data.Version)
	}
	if s.data.KDF == nil {
		s.data.KDF = map[string]keys.KDFParams{}
	}
	if s.data.Seen == nil {
		s.data.Seen = map[uuid.UUID]uint64{}
	}
	for _, m := range []map[uuid.UUID]seenHash{s.data.LogHeads, s.data.Manifests} {
		for id, h := range m {
			if len(h.Hash) != 32 {
				return nil, fmt.Errorf("state file %s is damaged: a hash of %d bytes for %s", path, len(h.Hash), id)
			}
		}
	}
	s.init()
	return s, nil
}

func (s *FileState) init() {
	if s.data.LogHeads == nil {
		s.data.LogHeads = map[uuid.UUID]seenHash{}
	}
	if s.data.Manifests == nil {
		s.data.Manifests = map[uuid.UUID]seenHash{}
	}
	if s.data.Pins == nil {
		s.data.Pins = map[uuid.UUID]uint64{}
	}
}

// NewMemState returns a State that is not saved anywhere.
func NewMemState() *FileState {
	s := &FileState{data: fileStateData{Version: 1, KDF: map[string]keys.KDFParams{}, Seen: map[uuid.UUID]uint64{}}}
	s.init()
	return s
}

func (s *FileState) PinnedKDF(account string) (keys.KDFParams, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.data.KDF[account]
	return p, ok
}

func (s *FileState) PinKDF(account string, p keys.KDFParams) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.data.KDF[account] = p
}

func (s *FileState) Seen(id uuid.UUID) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.data.Seen[id]
}

func (s *FileState) See(id uuid.UUID, revision uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if revision > s.data.Seen[id] {
		s.data.Seen[id] = revision
	}
}

func (s *FileState) LogHead(vault uuid.UUID) memberlog.Head {
	s.mu.Lock()
	defer s.mu.Unlock()
	h, ok := s.data.LogHeads[vault]
	if !ok {
		return memberlog.Head{}
	}
	return memberlog.Head{Seq: h.N, Hash: h.hash()}
}

// SetLogHead remembers h unless a longer head is remembered already (the
// caller checked that h extends it).
func (s *FileState) SetLogHead(vault uuid.UUID, h memberlog.Head) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if h.Seq >= s.data.LogHeads[vault].N {
		s.data.LogHeads[vault] = seenHash{N: h.Seq, Hash: h.Hash[:]}
	}
}

func (s *FileState) ManifestSeen(vault uuid.UUID) manifest.Seen {
	s.mu.Lock()
	defer s.mu.Unlock()
	h, ok := s.data.Manifests[vault]
	if !ok {
		return manifest.Seen{}
	}
	return manifest.Seen{Version: h.N, Hash: h.hash()}
}

// SetManifestSeen remembers m unless a higher version is remembered.
func (s *FileState) SetManifestSeen(vault uuid.UUID, m manifest.Seen) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if m.Version >= s.data.Manifests[vault].N {
		s.data.Manifests[vault] = seenHash{N: m.Version, Hash: m.Hash[:]}
	}
}

func (s *FileState) PinsSeen(user uuid.UUID) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.data.Pins[user]
}

func (s *FileState) SetPinsSeen(user uuid.UUID, revision uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if revision > s.data.Pins[user] {
		s.data.Pins[user] = revision
	}
}

// Save writes the state to its file (0600), replacing it atomically so a
// crash leaves either the old or the new state, never half of one.
func (s *FileState) Save() error {
	if s.path == "" {
		return nil
	}
	s.mu.Lock()
	b, err := json.Marshal(s.data)
	s.mu.Unlock()
	if err != nil {
		return err
	}
	return WriteFileAtomic(s.path, b, 0o600)
}

// WriteFileAtomic writes data to a temporary file beside path, syncs it and
// renames it over path.
func WriteFileAtomic(path string, data []byte, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
