package policy

import (
	"errors"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/fsnotifyd/fsnotifyd/engine"
	"github.com/fsnotifyd/fsnotifyd/internal/ftype"
)

func mustParse(t testing.TB, text string) *Policy {
	t.Helper()
	p, err := Parse("policy.rules", strings.NewReader(text))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return p
}

func TestParseRules(t *testing.T) {
	tests := []struct {
		line string
		text string // Rule.Text
	}{
		{"deny open,exec /srv/**/*.sh comm=bash", "deny open,exec /srv/**/*.sh comm=bash"},
		{"allow * /usr/**", "allow * /usr/**"},
		{"allow all /usr/**", "allow * /usr/**"},
		{"deny /srv/**", "deny * /srv/**"},
		{"deny **/*.key", "deny * **/*.key"},
		{"  deny\topen   /x  # trailing comment", "deny open /x"},
		{"deny exec,open,open /x", "deny open,exec /x"},
		{"deny pre_access,access /x errno=EIO", "deny access,pre_access /x errno=EIO"},
		{"deny /x errno=eagain", "deny * /x errno=EAGAIN"},
		{"allow open /x uid=0,1000 pid!=1 comm=b?sh,[dz]ash cache", "allow open /x uid=0,1000 pid!=1 comm=b?sh,[dz]ash cache"},
		{`deny "/srv/my files/**"`, `deny * "/srv/my files/**"`},
		{`deny /srv/my\ files/**`, `deny * /srv/my\ files/**`},
		{`deny /srv/"my files"/**`, `deny * "/srv/my files/**"`},
		{`deny /a\#b`, `deny * /a\#b`},
		{`deny /a#b`, `deny * /a#b`},
		{`deny * /x comm="my prog"`, `deny * /x comm="my prog"`},
		{`deny * /x comm=a\,b,c`, `deny * /x comm=a\,b,c`},
		{`deny "**/x y"`, `deny * "**/x y"`},
		{`deny "/a\"b"`, `deny * /a\"b`},
		{`deny /a"b c"`, `deny * "/ab c"`},
		{"allow open /k/** exe=/usr/sbin/nginx,/usr/lib/**/nginx-* gid=33,0", "allow open /k/** exe=/usr/sbin/nginx,/usr/lib/**/nginx-* gid=33,0"},
		{`deny /k/** exe!="/opt/my app/bin/*" gid!=5`, `deny * /k/** exe!="/opt/my app/bin/*" gid!=5`},
		{`deny /k/** exe=/opt/a\,b`, `deny * /k/** exe=/opt/a\,b`},
		{"deny /x\t# tab before a comment", "deny * /x"},
		// A rule may leave its glob out when conditions follow: every path, as **.
		{"deny open uid=0", "deny open ** uid=0"},
		{"deny trusted=no", "deny * ** trusted=no"},
		{"deny exec size>1M", "deny exec ** size>1M"},
		{`deny open ftype=script:* exe=/usr/bin/python3* trusted=no`, `deny open ** ftype=script:* exe=/usr/bin/python3* trusted=no`},
		// The keys of issue 13.
		{"allow open /x ppid=0,1 ancestor=/usr/sbin/cron,**/make", "allow open /x ppid=0,1 ancestor=/usr/sbin/cron,**/make"},
		{"deny /x ancestor!=/usr/bin/* trusted_exe=yes", "deny * /x ancestor!=/usr/bin/* trusted_exe=yes"},
		{"allow exec /usr/** ftype=elf-executable,script,script:python3* trusted=yes", "allow exec /usr/** ftype=elf-executable,script,script:python3* trusted=yes"},
		{"deny /x ftype!=elf-* mount_writable=yes", "deny * /x ftype!=elf-* mount_writable=yes"},
		{"deny /x sha256=" + strings.Repeat("aB", 32) + "," + strings.Repeat("0", 64), "deny * /x sha256=" + strings.Repeat("aB", 32) + "," + strings.Repeat("0", 64)},
		{"deny /x size>10 size<2G", "deny * /x size>10 size<2G"},
		{"deny /x size<1 size>0K", "deny * /x size<1 size>0K"},
		{`deny /x ftype="script:my interp"`, `deny * /x ftype="script:my interp"`},
		{"deny \"/x\ty\"", "deny * \"/x\ty\""},
	}
	for _, tt := range tests {
		p, err := Parse("t", strings.NewReader(tt.line))
		if err != nil {
			t.Errorf("Parse(%q): %v", tt.line, err)
			continue
		}
		if len(p.Rules) != 1 {
			t.Errorf("Parse(%q): %d rules", tt.line, len(p.Rules))
			continue
		}
		r := p.Rules[0]
		if got := r.Text(); got != tt.text {
			t.Errorf("Parse(%q).Text() = %q, want %q", tt.line, got, tt.text)
		}
		if r.String() != "t:1" {
			t.Errorf("String() = %q", r.String())
		}
		// Text parses back to the same rule.
		p2, err := Parse("t", strings.NewReader(r.Text()))
		if err != nil || len(p2.Rules) != 1 || p2.Rules[0].Text() != r.Text() {
			t.Errorf("Text %q does not round-trip: %v", r.Text(), err)
		}
	}
}

