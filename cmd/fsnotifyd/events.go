//go:build linux

package main

import (
	"flag"
	"fmt"
	"slices"
	"strings"

	"github.com/fsnotifyd/fsnotifyd/engine"
	"github.com/fsnotifyd/fsnotifyd/fsevent"
	"github.com/fsnotifyd/fsnotifyd/internal/format"
)

// given reports whether a flag of any of the comma-separated names was on the command line,
// even with an empty value.
func (fs *flagSet) given(names string) bool {
	want := strings.Split(names, ",")
	set := false
	fs.Visit(func(f *flag.Flag) {
		if slices.Contains(want, f.Name) {
			set = true
		}
	})
	return set
}

// eventsFlagNames are the names of watch's and trace's -e.
const eventsFlagNames = "e,event,events"

// parseEventsFlag parses -e of watch and trace: not given, it asks for nothing (given is
// false: the command's default); given, it must name at least one event, so that an empty
// list (-e "", as a variable that expanded to nothing gives) is the usage error "-e ," is,
// not "all".
func parseEventsFlag(fs *flagSet, list string) (m engine.Mask, given bool, err error) {
	if !fs.given(eventsFlagNames) {
		return 0, false, nil
	}
	if m, err = format.ParseEvents(list); err != nil {
		return 0, true, fmt.Errorf("-e: %w", err)
	}
	return m, true, nil
}

// eventNames lists, as -e spells them, the events wholly in m ("open, access, ...").
func eventNames(m engine.Mask) string {
	var names []string
	for _, n := range format.EventNames() {
		if b, ok := fsevent.MaskByName(n); ok && b&^m == 0 {
			names = append(names, n)
		}
	}
	return strings.Join(names, ", ")
}

// checkTimefmt checks watch's and trace's --timefmt on its own, when given, so that its errors
// name it: also without a %T to use it (docs/trace-format.md), and before --format, whose
// errors are its own.
func checkTimefmt(timefmt string) error {
	if timefmt == "" {
		return nil
	}
	if _, err := format.CompileTime(timefmt); err != nil {
		return fmt.Errorf("--timefmt: %w", err)
	}
	return nil
}
