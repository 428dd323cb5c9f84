package toolchain

import (
	"os"
	"path/filepath"
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

// The build lands outside the checkout, where the Rust workspace's other
// users (Taskfile.yml, tests/rustcore, cmd/zsmbench) put it too.
func TestResolveCacheRule(t *testing.T) {
	r := repo(t)

	t.Setenv("CARGO_TARGET_DIR", "")
	t.Setenv("ZSM_CACHE_DIR", "/tmp/zsm-cache-x")
	p, err := Resolve(r)
	if err != nil {
		t.Fatal(err)
	}
	if p.TargetDir != "/tmp/zsm-cache-x/cargo-target" || p.ToolsDir != "/tmp/zsm-cache-x/tools/tauri-driver-"+TauriDriverVersion {
		t.Fatalf("with ZSM_CACHE_DIR: %+v", p)
	}
	if p.DebugBinary() != "/tmp/zsm-cache-x/cargo-target/debug/zsm-desktop" {
		t.Fatalf("binary %s", p.DebugBinary())
	}

	t.Setenv("CARGO_TARGET_DIR", "/tmp/elsewhere")
	if p, _ = Resolve(r); p.TargetDir != "/tmp/elsewhere" {
		t.Fatalf("CARGO_TARGET_DIR not honoured: %s", p.TargetDir)
	}

	t.Setenv("CARGO_TARGET_DIR", "")
	t.Setenv("ZSM_CACHE_DIR", "")
	t.Setenv("XDG_CACHE_HOME", "/tmp/xdg")
	if p, _ = Resolve(r); p.TargetDir != "/tmp/xdg/zsm/cargo-target" {
		t.Fatalf("without ZSM_CACHE_DIR: %s", p.TargetDir)
	}
	if rel, err := filepath.Rel(r, p.TargetDir); err == nil && filepath.IsLocal(rel) {
		t.Fatalf("the target directory %s is inside the checkout", p.TargetDir)
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
		"build-essential": true, "pkg-config": true, "xclip": true}
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