func TestParseFields(t *testing.T) {
	p := mustParse(t, "\n# c\ndefault deny\ndeny open,exec /srv/** comm=bash uid!=0 errno=EBUSY\nallow access /x pid=7 cache\n")
	if p.Default != engine.Deny {
		t.Errorf("Default = %v", p.Default)
	}
	if len(p.Rules) != 2 {
		t.Fatalf("%d rules", len(p.Rules))
	}
	r := p.Rules[0]
	if r.Verdict != engine.Deny || r.Events != engine.OpenPerm|engine.OpenExecPerm || r.Errno != syscall.EBUSY || r.Cache {
		t.Errorf("rule 0 = %+v", r)
	}
	if r.String() != "policy.rules:4" || r.Glob.String() != "/srv/**" {
		t.Errorf("rule 0: %s %s", r, r.Glob)
	}
	if len(r.Conditions) != 2 || r.Conditions[0].Attr != AttrComm || r.Conditions[1].Attr != AttrUID || !r.Conditions[1].Negate {
		t.Errorf("conditions = %+v", r.Conditions)
	}
	r = p.Rules[1]
	if r.Verdict != engine.Allow || r.Events != engine.AccessPerm || !r.Cache || r.String() != "policy.rules:5" {
		t.Errorf("rule 1 = %+v", r)
	}
	if !p.NeedsComm() || !p.NeedsUID() || !p.NeedsPreContent() { // errno= needs pre-content
		t.Errorf("Needs: comm %v uid %v pre %v", p.NeedsComm(), p.NeedsUID(), p.NeedsPreContent())
	}
}

// keys is keyList's text in the errors below.
const keys = "pid=, uid=, gid=, comm=, exe=, ppid=, ancestor=, trusted_exe=, ftype=, sha256=, trusted=, size>, size<, mount_writable="

