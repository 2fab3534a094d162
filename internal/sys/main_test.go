//go:build linux

package sys

import (
	"testing"

	"go.uber.org/goleak"
)

// The package's goroutines (onOwnRoot's and the FID probe's, each on a thread of its own)
// end before their functions return; so must the tests'.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
