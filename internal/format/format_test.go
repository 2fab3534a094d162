package format

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/fsnotifyd/fsnotifyd/engine"
	"github.com/fsnotifyd/fsnotifyd/internal/sys"
)

func TestParseEvents(t *testing.T) {
	tests := []struct {
		list string
		want engine.Mask
	}{
		{"access", engine.Access},
		{"modify", engine.Modify},
		{"attrib", engine.Attrib},
		{"close_write", engine.CloseWrite},
		{"close_nowrite", engine.CloseNoWrite},
		{"close", engine.CloseWrite | engine.CloseNoWrite},
		{"open", engine.Open},
		{"open_exec", engine.OpenExec},
		{"moved_from", engine.MovedFrom},
		{"moved_to", engine.MovedTo},
		{"move", engine.MovedFrom | engine.MovedTo},
		{"create", engine.Create},
		{"delete", engine.Delete},
		{"delete_self", engine.DeleteSelf},
		{"move_self", engine.MoveSelf},
		{"rename", engine.Rename},
		{"create,delete,close_write", engine.Create | engine.Delete | engine.CloseWrite},
		{"CREATE, Delete ,create", engine.Create | engine.Delete},
	}
	for _, tt := range tests {
		got, err := ParseEvents(tt.list)
		if err != nil || got != tt.want {
			t.Errorf("ParseEvents(%q) = %v, %v; want %v", tt.list, got, err, tt.want)
		}
	}
	valid := "access, modify, attrib, close_write, close_nowrite, close, open, open_exec, moved_from, moved_to, move, create, delete, delete_self, move_self, rename"
	errs := []struct{ list, want string }{
		{"opne", `unknown event "opne" (want ` + valid + `)`},
		{"create,write", `unknown event "write" (want ` + valid + `)`},
		{"open_perm", `unknown event "open_perm"`},
		{"", `empty event list (want a comma list of ` + valid + `)`},
		{"  ", `empty event list`},
		{"create,", `empty event name in "create," (want a comma list of`},
		{",create", `empty event name in ",create"`},
	}
	for _, tt := range errs {
		_, err := ParseEvents(tt.list)
		if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
			t.Errorf("ParseEvents(%q) = %v, want %s", tt.list, err, tt.want)
		}
	}
	if strings.Join(EventNames(), ", ") != valid {
		t.Errorf("EventNames = %v", EventNames())
	}
}

func TestInotifyNames(t *testing.T) {
	tests := []struct {
		m     engine.Mask
		isDir bool
		sep   string
		want  string
	}{
		{engine.CloseWrite, false, ",", "CLOSE_WRITE,CLOSE"},
		{engine.CloseNoWrite, true, ",", "CLOSE_NOWRITE,CLOSE,ISDIR"},
		{engine.Create, true, ",", "CREATE,ISDIR"},
		{engine.Create | engine.OnDir, false, ",", "CREATE"}, // OnDir alone is Record's business
		{engine.Open | engine.OpenExec, false, ",", "OPEN,OPEN_EXEC"},
		{engine.Modify | engine.Access, false, "|", "ACCESS|MODIFY"},
		{engine.MoveSelf | engine.DeleteSelf, false, ",", "DELETE_SELF,MOVE_SELF"},
		{engine.QueueOverflow, false, ",", "Q_OVERFLOW"},
		{engine.Rename | engine.MovedFrom, false, ",", "MOVED_FROM,RENAME"},
		{engine.OpenPerm | engine.PreAccess | engine.FSError, false, ",", "FS_ERROR,OPEN_PERM,PRE_ACCESS"},
		{engine.Attrib | 0x2000 | 0x200000000, false, " ", "ATTRIB 0x2000 0x200000000"},
		{0, false, ",", ""},
		{0, true, ",", "ISDIR"},
		{engine.Delete, true, "→", "DELETE→ISDIR"},
	}
	for _, tt := range tests {
		if got := InotifyNames(tt.m, tt.isDir, tt.sep); got != tt.want {
			t.Errorf("InotifyNames(%v, %v, %q) = %q, want %q", tt.m, tt.isDir, tt.sep, got, tt.want)
		}
	}
}