func TestParseErrors(t *testing.T) {
	tests := []struct{ text, want string }{
		{"deny opne /x", `policy.rules:1:6: unknown event "opne" (want open, access, exec, pre_access)`},
		{"deny open,opne /x", `policy.rules:1:11: unknown event "opne" (want open, access, exec, pre_access)`},
		{"deny open,,exec /x", `policy.rules:1:11: empty event name in "open,,exec" (want a comma list of open, access, exec, pre_access)`},
		{"deny OPEN /x", `policy.rules:1:6: unknown event "OPEN" (want open, access, exec, pre_access)`},
		{"\n\nalow /x", `policy.rules:3:1: unknown verdict "alow" (want allow, deny or default)`},
		{"deny", `policy.rules:1:6: missing path glob (e.g. deny /srv/**)`},
		{"deny open", `policy.rules:1:11: missing path glob after events (e.g. deny open /srv/**)`},
		{"deny *.key", `policy.rules:1:6: bad glob "*.key": pattern must be absolute (start with /) or start with **; for any depth write **/*.key`},
		{"deny open /srv/[ab", `policy.rules:1:16: bad glob "/srv/[ab": unterminated character class (missing ])`},
		{`deny open "/my dir/[ab"`, `policy.rules:1:20: bad glob "/my dir/[ab": unterminated character class (missing ])`},
		{"deny open /a/**b", `policy.rules:1:14: bad glob "/a/**b": ** must be a whole path component (write /**/ or *)`},
		{`deny open "/x`, `policy.rules:1:11: unterminated quote (want a closing ")`},
		{"deny /x cache", `policy.rules:1:9: cache applies to allow rules only`},
		{"allow /x cache cache", `policy.rules:1:16: duplicate cache (first at column 10)`},
		{"allow /x errno=EIO", `policy.rules:1:10: errno applies to deny rules only`},
		{"deny /x errno=ENOENT", `policy.rules:1:15: unknown errno "ENOENT" (want one of EPERM, EIO, EBUSY, ETXTBSY, EAGAIN, ENOSPC, EDQUOT)`},
		{"deny /x errno=ENOſPC", `policy.rules:1:15: unknown errno "ENOſPC" (want one of EPERM, EIO, EBUSY, ETXTBSY, EAGAIN, ENOSPC, EDQUOT)`}, // U+017F folds to s in Unicode, not here
		{"deny /x errno!=EIO", `policy.rules:1:9: errno takes = (errno!= makes no sense)`},
		{"deny /x user=root", `policy.rules:1:9: unknown condition "user" (want pid=, uid=, gid=, comm=, exe=, ppid=, ancestor=, trusted_exe=, ftype=, sha256=, trusted=, size>, size<, mount_writable=, errno=, or cache)`},
		{"deny /x bash", `policy.rules:1:9: unexpected "bash" (want a condition pid=, uid=, gid=, comm=, exe=, ppid=, ancestor=, trusted_exe=, ftype=, sha256=, trusted=, size>, size<, mount_writable=, errno=, or cache)`},
		{"deny /x uid=", `policy.rules:1:13: missing value after uid=`},
		{"deny /x uid=root", `policy.rules:1:13: uid "root": want a number (user names are not looked up)`},
		{"deny /x uid=0,x", `policy.rules:1:15: uid "x": want a number (user names are not looked up)`},
		{"deny /x uid=0,", `policy.rules:1:15: empty value in uid=0,`},
		{"deny /x uid=4294967296", `policy.rules:1:13: uid "4294967296": want a number (user names are not looked up)`},
		{"deny /x pid=0", `policy.rules:1:13: pid "0": want a positive number`},
		{"deny /x pid=-1", `policy.rules:1:13: pid "-1": want a positive number`},
		{"deny /x uid=0 uid=1", `policy.rules:1:15: duplicate uid condition (first at column 9)`},
		{"deny /x comm=a/b", `policy.rules:1:15: bad comm pattern "a/b": a name pattern cannot contain /`},
		{"deny /x comm=[ab", `policy.rules:1:14: bad comm pattern "[ab": unterminated character class (missing ])`},
		{"deny /x comm=unattended-upgrade", `policy.rules:1:14: comm "unattended-upgrade" never matches: the kernel keeps only the first 15 bytes of a process name (write "unattended-upgr")`},
		// A pattern whose fixed characters need more than 15 bytes never matches either (before:
		// accepted, a deny or allow that silently never applied).
		{"deny /x comm=systemd-journald*", `policy.rules:1:14: comm "systemd-journald*" never matches: it needs 16 bytes or more, and the kernel keeps only the first 15 bytes of a process name (write "systemd-journal")`},
		{"deny /x comm=bash,?unattended-upgr", `policy.rules:1:19: comm "?unattended-upgr" never matches: it needs 16 bytes or more, and the kernel keeps only the first 15 bytes of a process name`},
		{"deny /x gid=wheel", `policy.rules:1:13: gid "wheel": want a number (group names are not looked up)`},
		{"deny /x gid=1 gid!=2", `policy.rules:1:15: duplicate gid condition (first at column 9)`},
		{"deny /x exe=bash", `policy.rules:1:13: bad exe pattern "bash": pattern must be absolute (start with /) or start with **; for any depth write **/bash`},
		{"deny /x exe=/bin/a,/bin/[b", `policy.rules:1:25: bad exe pattern "/bin/[b": unterminated character class (missing ])`},
		{"deny /x exe=/a,", `policy.rules:1:16: empty value in exe=/a,`},
		{"deny open /x ppid", `policy.rules:1:14: unexpected "ppid" (want a condition ` + keys + `, errno=, or cache)`},
		{"deny /x ppid=-1", `policy.rules:1:14: ppid "-1": want a number (0 or a pid)`},
		{"deny /x ppid=2147483648", `policy.rules:1:14: ppid "2147483648": want a number (0 or a pid)`},
		{"deny /x ancestor=sshd", `policy.rules:1:18: bad ancestor pattern "sshd": pattern must be absolute (start with /) or start with **; for any depth write **/sshd`},
		{"deny /x ancestor=/a/[", `policy.rules:1:21: bad ancestor pattern "/a/[": unterminated character class (missing ])`},
		{"deny /x trusted=1", `policy.rules:1:17: trusted "1": want yes or no`},
		{"deny /x trusted=Yes", `policy.rules:1:17: trusted "Yes": want yes or no`},
		{"deny /x trusted=yes,no", `policy.rules:1:20: trusted= takes one value`},
		{"deny /x trusted!=yes", `policy.rules:1:16: trusted takes = (write trusted=yes or trusted=no)`},
		{"deny /x trusted_exe=maybe", `policy.rules:1:21: trusted_exe "maybe": want yes or no`},
		{"deny /x mount_writable=rw", `policy.rules:1:24: mount_writable "rw": want yes or no`},
		{"deny /x trusted>1", `policy.rules:1:16: trusted takes = or != (only size compares with > and <)`},
		{"deny /x uid<1000", `policy.rules:1:12: uid takes = or != (only size compares with > and <)`},
		{"deny /x ftype=elf", `policy.rules:1:15: ftype "elf" matches no file type (types: elf-executable, elf-shared-object, elf-other, script, script:NAME, text, empty, data)`},
		{"deny /x ftype=text,elf-exectable", `policy.rules:1:20: ftype "elf-exectable" matches no file type (types: elf-executable, elf-shared-object, elf-other, script, script:NAME, text, empty, data)`},
		{"deny /x ftype=script:", `policy.rules:1:22: ftype "script:": name the interpreter after script: (script:sh, script:python*), or write script for every script`},
		{"deny /x ftype=script:py/x", `policy.rules:1:24: bad ftype pattern "script:py/x": a name pattern cannot contain /`},
		{"deny /x ftype=script:[a", `policy.rules:1:22: bad ftype pattern "script:[a": unterminated character class (missing ])`},
		{"deny /x ftype=text ftype=data", `policy.rules:1:20: duplicate ftype condition (first at column 9)`},
		{"deny /x sha256=abc", `policy.rules:1:16: sha256 "abc" has 3 characters, want 64 hex digits`},
		{"deny /x sha256=" + strings.Repeat("0", 63) + "g", `policy.rules:1:79: sha256 "` + strings.Repeat("0", 63) + `g": "g" is not a hex digit (want 64 hex digits)`},
		{"deny /x sha256=" + strings.Repeat("0", 64) + ",x", `policy.rules:1:81: sha256 "x" has 1 characters, want 64 hex digits`},
		{"deny /x size=10", `policy.rules:1:13: size takes > or <: write size>N or size<N`},
		{"deny /x size!=10", `policy.rules:1:13: size takes > or <: write size>N or size<N`},
		{"deny /x size>", `policy.rules:1:14: missing value after size>`},
		{"deny /x size>10k", `policy.rules:1:16: size "10k": want a number of bytes, with an optional suffix K, M, G or T (powers of 1024)`},
		{"deny /x size>1.5M", `policy.rules:1:15: size "1.5M": want a number of bytes, with an optional suffix K, M, G or T (powers of 1024)`},
		{"deny /x size>-1", `policy.rules:1:14: size "-1": want a number of bytes, with an optional suffix K, M, G or T (powers of 1024)`},
		{"deny /x size>M", `policy.rules:1:14: size "M": want a number of bytes before the suffix`},
		{"deny /x size>9000000T", `policy.rules:1:14: size "9000000T" is larger than any file can be`},
		{"deny /x size>1,2", `policy.rules:1:15: size> takes one value`},
		{"deny /x size<0", `policy.rules:1:14: size<0 never holds: a file has 0 bytes or more`},
		{"deny /x size<0K", `policy.rules:1:14: size<0 never holds: a file has 0 bytes or more`},
		{"deny /x size>9223372036854775807", `policy.rules:1:14: size>9223372036854775807 never holds: no file is larger`},
		{"deny /x size>1 size>2", `policy.rules:1:16: duplicate size> condition (first at column 9)`},
		{"deny /x size>>1", `policy.rules:1:14: size ">1": want a number of bytes, with an optional suffix K, M, G or T (powers of 1024)`},
		// Control bytes: a NUL in a glob or value made a rule that never matched.
		{"deny open **/*.key\x00.txt", `policy.rules:1:19: NUL byte: no path or name holds one, so nothing could match it (is this a binary or corrupt file?)`},
		{"deny open /x comm=ba\x00sh", `policy.rules:1:21: NUL byte: no path or name holds one, so nothing could match it (is this a binary or corrupt file?)`},
		{"deny /x\n# a comment \x00", `policy.rules:2:13: NUL byte: no path or name holds one, so nothing could match it (is this a binary or corrupt file?)`},
		{"deny \"/x\x01\"", `policy.rules:1:9: control byte 0x01: a rules file is text (to match such a byte in a name, write ? or *)`},
		{"deny /x\x1b[2K", `policy.rules:1:8: control byte 0x1b: a rules file is text (to match such a byte in a name, write ? or *)`},
		{"deny /x\rallow /y", `policy.rules:1:8: control byte 0x0d: a rules file is text (to match such a byte in a name, write ? or *)`},
		{"deny /x\x7f", `policy.rules:1:8: control byte 0x7f: a rules file is text (to match such a byte in a name, write ? or *)`},
		{"default", `policy.rules:1:9: missing verdict after default (want allow or deny)`},
		{"default maybe", `policy.rules:1:9: unknown verdict "maybe" (want allow or deny)`},
		{"default deny please", `policy.rules:1:14: unexpected "please" after default deny (want end of line)`},
		{"default deny\ndefault allow", `policy.rules:2:1: default already set on line 1`},
		{"deny /x\n" + strings.Repeat("x", maxLine+1), `policy.rules:2:1: line longer than 1048576 bytes`},
	}
	for _, tt := range tests {
		_, err := Parse("policy.rules", strings.NewReader(tt.text))
		if err == nil {
			t.Errorf("Parse(%.40q) succeeded, want %s", tt.text, tt.want)
			continue
		}
		if err.Error() != tt.want {
			t.Errorf("Parse(%.40q):\n got %s\nwant %s", tt.text, err, tt.want)
		}
		var pe *ParseError
		if !errors.As(err, &pe) {
			t.Errorf("Parse(%.40q): %T is not a *ParseError", tt.text, err)
		}
	}
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errors.New("disk on fire") }

