package format

import (
	"fmt"
	"strconv"
	"time"
)

// TimeFormat is a compiled strftime(3) format (--timefmt), in the C locale. It is our own
// implementation, so --timefmt behaves the same everywhere and is checked when the flag is
// parsed instead of printing garbage per event.
type TimeFormat struct {
	src string
	ops []timeOp
}

type timeOp struct {
	verb  byte   // 0: literal
	lit   string // literal text
	pad   byte   // numeric padding: '0', ' ', or 0 for none
	width int    // digits: %N's, or a numeric directive's padded width
}

// Padding of the numeric directives: their width and default pad character.
var numericVerbs = map[byte]struct {
	width int
	pad   byte
}{
	'C': {1, '0'}, 'd': {2, '0'}, 'e': {2, ' '}, 'g': {2, '0'}, 'G': {1, '0'},
	'H': {2, '0'}, 'I': {2, '0'}, 'j': {3, '0'}, 'k': {2, ' '}, 'l': {2, ' '},
	'm': {2, '0'}, 'M': {2, '0'}, 's': {1, '0'}, 'S': {2, '0'}, 'u': {1, '0'},
	'U': {2, '0'}, 'V': {2, '0'}, 'w': {1, '0'}, 'W': {2, '0'}, 'y': {2, '0'},
	'Y': {1, '0'}, // glibc does not pad years
}

// Directives that stand for a sequence of others.
var compositeVerbs = map[byte]string{
	'c': "%a %b %e %H:%M:%S %Y",
	'D': "%m/%d/%y",
	'F': "%Y-%m-%d",
	'r': "%I:%M:%S %p",
	'R': "%H:%M",
	'T': "%H:%M:%S",
	'x': "%m/%d/%y",
	'X': "%H:%M:%S",
}

// Directives without padding.
const textVerbs = "aAbBhpPzZnt%"

// CompileTime compiles a strftime format. Supported: %a %A %b %B %c %C %d %D %e %F %g %G %h
// %H %I %j %k %l %m %M %n %N %p %P %r %R %s %S %t %T %u %U %V %w %W %x %X %y %Y %z %Z %%, the
// GNU padding flags - (none), _ (spaces) and 0 (zeros) on numeric directives, and the POSIX E
// and O modifiers (ignored: the C locale has no alternatives). %N is nanoseconds, as in GNU
// date: %N prints 9 digits, %3N milliseconds, %6N microseconds (1 to 9 digits, truncated).
func CompileTime(format string) (*TimeFormat, error) {
	f := &TimeFormat{src: format}
	if err := f.compile(format, true); err != nil {
		return nil, err
	}
	return f, nil
}

func (f *TimeFormat) compile(format string, top bool) error {
	lit := func(s string) {
		if n := len(f.ops); n > 0 && f.ops[n-1].verb == 0 {
			f.ops[n-1].lit += s
			return
		}
		f.ops = append(f.ops, timeOp{lit: s})
	}
	for i := 0; i < len(format); i++ {
		c := format[i]
		if c != '%' {
			j := i
			for j < len(format) && format[j] != '%' {
				j++
			}
			lit(format[i:j])
			i = j - 1
			continue
		}
		start := i
		i++
		if i >= len(format) {
			return fmt.Errorf("time format %q ends with a lone %% (write %%%% for a literal %%)", format)
		}
		var flag byte
		if c := format[i]; c == '-' || c == '_' || c == '0' {
			flag = c
			i++
		}
		width := 0
		for i < len(format) && format[i] >= '1' && format[i] <= '9' && width == 0 {
			width = int(format[i] - '0')
			i++
		}
		if i < len(format) && (format[i] == 'E' || format[i] == 'O') {
			i++
		}
		if i >= len(format) {
			return fmt.Errorf("time format %q: incomplete directive %q at the end", format, format[start:])
		}
		verb := format[i]
		directive := format[start : i+1]
		if width != 0 && verb != 'N' {
			return fmt.Errorf("time format %q: directive %q: a width is supported only for %%N (as in %%3N)", format, directive)
		}
		switch {
		case verb == 'N':
			if flag != 0 {
				return fmt.Errorf("time format %q: directive %q: %%N takes a width (1-9), not a flag", format, directive)
			}
			if width == 0 {
				width = 9
			}
			f.ops = append(f.ops, timeOp{verb: 'N', width: width})
		case compositeVerbs[verb] != "":
			if flag != 0 {
				return fmt.Errorf("time format %q: directive %q: flags apply to numeric directives only", format, directive)
			}
			if err := f.compile(compositeVerbs[verb], false); err != nil {
				return err
			}
		case verb == 'n':
			lit("\n")
		case verb == 't':
			lit("\t")
		case verb == '%':
			lit("%")
		default:
			if spec, ok := numericVerbs[verb]; ok {
				op := timeOp{verb: verb, pad: spec.pad, width: spec.width}
				switch flag {
				case '-':
					op.pad = 0
				case '_':
					op.pad = ' '
				case '0':
					op.pad = '0'
				}
				f.ops = append(f.ops, op)
				continue
			}
			if isTextVerb(verb) {
				if flag != 0 {
					return fmt.Errorf("time format %q: directive %q: flags apply to numeric directives only", format, directive)
				}
				f.ops = append(f.ops, timeOp{verb: verb})
				continue
			}
			return fmt.Errorf("time format %q: unknown directive %q (see strftime(3); %%%% is a literal %%)", format, directive)
		}
	}
	return nil
}

