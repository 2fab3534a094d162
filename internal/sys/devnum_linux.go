package sys

import "golang.org/x/sys/unix"

// Major and Minor split a device number (Stat.Dev, Stat.Rdev) as /proc/self/mountinfo prints
// it ("major:minor"); Mkdev joins them.
func Major(dev uint64) uint32          { return unix.Major(dev) }
func Minor(dev uint64) uint32          { return unix.Minor(dev) }
func Mkdev(major, minor uint32) uint64 { return unix.Mkdev(major, minor) }
