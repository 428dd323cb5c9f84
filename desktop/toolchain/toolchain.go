// Package toolchain installs and runs what the desktop app (desktop/) needs
// to be built and tested: the Debian packages WebKitGTK and the X server come
// from, tauri-driver from crates.io, the npm packages of desktop/'s
// committed package-lock.json, and the Tauri build itself.
//
// Everything is installed only when missing, and every installer is pinned:
// tauri-driver to one version with --locked, npm packages by the lockfile
// (npm ci), Debian packages by the distribution. Build output goes to a Cargo
// target directory next to the stack runner's download cache, outside the
// checkout, so that repeated runs (and fresh clones on one machine) reuse it.
package toolchain

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"zsm.dev/zsm/stack"
)

// Pinned versions.
const (
	TauriDriverVersion = "2.1.0"
	// BinaryName is the Cargo binary of desktop/src-tauri.
	BinaryName = "zsm-desktop"
)

// DebianPackages are the system packages the build and the end-to-end test
// need: WebKitGTK's headers (they bring GTK 3, libsoup 3, JavaScriptCore and
// libdbus), its WebDriver (WebKitWebDriver), an X server without a screen,
// xauth, the C toolchain, pkg-config, xclip, with which the test reads
// the clipboard from outside the app, and librsvg2-dev, which Tauri's Linux
// prerequisites name for SVG images (the app ships PNG icons today; a tray
// or SVG icon would need it).
var DebianPackages = []string{
	"libwebkit2gtk-4.1-dev", "webkit2gtk-driver", "xvfb", "xauth",
	"build-essential", "pkg-config", "xclip", "librsvg2-dev",
}

// Paths are where the desktop toolchain lives on this machine.
type Paths struct {
	Repo      string // the checkout (holds go.mod)
	Desktop   string // <Repo>/desktop
	Cache     string // the download and build cache, outside the checkout
	TargetDir string // Cargo's target directory, outside the checkout
	ToolsDir  string // cargo install --root for tauri-driver
}

// Resolve finds the directories for the checkout at repo: the cache is
// $ZSM_CACHE_DIR, else the user cache directory's zsm (~/.cache/zsm), and
// Cargo's target directory is CargoTargetDir's.
func Resolve(repo string) (Paths, error) {
	repo, err := filepath.Abs(repo)
	if err != nil {
		return Paths{}, err
	}
	if _, err := os.Stat(filepath.Join(repo, "desktop", "src-tauri", "Cargo.toml")); err != nil {
		return Paths{}, fmt.Errorf("%s is not a zsm checkout with desktop/src-tauri: %w", repo, err)
	}
	cache, err := cacheDir()
	if err != nil {
		return Paths{}, err
	}
	target, err := CargoTargetDir(repo)
	if err != nil {
		return Paths{}, err
	}
	return Paths{
		Repo:      repo,
		Desktop:   filepath.Join(repo, "desktop"),
		Cache:     cache,
		TargetDir: target,
		ToolsDir:  filepath.Join(cache, "tools", "tauri-driver-"+TauriDriverVersion),
	}, nil
}

func cacheDir() (string, error) {
	cache := os.Getenv("ZSM_CACHE_DIR")
	if cache == "" {
		user, err := os.UserCacheDir()
		if err != nil {
			return "", fmt.Errorf("no cache directory (set ZSM_CACHE_DIR): %w", err)
		}
		cache = filepath.Join(user, "zsm")
	}
	return filepath.Abs(cache)
}

// CargoTargetDir is where Cargo builds the workspace of the checkout at
// repo, for every user of it (Taskfile.yml computes the same path, and
// tests/rustcore and cmd/zsmbench call this): $CARGO_TARGET_DIR, else
// <cache>/cargo-target/<checkout's base name>-<12 hex digits of the SHA-256
// of its absolute path>. Outside the checkout, so a new clone at the same
// path (a CI runner's) reuses the last build.
//
// One directory per checkout path, because Cargo names and fingerprints a
// workspace's own crates by their path relative to the workspace root and
// their sources' modification times: two checkouts sharing one target
// directory take each other's builds for up to date, and a test would run
// the other checkout's code.
func CargoTargetDir(repo string) (string, error) {
	if d := os.Getenv("CARGO_TARGET_DIR"); d != "" {
		return d, nil
	}
	repo, err := filepath.Abs(repo)
	if err != nil {
		return "", err
	}
	cache, err := cacheDir()
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256([]byte(repo))
	return filepath.Join(cache, "cargo-target", filepath.Base(repo)+"-"+hex.EncodeToString(sum[:6])), nil
}

