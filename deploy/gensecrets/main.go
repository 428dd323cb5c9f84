// Command gensecrets writes the Docker secrets docker-compose.yaml reads,
// one value per file, into -out (git-ignored deploy/secrets): random
// passwords and keys, and the two connection strings that carry the
// database passwords. Existing files are kept, so it is safe to run again;
// delete a file to make a new value (see "Rotating secrets" in
// docs/deploy.md). Passwords are hex, so they need no escaping in URLs or
// config files, and no file ends in a newline (PostgREST reads its
// connection string from the file as it is).
//
//	go run ./deploy/gensecrets -out deploy/secrets
package main

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
)

func main() {
	out := flag.String("out", "deploy/secrets", "directory for the secret files")
	flag.Parse()
	if err := run(*out); err != nil {
		fmt.Fprintln(os.Stderr, "gensecrets:", err)
		os.Exit(1)
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

// Files lists every secret docker-compose.yaml declares, with a generator.
var Files = []struct {
	Name string
	Make func() string
}{
	{"postgres_password", func() string { return randomHex(32) }},
	{"authsvc_database_url", func() string {
		return "postgres://authsvc:" + randomHex(32) + "@postgres:5432/zsm?sslmode=disable"
	}},
	{"postgrest_db_uri", func() string {
		return "postgres://authenticator:" + randomHex(32) + "@postgres:5432/zsm?sslmode=disable"
	}},
	{"redis_password", func() string { return randomHex(32) }},
	{"authsvc_server_secret", func() string { return randomHex(32) }},
	{"authsvc_key_encryption_key", func() string { return randomHex(32) }},
}

func run(out string) error {
	// The directory is private; the files in it are world-readable because
	// the containers read them as their own unprivileged users (compose
	// bind-mounts file secrets with the host's mode and owner).
	if err := os.MkdirAll(out, 0o700); err != nil {
		return err
	}
	if err := os.Chmod(out, 0o700); err != nil {
		return err
	}
	for _, f := range Files {
		path := filepath.Join(out, f.Name)
		if _, err := os.Stat(path); err == nil {
			fmt.Printf("kept  %s\n", path)
			continue
		} else if !errors.Is(err, os.ErrNotExist) {
			return err
		}
		if err := os.WriteFile(path, []byte(f.Make()), 0o644); err != nil {
			return err
		}
		fmt.Printf("wrote %s\n", path)
	}
	return nil
}