func TestLetters(t *testing.T) {
	tests := []struct {
		m    engine.Mask
		want string
	}{
		{engine.Open, "O"},
		{engine.Access, "R"},
		{engine.Modify, "W"},
		{engine.CloseWrite, "CW"},
		{engine.CloseNoWrite, "C"},
		{engine.CloseNoWrite | engine.Open, "CO"},
		{engine.Modify | engine.CloseWrite | engine.Open, "CWO"},
		{engine.Access | engine.Open | engine.CloseNoWrite, "RCO"},
		{engine.Open | engine.OpenExec, "OE"},
		{engine.Create, "+"},
		{engine.Delete, "D"},
		{engine.DeleteSelf, "D"},
		{engine.MovedFrom, "<"},
		{engine.MoveSelf, "<"},
		{engine.MovedTo, ">"},
		{engine.Rename, "<>"},
		{engine.Attrib, "A"},
		{engine.FSError, "F"},
		{engine.QueueOverflow, "!"},
		{engine.OpenPerm, "O"},
		{engine.AccessPerm, "R"},
		{engine.PreAccess, "R"},
		{engine.OpenExecPerm, "E"},
		{engine.OnDir | engine.Create, "+"},
		{0, ""},
	}
	for _, tt := range tests {
		if got := Letters(tt.m); got != tt.want {
			t.Errorf("Letters(%v) = %q, want %q", tt.m, got, tt.want)
		}
	}
}

var when = time.Date(2024, 5, 1, 12, 34, 56, 789012345, cest)

func TestFormat(t *testing.T) {
	file := &Record{Time: when, Watched: "/srv/dir/", Name: "a b.txt", Path: "/srv/dir/a b.txt",
		Mask: engine.CloseWrite, Pid: 4242, Comm: "cp"}
	noSlash := &Record{Watched: "/srv/dir", Name: "f", Mask: engine.Create}
	dirEvent := &Record{Watched: "/srv/dir", Name: "sub", Mask: engine.Create, IsDir: true}
	dirSelf := &Record{Watched: "/srv/dir", Mask: engine.Attrib | engine.OnDir}
	fileSelf := &Record{Watched: "/etc/passwd", Mask: engine.Modify}
	root := &Record{Watched: "/", Name: "x", Mask: engine.Delete}
	unknown := &Record{Watched: "/w", Name: "n", Mask: engine.Open}
	tests := []struct {
		format, timefmt string
		r               *Record
		want            string
	}{
		{"", "", file, "/srv/dir/ CLOSE_WRITE,CLOSE a b.txt"},
		{DefaultFormat, "", noSlash, "/srv/dir/ CREATE f"},
		{"", "", dirEvent, "/srv/dir/ CREATE,ISDIR sub"},
		{"", "", dirSelf, "/srv/dir/ ATTRIB,ISDIR "},
		{"", "", fileSelf, "/etc/passwd MODIFY "},
		{"%w%f", "", root, "/x"},
		{"%w%f", "", noSlash, "/srv/dir/f"},
		{"%w|%f|%e", "", file, "/srv/dir/|a b.txt|CLOSE_WRITE,CLOSE"},
		{"%:e", "", dirEvent, "CREATE:ISDIR"},
		{"%|e", "", file, "CLOSE_WRITE|CLOSE"},
		{"% e", "", file, "CLOSE_WRITE CLOSE"},
		{"%→e", "", file, "CLOSE_WRITE→CLOSE"},
		{"%.e.", "", file, "CLOSE_WRITE.CLOSE."},
		{"%T %w%f", "%H:%M:%S", file, "12:34:56 /srv/dir/a b.txt"},
		{"%T", "%F %T.%6N %z", file, "2024-05-01 12:34:56.789012 +0200"},
		{"[%T]", "%s", noSlash, "[]"}, // unknown time: nothing, never invented
		{"%p %c", "", file, "4242 cp"},
		{"%p %c", "", unknown, "? ?"},
		{"100%%", "", file, "100%"},
		{"%%e %%w %%%%", "", file, "%e %w %%"},
		{"%%%e", "", noSlash, "%CREATE"},
		{"%f%0", "", file, "a b.txt\x00"},
		{"%f%n", "", file, "a b.txt\n"},
		{"no directives", "", file, "no directives"},
		{"%we", "", noSlash, "/srv/dir/e"},
		{"%fe", "", noSlash, "fe"},
		{"%Te", "%Y", file, "2024e"},
		{"%0e", "", file, "\x00e"},
		{"é%fé", "", noSlash, "éfé"},
		{"%f", "", &Record{Watched: "/w", Name: "new\nline"}, "new\nline"},
		{"%e", "", &Record{Mask: engine.QueueOverflow}, "Q_OVERFLOW"},
	}
	for _, tt := range tests {
		f, err := Compile(tt.format, tt.timefmt)
		if err != nil {
			t.Errorf("Compile(%q, %q): %v", tt.format, tt.timefmt, err)
			continue
		}
		if got := string(f.Append(nil, tt.r)); got != tt.want {
			t.Errorf("Compile(%q, %q): got %q, want %q", tt.format, tt.timefmt, got, tt.want)
		}
	}
	if MustCompile("", "").String() != DefaultFormat {
		t.Error("String of the default format")
	}
}

