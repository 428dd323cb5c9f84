package stack

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// SchemathesisVersion is the schemathesis release the API fuzz tests run
// (tests/apifuzz), pinned with its dependencies in
// schemathesis-requirements.txt.
const SchemathesisVersion = "4.32.5"

//go:embed schemathesis-requirements.txt
var schemathesisRequirements []byte

// EnsureSchemathesis installs (once, idempotently, safe against concurrent
// callers) the pinned schemathesis from PyPI into a virtual environment in
// cacheDir and returns the path of its `st` command. It needs python3 with
// the venv module; as root it installs Debian's python3-venv when that is
// missing. Any failure is returned: the caller's tests fail, they never
// skip.
func EnsureSchemathesis(ctx context.Context, cacheDir string, log logger) (string, error) {
	dir := filepath.Join(cacheDir, "schemathesis-"+SchemathesisVersion)
	st := filepath.Join(dir, "bin", "st")
	marker := filepath.Join(dir, ".installed")
	if installedWith(marker, schemathesisRequirements) {
		return st, nil
	}
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return "", fmt.Errorf("create cache dir: %w", err)
	}
	unlock, err := LockFile(ctx, filepath.Join(cacheDir, "schemathesis.lock"))
	if err != nil {
		return "", err
	}
	defer unlock()
	if installedWith(marker, schemathesisRequirements) {
		return st, nil
	}
	log.Info("installing schemathesis from PyPI", "version", SchemathesisVersion, "dir", dir)
	// A virtual environment records its own path, so it is made where it
	// stays; a half-made one from an interrupted install is removed first.
	if err := os.RemoveAll(dir); err != nil {
		return "", err
	}
	if err := makeVenv(ctx, dir, log); err != nil {
		return "", err
	}
	req := filepath.Join(dir, "requirements.txt")
	if err := os.WriteFile(req, schemathesisRequirements, 0o644); err != nil {
		return "", err
	}
	cmd := exec.CommandContext(ctx, filepath.Join(dir, "bin", "python"), "-m", "pip", "install",
		"--no-input", "--disable-pip-version-check", "--no-cache-dir", "-r", req)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("pip install of schemathesis %s failed: %w\n%s", SchemathesisVersion, err, TailLines(string(out), 40))
	}
	out, err := exec.CommandContext(ctx, st, "--version").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("%s --version: %w\n%s", st, err, out)
	}
	if want := "st, version " + SchemathesisVersion; string(out) != want+"\n" {
		return "", fmt.Errorf("installed schemathesis says %q, want %q", out, want)
	}
	if err := os.WriteFile(marker, schemathesisRequirements, 0o644); err != nil {
		return "", err
	}
	return st, nil
}

// installedWith reports whether an install finished with exactly these
// requirements.
func installedWith(marker string, req []byte) bool {
	b, err := os.ReadFile(marker)
	return err == nil && string(b) == string(req)
}

// makeVenv creates a virtual environment at dir with python3, installing
// Debian's python3-venv first when the module is missing and we are root.
func makeVenv(ctx context.Context, dir string, log logger) error {
	venv := func() ([]byte, error) {
		return exec.CommandContext(ctx, "python3", "-m", "venv", dir).CombinedOutput()
	}
	if _, err := exec.LookPath("python3"); err != nil {
		return errors.New("python3 is not on PATH: install Python 3.10 or later (apt-get install -y python3 python3-venv) to run schemathesis")
	}
	out, err := venv()
	if err == nil {
		return nil
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("python3 -m venv: %w\n%s(install python3-venv)", err, out)
	}
	log.Info("installing Debian's python3-venv", "reason", TailLines(string(out), 3))
	os.RemoveAll(dir)
	for _, args := range [][]string{{"apt-get", "update"}, {"apt-get", "install", "-y", "--no-install-recommends", "python3-venv", "python3-pip"}} {
		cmd := exec.CommandContext(ctx, args[0], args[1:]...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		if o, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("%v: %w\n%s", args, err, TailLines(string(o), 20))
		}
	}
	if out, err := venv(); err != nil {
		return fmt.Errorf("python3 -m venv: %w\n%s", err, out)
	}
	return nil
}