func TestParseReadError(t *testing.T) {
	_, err := Parse("p", failingReader{})
	if err == nil || err.Error() != "p: disk on fire" {
		t.Fatalf("err = %v", err)
	}
}

func TestParseBOMAndCRLF(t *testing.T) {
	p := mustParse(t, "\ufeffdeny /a\r\nallow /b\r\n")
	if len(p.Rules) != 2 || p.Rules[0].Glob.String() != "/a" || p.Rules[1].Glob.String() != "/b" {
		t.Fatalf("rules: %v", p.String())
	}
}

func TestParseEmptyName(t *testing.T) {
	p, err := Parse("", strings.NewReader("deny /x"))
	if err != nil || p.Rules[0].String() != "policy:1" {
		t.Fatalf("%v %v", p, err)
	}
}

// The example in testdata (and in docs/policy.md) parses and decides as its comments say.
func TestExampleFile(t *testing.T) {
	f, err := os.Open("testdata/example.rules")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	p, err := Parse("example.rules", f)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		path  string
		ev    engine.Mask
		comm  string
		uid   int64
		want  engine.Verdict
		errno syscall.Errno
		rule  string
		cache bool
	}{
		{"/home/ann/.ssh/id_ed25519", engine.OpenPerm, "cat", 1000, engine.Deny, 0, "example.rules:11", false},
		{"/home/ann/.ssh/id_ed25519.pub", engine.OpenPerm, "cat", 1000, engine.Allow, 0, "example.rules:10", true},
		{"/home/ann/.ssh/id_ed25519", engine.OpenPerm, "restic", 34, engine.Allow, 0, "example.rules:6", false},
		{"/home/ann/.ssh/id_ed25519", engine.OpenPerm, "restic", 1000, engine.Deny, 0, "example.rules:11", false},
		{"/srv/tls/site.key", engine.OpenPerm, "nginx", 33, engine.Deny, 0, "example.rules:9", false},
		{"/srv/www/uploads/x/run", engine.OpenExecPerm, "sh", 33, engine.Deny, 0, "example.rules:14", false},
		{"/srv/www/uploads/x/a.sh", engine.OpenPerm, "bash", 33, engine.Deny, 0, "example.rules:15", false},
		{"/srv/www/uploads/x/a.sh", engine.OpenPerm, "cat", 33, engine.Allow, 0, "default", false},
		{"/etc/app/conf", engine.OpenPerm, "vi", 0, engine.Allow, 0, "example.rules:18", false},
		{"/etc/app/conf", engine.OpenPerm, "vi", 1000, engine.Deny, 0, "example.rules:19", false},
		{"/etc/app/conf", engine.AccessPerm, "vi", 1000, engine.Allow, 0, "default", false},
		{"/srv/cold storage/2019/a.tar", engine.PreAccess, "cp", 1000, engine.Deny, syscall.EIO, "example.rules:22", false},
		{"/usr/bin/ls", engine.OpenExecPerm, "bash", 1000, engine.Allow, 0, "example.rules:25", true},
	}
	for _, tt := range tests {
		d := p.Decide(&Request{Path: tt.path, Event: tt.ev, Pid: 99, Proc: KnownProcess{Name: tt.comm, UserID: tt.uid}})
		if d.Verdict != tt.want || d.Errno != tt.errno || d.Source() != tt.rule || d.Cache != tt.cache {
			t.Errorf("%s %s by %s/%d: got %v errno %d by %s cache %v; want %v errno %d by %s cache %v",
				tt.ev, tt.path, tt.comm, tt.uid, d.Verdict, d.Errno, d.Source(), d.Cache, tt.want, tt.errno, tt.rule, tt.cache)
		}
	}
	if !p.NeedsPreContent() {
		t.Error("example needs pre-content")
	}
	// The whole policy prints in rules-file syntax and reads back the same.
	p2, err := Parse("again", strings.NewReader(p.String()))
	if err != nil {
		t.Fatalf("String() does not parse: %v\n%s", err, p)
	}
	if strip(p2.String()) != strip(p.String()) {
		t.Errorf("String() does not round-trip:\n%s\n%s", p, p2)
	}
}

