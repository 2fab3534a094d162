// Package paths answers the one question fsnotifyd asks of paths everywhere: is this path at
// or below that directory, and what is its part below it. Paths are absolute and clean
// (filepath.Clean), as the kernel and the backend give them; the root "/" contains every
// absolute path.
package paths

import "strings"

// Below returns path's part below root ("" for root itself) and whether path is root or
// below it: Below("/a/b/c", "/a") is "b/c", true; Below("/ab", "/a") is "", false;
// Below("/x", "/") is "x", true.
func Below(path, root string) (rest string, ok bool) {
	if path == root {
		return "", true
	}
	if root == "/" {
		if strings.HasPrefix(path, "/") {
			return path[1:], true
		}
		return "", false
	}
	if len(path) > len(root) && path[len(root)] == '/' && path[:len(root)] == root {
		return path[len(root)+1:], true
	}
	return "", false
}

// Within reports whether path is root or below it.
func Within(path, root string) bool {
	_, ok := Below(path, root)
	return ok
}