// DebugBinary is the app built by Build.
func (p Paths) DebugBinary() string { return filepath.Join(p.TargetDir, "debug", BinaryName) }

// TauriDriver is the installed tauri-driver.
func (p Paths) TauriDriver() string { return filepath.Join(p.ToolsDir, "bin", "tauri-driver") }

// MissingDebian lists the packages of DebianPackages that are not installed.
func MissingDebian(ctx context.Context) ([]string, error) {
	if _, err := exec.LookPath("dpkg-query"); err != nil {
		return nil, errors.New("dpkg-query is not on PATH: the desktop toolchain installer supports Debian and its derivatives only")
	}
	var missing []string
	for _, pkg := range DebianPackages {
		out, err := exec.CommandContext(ctx, "dpkg-query", "-W", "-f=${db:Status-Status}", pkg).Output()
		if err != nil || strings.TrimSpace(string(out)) != "installed" {
			missing = append(missing, pkg)
		}
	}
	return missing, nil
}

// EnsureDebian installs the missing DebianPackages with apt-get (as root;
// anyone else gets an error naming the command to run).
func EnsureDebian(ctx context.Context, log *slog.Logger) error {
	missing, err := MissingDebian(ctx)
	if err != nil || len(missing) == 0 {
		return err
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("missing Debian packages %s; install them as root: apt-get install -y --no-install-recommends %s",
			strings.Join(missing, ", "), strings.Join(missing, " "))
	}
	log.Info("installing Debian packages", "packages", missing)
	// Another installer may hold dpkg's lock: wait for it rather than fail.
	lock := []string{"-o", "DPkg::Lock::Timeout=600"}
	if err := run(ctx, "", nil, "apt-get", append(lock, "update")...); err != nil {
		return err
	}
	args := append(append(lock, "install", "-y", "--no-install-recommends"), missing...)
	if err := run(ctx, "", []string{"DEBIAN_FRONTEND=noninteractive"}, "apt-get", args...); err != nil {
		return err
	}
	if still, err := MissingDebian(ctx); err != nil || len(still) > 0 {
		return fmt.Errorf("apt-get ran, but %v are still not installed (%v)", still, err)
	}
	return nil
}

// EnsureTauriDriver installs tauri-driver TauriDriverVersion into the cache
// (cargo install --locked, so its dependencies are the ones it was released
// with) unless it is there, and returns its path.
func EnsureTauriDriver(ctx context.Context, p Paths, log *slog.Logger) (string, error) {
	bin := p.TauriDriver()
	if isExecutable(bin) {
		return bin, nil
	}
	unlock, err := lockFile(ctx, filepath.Join(p.Cache, "tauri-driver.lock"))
	if err != nil {
		return "", err
	}
	defer unlock()
	if isExecutable(bin) {
		return bin, nil
	}
	if _, err := exec.LookPath("cargo"); err != nil {
		return "", errors.New("cargo is not on PATH: install Rust (rustup) to build the desktop app and tauri-driver")
	}
	log.Info("installing tauri-driver", "version", TauriDriverVersion, "root", p.ToolsDir)
	// Its own target directory, so it never waits for (or invalidates) the app's.
	env := []string{"CARGO_TARGET_DIR=" + filepath.Join(p.Cache, "tools", "tauri-driver-build")}
	if err := run(ctx, "", env, "cargo", "install", "tauri-driver", "--version", TauriDriverVersion,
		"--locked", "--root", p.ToolsDir); err != nil {
		return "", err
	}
	if !isExecutable(bin) {
		return "", fmt.Errorf("cargo install finished but %s is missing", bin)
	}
	return bin, nil
}