// strip drops the "# source" comments of Policy.String.
func strip(s string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if i := strings.Index(l, "  # "); i >= 0 {
			l = l[:i]
		}
		out = append(out, l)
	}
	return strings.Join(out, "\n")
}

func TestParseEvents(t *testing.T) {
	m, err := ParseEvents("open,access,exec,pre_access")
	if err != nil || m != engine.PermissionEvents {
		t.Fatalf("%v %v", m, err)
	}
	if _, err := ParseEvents("open,write"); err == nil || err.Error() != `unknown event "write" (want open, access, exec, pre_access)` {
		t.Fatalf("err = %v", err)
	}
	if _, err := ParseEvents(""); err == nil {
		t.Fatal("empty list accepted")
	}
}

func FuzzParse(f *testing.F) {
	f.Add("deny open,exec /srv/**/*.sh comm=bash\nallow * /usr/** cache\ndefault deny\n")
	f.Add("deny pre_access /x errno=EIO uid!=0,1 pid=3")
	f.Add("allow open /k/** exe=/usr/sbin/nginx,\"/opt/a b/*\" gid!=0,27 cache")
	f.Add("deny open **/*.key\x00.txt")
	f.Add("deny \"/x\ty\" comm=a\\\x01")
	f.Add("default deny\ndeny exec /tmp/**\nallow exec ftype=elf-executable,script:* trusted=yes mount_writable=no\n" +
		"deny open ftype=elf-shared-object trusted=no size>1K size<2G\n")
	f.Add("allow open /x ppid=0,1 ancestor!=/usr/sbin/sshd,**/make trusted_exe=yes sha256=" + strings.Repeat("ab", 32))
	f.Add("deny trusted=no\ndeny open \"ftype=script:my sh\"")
	f.Fuzz(func(t *testing.T, text string) {
		p, err := Parse("f", strings.NewReader(text))
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("%T is not a *ParseError: %v", err, err)
			}
			lines := strings.Count(text, "\n") + 2
			if pe.File != "f" || pe.Line < 1 || pe.Line > lines || pe.Col < 1 || pe.Msg == "" {
				t.Fatalf("bad position in %#v", pe)
			}
			return
		}
		// An accepted file holds no NUL and no control byte but tab (they are rejected, with
		// their position, wherever they are).
		for i := 0; i < len(text); i++ {
			if c := text[i]; c < 0x20 && c != '\t' && c != '\n' && c != '\r' || c == 0x7f {
				t.Fatalf("accepted a file with control byte %#x at offset %d: %q", c, i, text)
			}
		}
		for _, r := range p.Rules {
			for _, c := range r.Conditions {
				if len(c.Values) == 0 || len(c.Values) != c.compiled() {
					t.Fatalf("rule %q: condition %s has %d values but %d compiled", r.Text(), c, len(c.Values), c.compiled())
				}
				if (c.Cmp != 0) != (c.Attr == AttrSize) || (c.Negate && c.Cmp != 0) {
					t.Fatalf("rule %q: condition %s has operator %q", r.Text(), c, c.op())
				}
			}
			// Every rule prints in the syntax and reads back the same.
			p2, err := Parse("f", strings.NewReader(r.Text()))
			if err != nil {
				t.Fatalf("Text %q of rule %s does not parse: %v", r.Text(), r, err)
			}
			if len(p2.Rules) != 1 || p2.Rules[0].Text() != r.Text() {
				t.Fatalf("Text %q does not round-trip", r.Text())
			}
			if (r.Errno != 0) != (r.Verdict == engine.Deny && r.Errno != 0) || (r.Cache && r.Verdict != engine.Allow) {
				t.Fatalf("rule %q has options its verdict cannot have", r.Text())
			}
		}
		// The whole policy prints in the syntax and reads back the same.
		p2, err := Parse("f", strings.NewReader(p.String()))
		if err != nil {
			t.Fatalf("String() of\n%s does not parse: %v", p, err)
		}
		if strip(p2.String()) != strip(p.String()) || p2.Default != p.Default || len(p2.Rules) != len(p.Rules) {
			t.Fatalf("String() does not round-trip:\n%s\n%s", p, p2)
		}
		// Deciding never panics, with or without attributes; Explain decides as Decide does.
		full := KnownProcess{Name: "bash", UserID: 0, ExePath: "/usr/bin/bash", GroupIDs: []uint32{0, 27}, ParentPID: 1,
			Ancestry: Ancestry{List: []Ancestor{{Pid: 1, Exe: "/usr/lib/systemd/systemd", Verified: true}}}, ExeTrust: Yes}
		obj := KnownObject{Type: ftype.Type{Kind: ftype.Script, Interp: "sh"}, TypeKnown: true, SumKnown: true, SizeKnown: true, Bytes: 10, Trust: No, Writable: Yes}
		for _, path := range []string{"/", "/srv/a.sh", "/x/y/z", ""} {
			p.Decide(&Request{Path: path, Event: engine.OpenPerm})
			for _, req := range []Request{
				{Path: path, Event: engine.PreAccess, Pid: 1, Proc: full, Obj: obj},
				{Path: path, Event: engine.OpenExecPerm, Pid: 1, Proc: &countingProc{err: syscall.EMFILE}, Obj: &countingObj{err: syscall.EIO}},
			} {
				d := p.Decide(&req)
				if d.Err != nil && (d.Verdict != engine.Deny || d.Rule == nil || d.Cache) {
					t.Fatalf("an attribute error decided %+v", d)
				}
				if d.AncestryIncomplete && (d.Verdict != engine.Deny || d.Rule == nil) {
					t.Fatalf("an incomplete ancestry decided %+v", d)
				}
				ex := p.Explain(&req)
				if ex.Decision.Verdict != d.Verdict || ex.Decision.Rule != d.Rule || (ex.Decision.Err == nil) != (d.Err == nil) {
					t.Fatalf("Explain decided %+v, Decide %+v", ex.Decision, d)
				}
				if n := len(ex.Steps); d.Rule != nil && (n == 0 || ex.Steps[n-1].Rule != d.Rule) {
					t.Fatalf("Explain's last step is not the deciding rule %s", d.Rule)
				}
			}
		}
	})
}

