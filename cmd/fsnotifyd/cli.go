//go:build linux

package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Exit statuses: 0 success, 1 a runtime error, 2 a usage error.
const (
	exitOK      = 0
	exitRuntime = 1
	exitUsage   = 2
)

// flagSet is a flag.FlagSet with GNU habits: flags may follow the positional arguments, a
// flag may have a short and a long name, and errors are one line with what to do.
type flagSet struct {
	*flag.FlagSet
	cmd      string
	args     []string // as given to parse, for usageError
	synopsis string
	help     string // description and examples, printed by --help
}

func newFlagSet(cmd, synopsis, help string) *flagSet {
	fs := &flagSet{FlagSet: flag.NewFlagSet(cmd, flag.ContinueOnError), cmd: cmd, synopsis: synopsis, help: help}
	fs.SetOutput(io.Discard) // we print errors ourselves, in one line
	return fs
}

// boolVar and friends register a flag under each of its names ("r", "recursive").
func (fs *flagSet) boolVar(p *bool, names string, usage string) {
	for _, n := range strings.Split(names, ",") {
		fs.BoolVar(p, n, *p, usage)
	}
}

func (fs *flagSet) stringVar(p *string, names string, usage string) {
	for _, n := range strings.Split(names, ",") {
		fs.StringVar(p, n, *p, usage)
	}
}

func (fs *flagSet) intVar(p *int, names string, usage string) {
	for _, n := range strings.Split(names, ",") {
		fs.IntVar(p, n, *p, usage)
	}
}

func (fs *flagSet) durationVar(p *time.Duration, names string, usage string) {
	for _, n := range strings.Split(names, ",") {
		fs.Var((*durationValue)(p), n, usage)
	}
}

func (fs *flagSet) value(v flag.Value, names string, usage string) {
	for _, n := range strings.Split(names, ",") {
		fs.Var(v, n, usage)
	}
}

// intFlag is a whole-number flag's name and value, for negativeFlag.
type intFlag struct {
	name string
	v    int
}

// negativeFlag is the error of the first of flags whose value is below 0, naming that flag
// and its value ("-n -3: must not be negative"); nil when none is.
func negativeFlag(flags ...intFlag) error {
	for _, f := range flags {
		if f.v < 0 {
			return fmt.Errorf("%s %d: must not be negative", f.name, f.v)
		}
	}
	return nil
}

// durationValue accepts Go durations ("300ms", "5s", "1h30m") and plain seconds ("5", "0.5",
// "1e3"), as inotifywait's -t does (parseDuration).
type durationValue time.Duration

func (d *durationValue) String() string { return time.Duration(*d).String() }
func (d *durationValue) Set(s string) error {
	v, err := parseDuration(s)
	if err != nil {
		return err
	}
	*d = durationValue(v)
	return nil
}

// durationForms is what a duration flag accepts, for its errors.
const durationForms = "want a duration such as 300ms, 5s or 1h30m, or a number of seconds such as 5 or 0.5"

// parseDuration parses a duration flag's value, whole: a Go duration (time.ParseDuration) or a
// decimal number of seconds (strconv.ParseFloat). It refuses trailing text ("1h30", "2,5"), a
// negative value, a positive one below a nanosecond (it would be 0), NaN, an infinity and a
// value beyond time.Duration's range (about 292 years), saying what it accepts; flag puts the
// flag's name and the value before the error.
func parseDuration(s string) (time.Duration, error) {
	// A positive value below a nanosecond would come out 0, which some flags take as "no
	// bound" (--deadline 0 waits forever): refused. A zero is written with no digit but 0
	// before an exponent.
	mantissa := s
	if i := strings.IndexAny(s, "eE"); i >= 0 {
		mantissa = s[:i]
	}
	tooShort := func(v time.Duration) bool { return v == 0 && strings.ContainsAny(mantissa, "123456789") }
	v, derr := time.ParseDuration(s)
	if derr == nil {
		if v < 0 {
			return 0, fmt.Errorf("negative (%s)", durationForms)
		}
		if tooShort(v) {
			return 0, fmt.Errorf("shorter than a nanosecond, which would be 0 (%s)", durationForms)
		}
		return v, nil
	}
	secs, err := strconv.ParseFloat(s, 64)
	tooLong := fmt.Errorf("too long: at most %d seconds (%s)", math.MaxInt64/int64(time.Second), durationForms)
	switch {
	case errors.Is(err, strconv.ErrRange):
		return 0, tooLong
	case err != nil || strings.ContainsAny(s, "xX"): // 0x1p4 is a hexadecimal float: not plain seconds
		// time.ParseDuration's complaint says what is wrong ("missing unit in duration").
		msg := strings.TrimPrefix(derr.Error(), "time: ")
		if strings.Contains(s, ",") {
			msg = "a comma (write a decimal point: 2.5)"
		}
		return 0, fmt.Errorf("%s (%s)", msg, durationForms)
	case math.IsNaN(secs) || math.IsInf(secs, 0):
		return 0, fmt.Errorf("not a finite number of seconds (%s)", durationForms)
	case secs < 0:
		return 0, fmt.Errorf("negative (%s)", durationForms)
	case secs*float64(time.Second) >= math.MaxInt64: // 2^63 as a float64: already out of range
		return 0, tooLong
	}
	v = time.Duration(secs * float64(time.Second))
	if mantissa == s {
		// Digits and a point: read exactly as that many seconds (a float64 holds 2^53
		// nanoseconds, some 104 days, exactly; 7000000001 s is not).
		if v, derr = time.ParseDuration(s + "s"); derr != nil {
			return 0, tooLong
		}
	}
	if tooShort(v) {
		return 0, fmt.Errorf("shorter than a nanosecond, which would be 0 (%s)", durationForms)
	}
	return v, nil
}