// TestCSV: -c lines as inotifywait -m -c prints them (inotify-tools 3.22.6.0, run on this
// machine for the same names): a field is quoted when it holds a comma, a quote or a newline,
// or begins or ends with a blank; its quotes are doubled; an empty %w is left out.
func TestCSV(t *testing.T) {
	tests := []struct {
		r    *Record
		want string
	}{
		{&Record{Watched: "d", Name: "a,b", Mask: engine.Create}, `d/,CREATE,"a,b"`},
		{&Record{Watched: "d/", Name: "plain", Mask: engine.MovedTo}, `d/,MOVED_TO,plain`},
		{&Record{Watched: "d", Name: `q"t`, Mask: engine.CloseWrite}, `d/,"CLOSE_WRITE,CLOSE","q""t"`},
		{&Record{Watched: "d", Name: " sp", Mask: engine.Open}, `d/,OPEN," sp"`},
		{&Record{Watched: "d", Name: "sp ", Mask: engine.Open}, `d/,OPEN,"sp "`},
		{&Record{Watched: "d", Name: "in ner", Mask: engine.Open}, `d/,OPEN,in ner`},
		{&Record{Watched: "d", Name: "sub,1", Mask: engine.Create, IsDir: true}, `d/,"CREATE,ISDIR","sub,1"`},
		{&Record{Watched: "d/sub,1", Mask: engine.DeleteSelf | engine.OnDir}, `"d/sub,1/",DELETE_SELF,`},
		{&Record{Watched: "/etc/passwd", Mask: engine.Modify}, `/etc/passwd,MODIFY,`},
		{&Record{Watched: "d", Name: "new\nline", Mask: engine.Delete}, "d/,DELETE,\"new\nline\""},
		{&Record{Watched: "d", Name: `"`, Mask: engine.Delete}, `d/,DELETE,""""`},
		{&Record{Watched: `a"b`, Name: `x`, Mask: engine.Delete}, `"a""b/",DELETE,x`},
		{&Record{Watched: "d", Name: "tab\there", Mask: engine.Delete}, "d/,DELETE,tab\there"},
		{&Record{Mask: engine.QueueOverflow}, "Q_OVERFLOW,"},
	}
	for _, tt := range tests {
		if got := string(CSV{}.Append([]byte("prefix:"), tt.r)); got != "prefix:"+tt.want {
			t.Errorf("%+v: got %q, want %q", tt.r, got, "prefix:"+tt.want)
		}
	}
}

