package paths

import "testing"

func TestBelow(t *testing.T) {
	for _, tc := range []struct {
		path, root, rest string
		ok               bool
	}{
		{"/a", "/a", "", true},
		{"/a/b", "/a", "b", true},
		{"/a/b/c", "/a", "b/c", true},
		{"/ab", "/a", "", false},
		{"/a", "/a/b", "", false},
		{"/b/a", "/a", "", false},
		{"/", "/", "", true},
		{"/x", "/", "x", true},
		{"/x/y", "/", "x/y", true},
		{"x", "/", "", false}, // not absolute
		{"", "/a", "", false},
		{"/a/", "/a", "", true}, // not clean: the trailing slash is no entry
	} {
		rest, ok := Below(tc.path, tc.root)
		if rest != tc.rest || ok != tc.ok {
			t.Errorf("Below(%q, %q) = %q, %v; want %q, %v", tc.path, tc.root, rest, ok, tc.rest, tc.ok)
		}
		if Within(tc.path, tc.root) != tc.ok {
			t.Errorf("Within(%q, %q) = %v", tc.path, tc.root, !tc.ok)
		}
	}
}