// daemonFlag is --daemon or --daemon=SOCKET.
type daemonFlag struct {
	on     bool
	socket string
}

func (d *daemonFlag) String() string   { return d.socket }
func (d *daemonFlag) IsBoolFlag() bool { return true }
func (d *daemonFlag) Set(s string) error {
	switch s {
	case "true":
		d.on = true
	case "false":
		d.on = false
	default:
		d.on, d.socket = true, s
	}
	return nil
}

// errHelp is returned by parse when --help was asked for (and printed).
var errHelp = errors.New("help")

// parse parses args, allowing flags after positional arguments ("watch DIR -e create"); "--"
// ends the flags. On --help it prints the help to stdout and returns errHelp.
func (fs *flagSet) parse(args []string) ([]string, error) {
	fs.args = args
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fs.printHelp(os.Stdout)
				return nil, errHelp
			}
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if len(args) > 0 && len(rest) < len(args) && args[len(args)-len(rest)-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// longFlag matches a long flag's name in flag's messages ("flag -timeout", "flag -bogus").
var longFlag = regexp.MustCompile(`flag -([[:alnum:]][-[:alnum:]]+)`)

// parseArgs is parse for a subcommand: on --help, or a usage error (which it prints), ok is
// false and status is the exit status to return.
func (fs *flagSet) parseArgs(args []string) (rest []string, status int, ok bool) {
	rest, err := fs.parse(args)
	switch {
	case err == errHelp:
		return nil, exitOK, false
	case err != nil:
		return nil, fs.usageError(err), false
	}
	if err := fs.daemonSocketArg(rest); err != nil {
		return nil, fs.usageError(err), false
	}
	return rest, 0, true
}

// daemonSocketArg refuses "--daemon SOCKET": --daemon takes its socket only as
// --daemon=SOCKET, so SOCKET was a PATH to watch, trace or guard, and the default socket was
// dialled ("daemon unavailable at /run/fsnotifyd/fsnotifyd.sock"), or, with a daemon there,
// the socket file was watched without a word. A PATH that is a unix socket right after
// --daemon is taken for that.
func (fs *flagSet) daemonSocketArg(rest []string) error {
	for i, a := range fs.args[:max(len(fs.args)-1, 0)] {
		if a != "--daemon" && a != "-daemon" {
			continue
		}
		next := fs.args[i+1]
		if !slices.Contains(rest, next) {
			continue
		}
		if fi, err := os.Stat(next); err == nil && fi.Mode()&os.ModeSocket != 0 {
			return fmt.Errorf("--daemon takes its socket as --daemon=SOCKET: %s is a socket, not a path (write --daemon=%s)", next, next)
		}
	}
	return nil
}

// parseNoArgs is parseArgs for a subcommand that takes no arguments besides its flags.
func (fs *flagSet) parseNoArgs(args []string) (status int, ok bool) {
	rest, status, ok := fs.parseArgs(args)
	if ok && len(rest) > 0 {
		return fs.usageError(fmt.Errorf("unexpected argument %q", rest[0])), false
	}
	return status, ok
}

// usageError prints a one-line usage error and returns exitUsage.
func (fs *flagSet) usageError(err error) int {
	msg := fs.wantOfParseError(err.Error())
	// flag's messages: "flag provided but not defined: -x", "invalid value ... for flag -e: ...".
	if name, ok := strings.CutPrefix(msg, "flag provided but not defined: -"); ok && slices.Contains(fs.args, "-"+name) {
		// Spelt as given (flag drops a second dash). inotifywait's habit, -mr, is taken by
		// flag for one flag, "mr".
		if fs.grouped(name) {
			letters := strings.Split(name, "")
			return fs.usageErrorLine(fmt.Sprintf("unknown flag -%s: one-letter flags cannot be grouped; write -%s", name, strings.Join(letters, " -")))
		}
		return fs.usageErrorLine("unknown flag -" + name)
	}
	msg = strings.Replace(msg, "flag provided but not defined: ", "unknown flag ", 1)
	// "flag needs an argument: -exclude": the flag, spelt as the help spells it, first.
	if name, ok := strings.CutPrefix(msg, "flag needs an argument: -"); ok {
		if len(name) > 1 {
			name = "-" + name
		}
		msg = "-" + name + " needs an argument"
	}
	// flag names every flag with one dash; the help spells long ones with two.
	msg = longFlag.ReplaceAllString(msg, "flag --$1")
	return fs.usageErrorLine(msg)
}

func (fs *flagSet) usageErrorLine(msg string) int {
	fmt.Fprintf(os.Stderr, "fsnotifyd %s: %s (see \"fsnotifyd %s --help\")\n", fs.cmd, msg, fs.cmd)
	return exitUsage
}

// grouped reports whether name, an unknown flag given with one dash (-mr), is one-letter
// flags run together: each letter is one.
func (fs *flagSet) grouped(name string) bool {
	if len(name) < 2 {
		return false
	}
	for _, c := range name {
		if fs.Lookup(string(c)) == nil {
			return false
		}
	}
	return true
}

// parseErrorMsg matches flag's message for a value strconv refused: "invalid value "abc" for
// flag -n: parse error", "invalid boolean value "maybe" for -json: parse error".
var parseErrorMsg = regexp.MustCompile(`^invalid (?:boolean )?value ("(?s:.*)") for (?:flag )?-([-[:alnum:]]+): parse error$`)

// wantOfParseError rewrites flag's "parse error" for a number or boolean flag into what the
// flag wants; any other message is returned as it is.
func (fs *flagSet) wantOfParseError(msg string) string {
	m := parseErrorMsg.FindStringSubmatch(msg)
	if m == nil {
		return msg
	}
	f := fs.Lookup(m[2])
	if f == nil {
		return msg
	}
	g, ok := f.Value.(flag.Getter)
	if !ok {
		return msg
	}
	want := ""
	switch g.Get().(type) {
	case bool:
		want = "want true or false"
	case int, int64, uint, uint64:
		want = "want a whole number"
	default:
		return msg
	}
	return fmt.Sprintf("invalid value %s for flag -%s: %s", m[1], m[2], want)
}

func (fs *flagSet) printHelp(w io.Writer) {
	fmt.Fprintf(w, "Usage: fsnotifyd %s %s\n\n%s\nFlags:\n", fs.cmd, fs.synopsis, strings.TrimLeft(fs.help, "\n"))
	// Group the aliases of each flag on one line.
	type entry struct {
		names []string
		usage string
		def   string
		isB   bool
	}
	var entries []*entry
	byUsage := map[string]*entry{}
	fs.VisitAll(func(f *flag.Flag) {
		key := f.Usage
		e := byUsage[key]
		if e == nil {
			e = &entry{usage: f.Usage, def: f.DefValue}
			if bf, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && bf.IsBoolFlag() {
				e.isB = true
			}
			byUsage[key] = e
			entries = append(entries, e)
		}
		e.names = append(e.names, f.Name)
	})
	for _, e := range entries {
		var names []string
		for _, n := range e.names {
			if len(n) == 1 {
				names = append([]string{"-" + n}, names...)
			} else {
				names = append(names, "--"+n)
			}
		}
		fmt.Fprintf(w, "  %s\n      %s", strings.Join(names, ", "), e.usage)
		// A usage that states its default ("(default: the number of CPUs)") is not given
		// a second one, which could contradict it.
		if !e.isB && e.def != "" && e.def != "0" && e.def != "0s" && e.def != "[]" && !strings.Contains(e.usage, "(default") {
			fmt.Fprintf(w, " (default %s)", e.def)
		}
		fmt.Fprintln(w)
	}
}

// fail prints a one-line runtime error and returns exitRuntime.
func fail(cmd string, err error) int {
	fmt.Fprintf(os.Stderr, "fsnotifyd %s: %v\n", cmd, err)
	return exitRuntime
}