// TestAppendPath: what --exclude and --include match is %w%f.
func TestAppendPath(t *testing.T) {
	tests := []struct {
		r    *Record
		want string
	}{
		{&Record{Watched: "d", Name: "f", Mask: engine.Create}, "d/f"},
		{&Record{Watched: "d/", Name: "f", Mask: engine.Create}, "d/f"},
		{&Record{Watched: "d/sub", Mask: engine.DeleteSelf | engine.OnDir}, "d/sub/"},
		{&Record{Watched: "/etc/passwd", Mask: engine.Modify}, "/etc/passwd"},
	}
	for _, tt := range tests {
		if got := string(AppendPath(nil, tt.r)); got != tt.want {
			t.Errorf("%+v: got %q, want %q", tt.r, got, tt.want)
		}
	}
}

func TestFormatErrors(t *testing.T) {
	tests := []struct{ format, timefmt, want string }{
		{"%", "", `format "%" ends with a lone % (write %% for a literal %)`},
		{"%w %f %", "", `format "%w %f %" ends with a lone %`},
		{"%x", "", `format "%x": unknown directive "%x" (want %w %f %e %Xe %T %p %c %0 %n or %%)`},
		{"%w %Z", "", `format "%w %Z": unknown directive "%Z"`},
		{"%é", "", `format "%é": unknown directive "%é"`},
		{"%ae", "", `format "%ae": "a" cannot separate events (they are made of letters and _): use punctuation or a blank, as in %,e or %|e`},
		{"%_e", "", `format "%_e": "_" cannot separate events`},
		{"%5e", "", `format "%5e": "5" cannot separate events`},
		{"%\xffe", "", `format "%\xffe": "\xff" cannot separate events`},
		{"%T", "", `format "%T" uses %T but no time format was given (--timefmt, e.g. '%F %T')`},
		{"%T", "%Q", `time format "%Q": unknown directive "%Q"`},
	}
	for _, tt := range tests {
		_, err := Compile(tt.format, tt.timefmt)
		if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
			t.Errorf("Compile(%q, %q) = %v\nwant %s", tt.format, tt.timefmt, err, tt.want)
		}
	}
	// A bad timefmt is ignored when the format does not print the time (as inotifywait).
	if _, err := Compile("%w", "%Q"); err != nil {
		t.Errorf("unused timefmt: %v", err)
	}
	defer func() {
		if recover() == nil {
			t.Error("MustCompile did not panic")
		}
	}()
	MustCompile("%", "")
}

