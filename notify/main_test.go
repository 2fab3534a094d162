//go:build linux

package notify

import (
	"testing"

	"go.uber.org/goleak"
)

// Every Watcher and Guard must take its goroutines (and its backend's) with it on Close.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