// EnsureNpm installs desktop/'s npm packages from its committed lockfile
// (npm ci: exactly the locked versions, nothing resolved anew) unless
// node_modules already matches that lockfile.
func EnsureNpm(ctx context.Context, p Paths, log *slog.Logger) error {
	lock, err := os.ReadFile(filepath.Join(p.Desktop, "package-lock.json"))
	if err != nil {
		return fmt.Errorf("desktop/package-lock.json: %w", err)
	}
	sum := sha256.Sum256(lock)
	want := hex.EncodeToString(sum[:]) + "\n"
	marker := filepath.Join(p.Desktop, "node_modules", ".zsm-lockfile-sha256")
	if got, err := os.ReadFile(marker); err == nil && string(got) == want {
		return nil
	}
	if _, err := exec.LookPath("npm"); err != nil {
		return errors.New("npm is not on PATH: install Node.js and npm (apt-get install -y nodejs npm)")
	}
	log.Info("installing the desktop app's npm packages (npm ci)")
	if err := run(ctx, p.Desktop, nil, "npm", "ci", "--no-audit", "--no-fund"); err != nil {
		return err
	}
	return os.WriteFile(marker, []byte(want), 0o644)
}

// EnsureAll installs everything the build and the end-to-end test need and
// returns the path of tauri-driver.
func EnsureAll(ctx context.Context, p Paths, log *slog.Logger) (string, error) {
	if err := EnsureDebian(ctx, log); err != nil {
		return "", err
	}
	if err := EnsureNpm(ctx, p, log); err != nil {
		return "", err
	}
	return EnsureTauriDriver(ctx, p, log)
}

// Build builds the app with the Tauri CLI in the debug profile (the front
// end with Vite first, then Cargo with the assets embedded; no bundle) and
// returns the binary. Builds are serialised across processes: Cargo would
// wait for its own lock anyway, this only makes the wait explicit.
func Build(ctx context.Context, p Paths, out io.Writer) (string, error) {
	unlock, err := lockFile(ctx, filepath.Join(p.Cache, "desktop-build.lock"))
	if err != nil {
		return "", err
	}
	defer unlock()
	cmd := exec.CommandContext(ctx, "npx", "--offline", "tauri", "build", "--debug", "--no-bundle", "--ci")
	cmd.Dir = p.Desktop
	cmd.Env = append(os.Environ(), "CARGO_TARGET_DIR="+p.TargetDir, "CI=true")
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("tauri build: %w", err)
	}
	bin := p.DebugBinary()
	if !isExecutable(bin) {
		return "", fmt.Errorf("tauri build finished but %s is missing", bin)
	}
	return bin, nil
}

func isExecutable(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0
}

// run runs a command, streaming nothing; on failure the error carries the
// tail of its output.
func run(ctx context.Context, dir string, env []string, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, stack.TailLines(string(out), 40))
	}
	return nil
}

// lockFile takes an exclusive advisory lock on path until ctx ends,
// creating its directory first.
func lockFile(ctx context.Context, path string) (func(), error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	return stack.LockFile(ctx, path)
}

// Typecheck runs the TypeScript compiler over the front end (tsc --noEmit).
func Typecheck(ctx context.Context, p Paths, out io.Writer) error {
	return step(ctx, p, out, p.Desktop, "npx", "--offline", "tsc", "--noEmit")
}

// Check runs the desktop app's static checks and unit tests in the target
// directory Build uses: tsc --noEmit, cargo fmt --check, cargo clippy
// --all-targets -D warnings, cargo test (the crate's features equal the
// app build's, so the tests share its compiled dependencies).
func Check(ctx context.Context, p Paths, out io.Writer) error {
	if err := Typecheck(ctx, p, out); err != nil {
		return err
	}
	tauri := filepath.Join(p.Desktop, "src-tauri")
	for _, args := range [][]string{
		{"fmt", "--check", "-p", "zsm-desktop"},
		{"clippy", "--locked", "-p", "zsm-desktop", "--all-targets", "--", "-D", "warnings"},
		{"test", "--locked", "-p", "zsm-desktop"},
	} {
		if err := step(ctx, p, out, tauri, "cargo", args...); err != nil {
			return err
		}
	}
	return nil
}

func step(ctx context.Context, p Paths, out io.Writer, dir, name string, args ...string) error {
	fmt.Fprintf(out, "$ %s %s\n", name, strings.Join(args, " "))
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CARGO_TARGET_DIR="+p.TargetDir)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %w", name, strings.Join(args, " "), err)
	}
	return nil
}
