package store

import (
	"go/build"
	"strings"
	"testing"
)

// The store is the storage layer only: nothing it imports, directly or
// not, is another part of authsvc (the domain packages depend on the
// store, never the reverse).
func TestImportsNoDomainPackage(t *testing.T) {
	seen := map[string]bool{}
	var walk func(path, dir string)
	walk = func(path, dir string) {
		if seen[path] {
			return
		}
		seen[path] = true
		p, err := build.Import(path, dir, 0)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if p.Goroot {
			return
		}
		if strings.HasPrefix(path, "zsm.dev/zsm/") && path != "zsm.dev/zsm/authsvc/store" {
			t.Errorf("the store depends on %s", path)
		}
		if !strings.HasPrefix(path, "zsm.dev/zsm/") {
			return // a third-party module: not ours to layer
		}
		for _, imp := range p.Imports {
			walk(imp, p.Dir)
		}
	}
	walk("zsm.dev/zsm/authsvc/store", ".")
}
