package toolchain

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"zsm.dev/zsm/stack"
)

func repo(t *testing.T) string {
	t.Helper()
	wd, _ := os.Getwd()
	r, err := stack.FindRepoRoot(wd)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// The build lands outside the checkout, in a directory of this checkout's
// own, where the Rust workspace's other users (Taskfile.yml, tests/rustcore,
// cmd/zsmbench) put it too.
func TestResolveCacheRule(t *testing.T) {
	r := repo(t)
	sum := sha256.Sum256([]byte(r))
	own := filepath.Base(r) + "-" + hex.EncodeToString(sum[:6])

	t.Setenv("CARGO_TARGET_DIR", "")
	t.Setenv("ZSM_CACHE_DIR", "/tmp/zsm-cache-x")
	p, err := Resolve(r)
	if err != nil {
		t.Fatal(err)
	}
	if p.TargetDir != "/tmp/zsm-cache-x/cargo-target/"+own || p.ToolsDir != "/tmp/zsm-cache-x/tools/tauri-driver-"+TauriDriverVersion {
		t.Fatalf("with ZSM_CACHE_DIR: %+v", p)
	}
	if p.DebugBinary() != "/tmp/zsm-cache-x/cargo-target/"+own+"/debug/zsm-desktop" {
		t.Fatalf("binary %s", p.DebugBinary())
	}

	t.Setenv("CARGO_TARGET_DIR", "/tmp/elsewhere")
	if p, _ = Resolve(r); p.TargetDir != "/tmp/elsewhere" {
		t.Fatalf("CARGO_TARGET_DIR not honoured: %s", p.TargetDir)
	}

	t.Setenv("CARGO_TARGET_DIR", "")
	t.Setenv("ZSM_CACHE_DIR", "")
	t.Setenv("XDG_CACHE_HOME", "/tmp/xdg")
	if p, _ = Resolve(r); p.TargetDir != "/tmp/xdg/zsm/cargo-target/"+own {
		t.Fatalf("without ZSM_CACHE_DIR: %s", p.TargetDir)
	}
	if rel, err := filepath.Rel(r, p.TargetDir); err == nil && filepath.IsLocal(rel) {
		t.Fatalf("the target directory %s is inside the checkout", p.TargetDir)
	}
}

// Two checkouts never share a target directory (Cargo would take one's
// build of the workspace's crates for the other's), and Taskfile.yml's
// shell computes the same directory as CargoTargetDir.
func TestCargoTargetDirPerCheckout(t *testing.T) {
	t.Setenv("CARGO_TARGET_DIR", "")
	t.Setenv("ZSM_CACHE_DIR", "/tmp/zsm-cache-x")
	a, _ := CargoTargetDir("/src/one/zsm")
	b, _ := CargoTargetDir("/src/two/zsm")
	if a == b || filepath.Dir(a) != "/tmp/zsm-cache-x/cargo-target" || filepath.Dir(b) != filepath.Dir(a) {
		t.Fatalf("two checkouts: %s and %s", a, b)
	}

	r := repo(t)
	want, err := CargoTargetDir(r)
	if err != nil {
		t.Fatal(err)
	}
	// task --verbose prints each dynamic variable's result.
	task := exec.Command("go", "tool", "task", "--dry", "--verbose", "desktop:build")
	task.Dir = r
	out, err := task.CombinedOutput()
	if err != nil {
		t.Fatalf("task --dry: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), `result: "`+want+`"`) {
		t.Fatalf("Taskfile.yml's CARGO_TARGET_DIR is not %s:\n%s", want, out)
	}
}

func TestResolveRefusesWhatIsNoCheckout(t *testing.T) {
	if _, err := Resolve(t.TempDir()); err == nil {
		t.Fatal("a directory without desktop/src-tauri was accepted")
	}
}

// The package list is the one the build and the test need; a missing
// package is reported by name (never silently skipped).
func TestDebianPackages(t *testing.T) {
	want := map[string]bool{"libwebkit2gtk-4.1-dev": true, "webkit2gtk-driver": true, "xvfb": true, "xauth": true,
		"build-essential": true, "pkg-config": true, "xclip": true, "librsvg2-dev": true}
	if len(DebianPackages) != len(want) {
		t.Fatalf("packages %v", DebianPackages)
	}
	for _, p := range DebianPackages {
		if !want[p] {
			t.Fatalf("unexpected package %s", p)
		}
	}
	missing, err := MissingDebian(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range missing {
		if !want[m] {
			t.Fatalf("MissingDebian reported %s, not one of ours", m)
		}
	}
}
