//go:build linux && race

package daemon_test

const raceEnabled = true
