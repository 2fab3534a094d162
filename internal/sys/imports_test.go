package sys

import (
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestOnlySysImportsUnix enforces the package contract: golang.org/x/sys/unix is imported by
// internal/sys and nothing else in the module (tests included), so the kernel ABI stays in one
// reviewed, fuzzed place.
func TestOnlySysImportsUnix(t *testing.T) {
	const unixPath = "golang.org/x/sys/unix"
	root := moduleRoot(t)
	self, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	files := 0
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			name := d.Name()
			if path != root && (name == "testdata" || name == "vendor" || strings.HasPrefix(name, ".") ||
				strings.HasPrefix(name, "_")) {
				return filepath.SkipDir
			}
			// A nested module is not part of this one.
			if path != root {
				if _, err := os.Stat(filepath.Join(path, "go.mod")); err == nil {
					return filepath.SkipDir
				}
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") {
			return nil
		}
		files++
		f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		for _, imp := range f.Imports {
			p, err := strconv.Unquote(imp.Path.Value)
			if err != nil {
				return err
			}
			if p == unixPath && filepath.Dir(path) != self {
				rel, _ := filepath.Rel(root, path)
				t.Errorf("%s imports %s; only internal/sys may (use the wrappers and constants there)", rel, unixPath)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 10 {
		t.Fatalf("walked only %d .go files under %s: wrong module root?", files, root)
	}
}

// moduleRoot finds the directory of go.mod above the package directory.
func moduleRoot(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			// go test runs tests in the package directory; a test binary run elsewhere
			// cannot see the module.
			t.Skip("no go.mod above the working directory: not run by go test in the module")
		}
		dir = parent
	}
}