func isTextVerb(c byte) bool {
	for i := 0; i < len(textVerbs); i++ {
		if textVerbs[i] == c {
			return true
		}
	}
	return false
}

// String returns the format as given.
func (f *TimeFormat) String() string { return f.src }

// Format returns t formatted.
func (f *TimeFormat) Format(t time.Time) string { return string(f.Append(nil, t)) }

var (
	shortDays   = [...]string{"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"}
	longDays    = [...]string{"Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"}
	shortMonths = [...]string{"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"}
	longMonths  = [...]string{"January", "February", "March", "April", "May", "June", "July",
		"August", "September", "October", "November", "December"}
)

// Append appends t formatted to dst, in t's location, without allocating.
func (f *TimeFormat) Append(dst []byte, t time.Time) []byte {
	for i := range f.ops {
		op := &f.ops[i]
		switch op.verb {
		case 0:
			dst = append(dst, op.lit...)
		case 'a':
			dst = append(dst, shortDays[t.Weekday()]...)
		case 'A':
			dst = append(dst, longDays[t.Weekday()]...)
		case 'b', 'h':
			dst = append(dst, shortMonths[t.Month()-1]...)
		case 'B':
			dst = append(dst, longMonths[t.Month()-1]...)
		case 'p':
			if t.Hour() < 12 {
				dst = append(dst, "AM"...)
			} else {
				dst = append(dst, "PM"...)
			}
		case 'P':
			if t.Hour() < 12 {
				dst = append(dst, "am"...)
			} else {
				dst = append(dst, "pm"...)
			}
		case 'Z':
			name, _ := t.Zone()
			dst = append(dst, name...)
		case 'z':
			_, off := t.Zone()
			sign := byte('+')
			if off < 0 {
				sign, off = '-', -off
			}
			dst = append(dst, sign)
			dst = appendPadded(dst, int64(off/3600), 2, '0')
			dst = appendPadded(dst, int64(off/60%60), 2, '0')
		case 'N':
			ns := int64(t.Nanosecond())
			for w := op.width; w < 9; w++ {
				ns /= 10
			}
			dst = appendPadded(dst, ns, op.width, '0')
		default:
			dst = appendPadded(dst, numericValue(op.verb, t), op.width, op.pad)
		}
	}
	return dst
}

func numericValue(verb byte, t time.Time) int64 {
	switch verb {
	case 'C':
		return int64(t.Year() / 100)
	case 'd', 'e':
		return int64(t.Day())
	case 'g':
		y, _ := t.ISOWeek()
		return int64(y % 100)
	case 'G':
		y, _ := t.ISOWeek()
		return int64(y)
	case 'H', 'k':
		return int64(t.Hour())
	case 'I', 'l':
		h := t.Hour() % 12
		if h == 0 {
			h = 12
		}
		return int64(h)
	case 'j':
		return int64(t.YearDay())
	case 'm':
		return int64(t.Month())
	case 'M':
		return int64(t.Minute())
	case 's':
		return t.Unix()
	case 'S':
		return int64(t.Second())
	case 'u':
		wd := int64(t.Weekday())
		if wd == 0 {
			wd = 7
		}
		return wd
	case 'U': // weeks starting on Sunday; days before the first Sunday are week 0
		return int64((t.YearDay() - 1 + 7 - int(t.Weekday())) / 7)
	case 'V':
		_, w := t.ISOWeek()
		return int64(w)
	case 'w':
		return int64(t.Weekday())
	case 'W': // weeks starting on Monday
		return int64((t.YearDay() - 1 + 7 - (int(t.Weekday())+6)%7) / 7)
	case 'y':
		return int64(t.Year() % 100)
	case 'Y':
		return int64(t.Year())
	}
	return 0
}

// appendPadded appends v in decimal, padded on the left to width with pad (no padding if pad
// is 0).
func appendPadded(dst []byte, v int64, width int, pad byte) []byte {
	if v < 0 {
		dst = append(dst, '-')
		v = -v
		width--
	}
	if pad != 0 {
		n := 1
		for x := v; x >= 10; x /= 10 {
			n++
		}
		for ; n < width; n++ {
			dst = append(dst, pad)
		}
	}
	return strconv.AppendInt(dst, v, 10)
}
