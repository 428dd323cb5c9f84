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
)

// State is what a device remembers between runs so that a malicious server
// cannot quietly undo what the device has already seen: the KDF parameters
// pinned per account, and the highest revision seen of every vault and
// secret.
type State interface {
	PinnedKDF(account string) (keys.KDFParams, bool)
	PinKDF(account string, p keys.KDFParams)
	Seen(id uuid.UUID) uint64
	See(id uuid.UUID, revision uint64)
}

// FileState is a State kept in a JSON file. Changes are held in memory
// until Save, which replaces the file atomically.
type FileState struct {
	path string
	mu   sync.Mutex
	data fileStateData
}

type fileStateData struct {
	Version int                       `json:"version"`
	KDF     map[string]keys.KDFParams `json:"kdf"`
	Seen    map[uuid.UUID]uint64      `json:"seen"`
}

// LoadFileState reads the state at path; a missing file is an empty state.
func LoadFileState(path string) (*FileState, error) {
	s := &FileState{path: path, data: fileStateData{Version: 1, KDF: map[string]keys.KDFParams{}, Seen: map[uuid.UUID]uint64{}}}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
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
	return s, nil
}

// NewMemState returns a State that is not saved anywhere.
func NewMemState() *FileState {
	return &FileState{data: fileStateData{Version: 1, KDF: map[string]keys.KDFParams{}, Seen: map[uuid.UUID]uint64{}}}
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