func TestJSON(t *testing.T) {
	tests := []struct {
		name string
		r    Record
		want string
	}{
		{"full", Record{Time: when, Watched: "/w", Name: "x", Path: "/srv/new", OldPath: "/srv/old",
			Mask: engine.Rename, Pid: 7, Comm: "mv", Exe: "/usr/bin/mv"},
			`{"time":"2024-05-01T12:34:56.789012345+02:00","path":"/srv/new","events":["RENAME"],"isdir":false,"pid":7,"comm":"mv","exe":"/usr/bin/mv","old_path":"/srv/old"}`},
		{"unknowns omitted", Record{Path: "/srv/a", Mask: engine.Create | engine.OnDir},
			`{"path":"/srv/a","events":["CREATE"],"isdir":true}`},
		{"isdir field", Record{Path: "/d", Mask: engine.Delete, IsDir: true},
			`{"path":"/d","events":["DELETE"],"isdir":true}`},
		{"several events, bit order, no CLOSE pseudo-event", Record{Path: "/f", Mask: engine.CloseWrite | engine.Modify | engine.Open | engine.OpenExec},
			`{"path":"/f","events":["MODIFY","CLOSE_WRITE","OPEN","OPEN_EXEC"],"isdir":false}`},
		{"overflow has no path", Record{Time: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC), Mask: engine.QueueOverflow},
			`{"time":"2024-01-01T00:00:00Z","events":["Q_OVERFLOW"],"isdir":false}`},
		{"permission events", Record{Path: "/f", Mask: engine.OpenPerm | engine.AccessPerm | engine.OpenExecPerm | engine.PreAccess | engine.FSError},
			`{"path":"/f","events":["FS_ERROR","OPEN_PERM","ACCESS_PERM","OPEN_EXEC_PERM","PRE_ACCESS"],"isdir":false}`},
		{"unknown bit", Record{Path: "/f", Mask: 0x2000},
			`{"path":"/f","events":["0x2000"],"isdir":false}`},
		{"no events", Record{Path: "/f"}, `{"path":"/f","events":[],"isdir":false}`},
		{"negative pid is unknown", Record{Path: "/f", Pid: -1}, `{"path":"/f","events":[],"isdir":false}`},
		{"escapes", Record{Path: "/a \"b\"\\c\nd\te\r\x01\x7f\b\f", Comm: "x y", Mask: engine.Open},
			`{"path":"/a \"b\"\\c\nd\te\r\u0001\u007f\b\f","events":["OPEN"],"isdir":false,"comm":"x y"}`},
		{"unicode", Record{Path: "/é/日本/😀\u2028\u2029x"}, `{"path":"/é/日本/😀\u2028\u2029x","events":[],"isdir":false}`},
		{"e2 not followed by 80 a8", Record{Path: "/\u2020\u2027"}, "{\"path\":\"/\u2020\u2027\",\"events\":[],\"isdir\":false}"},
		{"path unknown: what is known instead", Record{Mask: engine.OpenPerm, Pid: 7, Comm: "cat", PathUnknown: true,
			HasObject: true, Dev: 0x812, Ino: 4242},
			`{"events":["OPEN_PERM"],"isdir":false,"pid":7,"comm":"cat","path_unknown":true,"dev":"8:18","ino":4242}`},
		{"path unknown, name known", Record{Mask: engine.Create, PathUnknown: true, Name: "deep.key"},
			`{"events":["CREATE"],"isdir":false,"path_unknown":true,"name":"deep.key"}`},
		{"path unknown, object gone: no ino", Record{Mask: engine.Attrib, Pid: 7, Comm: "rm", PathUnknown: true, HasObject: true, Dev: 0x812},
			`{"events":["ATTRIB"],"isdir":false,"pid":7,"comm":"rm","path_unknown":true,"dev":"8:18"}`},
		{"large device numbers", Record{Mask: engine.Open, PathUnknown: true, HasObject: true, Dev: 0x1200abcd345ef, Ino: 1},
			`{"events":["OPEN"],"isdir":false,"path_unknown":true,"dev":"74565:11259375","ino":1}`},
		{"invalid UTF-8 becomes _raw", Record{Path: "/a\xff", OldPath: "/b\xc3", Comm: "\xfe", Exe: "/x\xfd (deleted)"},
			`{"path_raw":[47,97,255],"events":[],"isdir":false,"comm_raw":[254],"exe_raw":[47,120,253,32,40,100,101,108,101,116,101,100,41],"old_path_raw":[47,98,195]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := string(JSON{}.Append(nil, &tt.r))
			if got != tt.want {
				t.Errorf("\n got %s\nwant %s", got, tt.want)
			}
			if !json.Valid([]byte(got)) {
				t.Errorf("invalid JSON %s", got)
			}
		})
	}
}

// decoded is what a consumer sees of a JSON line.
type decoded struct {
	Time       string   `json:"time"`
	Path       *string  `json:"path"`
	Events     []string `json:"events"`
	IsDir      *bool    `json:"isdir"`
	Pid        int      `json:"pid"`
	Comm       string   `json:"comm"`
	OldPath    string   `json:"old_path"`
	RawPath    []int    `json:"path_raw"`
	RawComm    []int    `json:"comm_raw"`
	RawOldPath []int    `json:"old_path_raw"`
}

func rawString(b []int) string {
	out := make([]byte, len(b))
	for i, v := range b {
		out[i] = byte(v)
	}
	return string(out)
}

// Any name round-trips through the JSON exactly.
func FuzzJSON(f *testing.F) {
	f.Add("/srv/a b", "cat", "/old", 42, uint64(engine.Create))
	f.Add("/x\n\"\\\u2028", "", "", 0, uint64(engine.OnDir|engine.Delete))
	f.Add("/\xff\xfe", "\x00", "\xc3", -5, uint64(1<<40))
	f.Fuzz(func(t *testing.T, path, comm, old string, pid int, mask uint64) {
		r := Record{Path: path, Comm: comm, OldPath: old, Pid: pid, Mask: engine.Mask(mask), Time: when}
		line := JSON{}.Append(nil, &r)
		if !json.Valid(line) || bytes.ContainsAny(line, "\n\r") {
			t.Fatalf("not a valid JSON line: %q", line)
		}
		var d decoded
		if err := json.Unmarshal(line, &d); err != nil {
			t.Fatal(err)
		}
		get := func(s string, raw []int) string {
			if raw != nil {
				return rawString(raw)
			}
			return s
		}
		gotPath := get("", d.RawPath)
		if d.Path != nil {
			gotPath = *d.Path
		}
		if gotPath != path || get(d.Comm, d.RawComm) != comm || get(d.OldPath, d.RawOldPath) != old {
			t.Fatalf("round trip lost data: %q", line)
		}
		if (path == "") != (d.Path == nil && d.RawPath == nil) {
			t.Fatalf("path presence wrong: %q", line)
		}
		if want := pid; want < 0 && d.Pid != 0 || want > 0 && d.Pid != want {
			t.Fatalf("pid %d: %q", pid, line)
		}
		if d.IsDir == nil || *d.IsDir != (engine.Mask(mask)&engine.OnDir != 0) {
			t.Fatalf("isdir: %q", line)
		}
		if d.Events == nil {
			t.Fatalf("events missing: %q", line)
		}
	})
}

func TestTrace(t *testing.T) {
	t0 := time.Date(2024, 5, 1, 12, 34, 56, 789012345, cest)
	tests := []struct {
		name string
		r    Record
		want string
	}{
		{"open", Record{Time: t0, Path: "/etc/hostname", Mask: engine.Open, Pid: 4242, Comm: "cat"},
			"12:34:56.789012 cat(4242): O   /etc/hostname"},
		{"close write", Record{Time: t0, Path: "/tmp/x", Mask: engine.CloseWrite, Pid: 1, Comm: "sh"},
			"12:34:56.789012 sh(1): CW  /tmp/x"},
		{"four letters", Record{Time: t0, Path: "/f", Mask: engine.Access | engine.Open | engine.CloseWrite, Pid: 1, Comm: "a"},
			"12:34:56.789012 a(1): RCWO /f"},
		{"unknown process", Record{Time: t0, Path: "/f", Mask: engine.Create},
			"12:34:56.789012 ?(?): +   /f"},
		{"unknown time", Record{Path: "/f", Mask: engine.Delete, Pid: 9, Comm: "rm"},
			"rm(9): D   /f"},
		{"rename", Record{Path: "/new", OldPath: "/old", Mask: engine.Rename, Pid: 9, Comm: "mv"},
			"mv(9): <>  /old -> /new"},
		{"moved_to with source", Record{Path: "/d/new", OldPath: "/d/old", Mask: engine.MovedTo, Pid: 9, Comm: "mv"},
			"mv(9): >   /d/old -> /d/new"},
		{"overflow", Record{Mask: engine.QueueOverflow}, "?(?): !   ?"},
		{"path unknown", Record{Mask: engine.Open, Pid: 3, Comm: "cat", PathUnknown: true, HasObject: true, Dev: 45, Ino: 1234},
			"cat(3): O   ? (dev 0:45 ino 1234)"},
		{"path unknown, object gone", Record{Mask: engine.Attrib, Pid: 3, Comm: "rm", PathUnknown: true, HasObject: true, Dev: 45},
			"rm(3): A   ? (dev 0:45)"},
		{"path unknown, name known", Record{Mask: engine.Create, Pid: 3, Comm: "touch", PathUnknown: true, HasObject: true, Dev: 45, Ino: 9, Name: "a\nb"},
			"touch(3): +   ? (dev 0:45 ino 9 name a\\nb)"},
		{"comm with parens and spaces", Record{Path: "/f", Mask: engine.Open, Pid: 3, Comm: "a (b)"},
			`a \x28b\x29(3): O   /f`},
		// A process names itself (prctl, 15 bytes): not another pid, letters and path.
		{"comm forging a pid", Record{Path: "/tmp/x", Mask: engine.Open, Pid: 4839, Comm: "x(1): W /etc/sh"},
			`x\x281\x29: W /etc/sh(4839): O   /tmp/x`},
		{"comm ?", Record{Path: "/f", Mask: engine.Open, Pid: 3, Comm: "?"}, `\x3f(3): O   /f`},
		{"comm ?? is not unknown anyway", Record{Path: "/f", Mask: engine.Open, Pid: 3, Comm: "??"}, `??(3): O   /f`},
		// A user's file named "a -> /etc/shadow": the arrow is the rename's only.
		{"arrow in a renamed path", Record{Path: "/b -> /c", OldPath: "/a -> /etc/shadow", Mask: engine.Rename, Pid: 9, Comm: "mv"},
			`mv(9): <>  /a -\x3e /etc/shadow -> /b -\x3e /c`},
		{"arrows overlapping", Record{Path: "/a -> -> ->", Mask: engine.Create, Pid: 9, Comm: "t"},
			`t(9): +   /a -\x3e -\x3e -\x3e`},
		{"arrow-like but no arrow", Record{Path: "/a->b -x> ->", OldPath: "/o -", Mask: engine.MovedTo, Pid: 9, Comm: "mv"},
			`mv(9): >   /o - -> /a->b -x> -\x3e`},
		{"escapes", Record{Path: "/a\nb\tc\\d\x1b[31m\xff\u0085é", Mask: engine.Open, Pid: 3, Comm: "x\ny"},
			`x\ny(3): O   /a\nb\tc\\d\x1b[31m\xff\u0085é`},
		{"U+FFFD is printable", Record{Path: "/\ufffd\r\x7f", Mask: engine.Open, Pid: 3, Comm: "c"},
			"c(3): O   /\ufffd\\r\\x7f"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(Trace{}.Append(nil, &tt.r)); got != tt.want {
				t.Errorf("\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}

// A trace line is one line of printable text whatever the names hold.
func FuzzTrace(f *testing.F) {
	f.Add("/a\nb", "c\x1b", "/\xff")
	f.Fuzz(func(t *testing.T, path, comm, old string) {
		line := Trace{}.Append(nil, &Record{Path: path, Comm: comm, OldPath: old, Mask: engine.Open, Pid: 1})
		if !utf8.Valid(line) {
			t.Fatalf("not UTF-8: %q", line)
		}
		for _, r := range string(line) {
			if r < 0x20 || r == 0x7f || r >= 0x80 && r < 0xa0 {
				t.Fatalf("control character %U in %q", r, line)
			}
		}
		// It reads back one way: the command ends at the line's first "(", the path's
		// arrow is the line's only " -> ".
		if i := bytes.IndexByte(line, '('); !bytes.HasPrefix(line[i:], []byte("(1): O   ")) {
			t.Fatalf("the first ( of %q is not the pid's", line)
		}
		if n := bytes.Count(line, []byte(" -> ")); n != min(len(old), 1) {
			t.Fatalf("%d arrows in %q with old path %q", n, line, old)
		}
	})
}

// Every format compiles or fails cleanly, and formatting never panics.
func FuzzCompile(f *testing.F) {
	for _, s := range []string{"", "%w %,e %f", "%T %w%f %e", "%%%", "%→e", "%0%n%p%c", "%x"} {
		f.Add(s, "%F %T.%3N %z")
	}
	f.Add("%T", "%-d %_H %Ec %9N %")
	f.Fuzz(func(t *testing.T, format, timefmt string) {
		if tf, err := CompileTime(timefmt); err == nil {
			tf.Append(nil, when)
		}
		f, err := Compile(format, timefmt)
		if err != nil {
			return
		}
		f.Append(nil, &Record{Time: when, Watched: "/w", Name: "n", Mask: engine.AllEvents | engine.OnDir, Pid: 1, Comm: "c"})
		f.Append(nil, &Record{})
	})
}

func TestFormattersDoNotAllocate(t *testing.T) {
	r := &Record{Time: when, Watched: "/srv/dir", Name: "a b.txt", Path: "/srv/dir/a b.txt", OldPath: "/srv/dir/o\n",
		Mask: engine.CloseWrite | engine.OnDir | 0x2000, Pid: 4242, Comm: "cp"}
	fs := map[string]Formatter{
		"format": MustCompile("%T %w%f %e %|e %p %c", "%F %T.%N %z %Z"),
		"json":   JSON{},
		"trace":  Trace{},
		"csv":    CSV{},
	}
	for name, f := range fs {
		buf := make([]byte, 0, 1024)
		if n := testing.AllocsPerRun(100, func() { buf = f.Append(buf[:0], r) }); n != 0 {
			t.Errorf("%s allocates %v times per record", name, n)
		}
	}
}

func TestFormatterInterface(t *testing.T) {
	var _ Formatter = (*Format)(nil)
	var _ Formatter = JSON{}
	var _ Formatter = Trace{}
	var _ Formatter = CSV{}
	if !reflect.DeepEqual(EventNames()[:2], []string{"access", "modify"}) {
		t.Error("EventNames order")
	}
}

func BenchmarkFormatters(b *testing.B) {
	r := &Record{Time: when, Watched: "/srv/dir/", Name: "file.txt", Path: "/srv/dir/file.txt",
		Mask: engine.CloseWrite, Pid: 4242, Comm: "cp"}
	for name, f := range map[string]Formatter{
		"default": MustCompile("", ""),
		"timefmt": MustCompile("%T %w%f %e", "%F %T"),
		"json":    JSON{},
		"trace":   Trace{},
	} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			buf := make([]byte, 0, 512)
			for b.Loop() {
				buf = f.Append(buf[:0], r)
			}
		})
	}
}

// appendDev splits a device number as the kernel's (and x/sys's) major and minor do.
func TestAppendDev(t *testing.T) {
	for _, mm := range [][2]uint32{{0, 0}, {8, 18}, {259, 3}, {0xfff, 0xff}, {0x1000, 0x100}, {0xfffff, 0xfffff}, {0xffffffff, 0xffffffff}} {
		dev := sys.Mkdev(mm[0], mm[1])
		want := strconv.FormatUint(uint64(sys.Major(dev)), 10) + ":" + strconv.FormatUint(uint64(sys.Minor(dev)), 10)
		if got := string(appendDev(nil, dev)); got != want || want != strconv.FormatUint(uint64(mm[0]), 10)+":"+strconv.FormatUint(uint64(mm[1]), 10) {
			t.Errorf("appendDev(Mkdev(%d, %d)) = %s, want %s", mm[0], mm[1], got, want)
		}
	}
}