// The rules blocks of docs/policy.md parse, and its example is testdata/example.rules.
func TestDocExamples(t *testing.T) {
	doc, err := os.ReadFile("../../docs/policy.md")
	if err != nil {
		t.Skipf("docs not found: %v", err)
	}
	example, err := os.ReadFile("testdata/example.rules")
	if err != nil {
		t.Fatal(err)
	}
	blocks := strings.Split(string(doc), "```rules\n")[1:]
	if len(blocks) < 2 {
		t.Fatalf("docs/policy.md has %d rules blocks", len(blocks))
	}
	for i, b := range blocks {
		b = b[:strings.Index(b, "```")]
		if _, err := Parse("docs/policy.md block "+strconv.Itoa(i+1), strings.NewReader(b)); err != nil {
			t.Errorf("%v", err)
		}
		if i == 0 && b != string(example) {
			t.Errorf("the first example in docs/policy.md differs from testdata/example.rules")
		}
	}
}

// TestParseRejectsInvisibleCharacters: a rule must read as what it matches. A zero-width
// space in "deny /srv/se\u200bcret" shows as "deny /srv/secret" but never matches
// /srv/secret; a right-to-left override reorders what the terminal shows of the line (trojan
// source); a C1 control (U+009B is CSI to some terminals) acts as an escape. Like the control
// bytes, each is refused with its line and column and what to write instead. Before, all
// were accepted silently.
func TestParseRejectsInvisibleCharacters(t *testing.T) {
	for _, c := range []struct {
		line string
		col  int
	}{
		{"deny /srv/se\u200bcret", 13},
		{"deny /srv/secret\u00ad", 17},
		{"deny /srv/\u202eterces", 11},
		{"deny /srv/x\u2066 uid=0", 12},
		{"allow /srv/x comm=ba\u200dsh", 21},
		{"deny /srv/x # \u202e a comment", 15},
		{"deny /srv/x\u009b", 12},
		{"deny /srv/x\u2028", 12},
		{"deny /srv/\ufeffx", 11},
	} {
		_, err := Parse("p", strings.NewReader(c.line))
		var pe *ParseError
		if !errors.As(err, &pe) || pe.Line != 1 || pe.Col != c.col || !strings.Contains(pe.Msg, "write ?") {
			t.Errorf("Parse(%+q) = %v, want an error at 1:%d saying to write ?", c.line, err, c.col)
		}
	}
	for _, ok := range []string{"deny /srv/é", "deny /srv/caf\xe9", "deny /srv/日本", "deny /srv/x\t# tab"} {
		if _, err := Parse("p", strings.NewReader(ok)); err != nil {
			t.Errorf("Parse(%+q): %v", ok, err)
		}
	}
	if _, err := CompileGlob("/srv/se\u200bcret"); err == nil {
		t.Errorf("CompileGlob accepts a zero-width space (a --deny glob)")
	}
}
