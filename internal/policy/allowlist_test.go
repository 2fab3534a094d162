package policy

import (
	"os"
	"testing"

	"github.com/fsnotifyd/fsnotifyd/engine"
	"github.com/fsnotifyd/fsnotifyd/internal/ftype"
)

// TestAllowlistPolicy checks the decisions the allowlisting example of docs/policy.md
// (testdata/allowlist.rules) promises, with the process and file described: the rule that
// decides each, and that the file is not read or hashed where a cheaper condition settles it.
func TestAllowlistPolicy(t *testing.T) {
	f, err := os.Open("testdata/allowlist.rules")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	p, err := Parse("allowlist.rules", f)
	if err != nil {
		t.Fatal(err)
	}
	if ws := p.LintWith(LintOptions{Weak: true}); len(ws) != 0 {
		t.Errorf("lint: %v", ws)
	}
	const ldso = "/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"
	elf := ftype.Type{Kind: ftype.ElfExecutable}
	so := ftype.Type{Kind: ftype.ElfSharedObject}
	py := ftype.Type{Kind: ftype.Script, Interp: "python3"}
	sh := ftype.Type{Kind: ftype.Script, Interp: "sh"}
	pl := ftype.Type{Kind: ftype.Script, Interp: "perl"}
	text := ftype.Type{Kind: ftype.Text}
	empty := ftype.Type{Kind: ftype.Empty}
	obj := func(typ ftype.Type, trusted, writable YesNo) KnownObject {
		return KnownObject{Type: typ, TypeKnown: true, Trust: trusted, Writable: writable}
	}
	sized := func(o KnownObject, n uint64) KnownObject {
		o.Bytes, o.SizeKnown = n, true
		return o
	}
	for _, tt := range []struct {
		name  string
		event engine.Mask
		path  string
		exe   string
		obj   KnownObject // an attribute left Unknown must not be read
		want  engine.Verdict
		rule  string
	}{
		{"trusted program", engine.OpenExecPerm, "/usr/bin/ls", "/usr/bin/bash", obj(elf, Yes, Yes), engine.Allow, "allowlist.rules:52"},
		{"untrusted program in /usr/local", engine.OpenExecPerm, "/usr/local/bin/x", "/usr/bin/bash", obj(elf, No, Yes), engine.Deny, "allowlist.rules:51"},
		{"untrusted program on a read-only mount", engine.OpenExecPerm, "/opt/ro/x", "/usr/bin/bash", obj(elf, No, No), engine.Deny, "allowlist.rules:53"},
		{"anything in /tmp, unread", engine.OpenExecPerm, "/tmp/x", "/usr/bin/bash", KnownObject{}, engine.Deny, "allowlist.rules:17"},
		{"a trusted copy in a home dir", engine.OpenExecPerm, "/home/ann/ls", "/usr/bin/bash", KnownObject{}, engine.Deny, "allowlist.rules:20"},
		{"in /dev/shm", engine.OpenExecPerm, "/dev/shm/x", "/usr/bin/bash", KnownObject{}, engine.Deny, "allowlist.rules:19"},
		{"ld.so /tmp/prog, unread", engine.OpenPerm, "/tmp/prog", ldso, KnownObject{}, engine.Deny, "allowlist.rules:31"},
		{"ld.so an untrusted program, unread", engine.OpenPerm, "/opt/x", ldso, KnownObject{}, engine.Deny, "allowlist.rules:31"},
		{"ld.so a trusted program (python3, then any script), unread", engine.OpenPerm, "/usr/bin/python3.11", ldso, KnownObject{}, engine.Deny, "allowlist.rules:31"},
		{"multilib's 32-bit loader", engine.OpenPerm, "/opt/x", "/usr/lib32/ld-linux.so.2", KnownObject{}, engine.Deny, "allowlist.rules:31"},
		{"musl's loader (its libc.so)", engine.OpenPerm, "/opt/x", "/usr/lib/x86_64-linux-musl/libc.so", KnownObject{}, engine.Deny, "allowlist.rules:31"},
		{"a vendor's loader", engine.OpenPerm, "/opt/x", "/opt/vendor/lib/ld-linux-x86-64.so.2", KnownObject{}, engine.Deny, "allowlist.rules:31"},
		{"powerpc's ld64.so.2", engine.OpenPerm, "/opt/x", "/usr/lib/powerpc64le-linux-gnu/ld64.so.2", KnownObject{}, engine.Deny, "allowlist.rules:31"},
		{"python3 an untrusted script", engine.OpenPerm, "/srv/x.py", "/usr/bin/python3.11", sized(obj(text, No, Unknown), 9), engine.Deny, "allowlist.rules:39"},
		{"python3 an untrusted #! script", engine.OpenPerm, "/srv/tool", "/usr/bin/python3.11", obj(py, No, Unknown), engine.Deny, "allowlist.rules:38"},
		{"python3 a trusted module", engine.OpenPerm, "/usr/lib/python3/dist-packages/a.py", "/usr/bin/python3.11", sized(obj(text, Yes, Unknown), 9), engine.Allow, ""},
		{"python3 creates x.py, unhashed", engine.OpenPerm, "/srv/x.py", "/usr/bin/python3.11", sized(obj(empty, Unknown, Unknown), 0), engine.Allow, ""},
		{"python3 reads data, unhashed", engine.OpenPerm, "/srv/data.json", "/usr/bin/python3.11", obj(text, Unknown, Unknown), engine.Allow, ""},
		{"bash an untrusted #! script", engine.OpenPerm, "/srv/run", "/usr/bin/bash", obj(sh, No, Unknown), engine.Deny, "allowlist.rules:40"},
		{"dash x.sh", engine.OpenPerm, "/srv/x.sh", "/usr/bin/dash", sized(obj(text, No, Unknown), 9), engine.Deny, "allowlist.rules:41"},
		{"bash creates x.sh (> x.sh), unhashed", engine.OpenPerm, "/srv/x.sh", "/usr/bin/bash", sized(obj(empty, Unknown, Unknown), 0), engine.Allow, ""},
		{"perl an untrusted #! script", engine.OpenPerm, "/srv/tool", "/usr/bin/perl", obj(pl, No, Unknown), engine.Deny, "allowlist.rules:42"},
		{"perl e.pl", engine.OpenPerm, "/srv/e.pl", "/usr/bin/perl5.36.0", sized(obj(text, No, Unknown), 9), engine.Deny, "allowlist.rules:43"},
		{"perl a module", engine.OpenPerm, "/srv/lib/E.pm", "/usr/bin/perl", sized(obj(text, No, Unknown), 9), engine.Deny, "allowlist.rules:44"},
		{"an untrusted shared object", engine.OpenPerm, "/opt/lib/libx.so", "/usr/bin/app", obj(so, No, Unknown), engine.Deny, "allowlist.rules:47"},
		{"a trusted shared object", engine.OpenPerm, "/usr/lib/libc.so.6", "/usr/bin/app", obj(so, Yes, Unknown), engine.Allow, ""},
		{"a text file, unhashed", engine.OpenPerm, "/etc/hosts", "/usr/bin/cat", obj(text, Unknown, Unknown), engine.Allow, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			req := Request{Event: tt.event, Path: tt.path, Pid: 42,
				Proc: KnownProcess{Name: "x", UserID: 1000, ExePath: tt.exe, GroupIDs: []uint32{1000}, ParentPID: 1},
				Obj:  tt.obj}
			d := p.Decide(&req)
			if d.Err != nil {
				t.Fatalf("error %v (an attribute read that should not be: %s)", d.Err, d.Source())
			}
			rule := ""
			if d.Rule != nil {
				rule = d.Rule.String()
			}
			if d.Verdict != tt.want || rule != tt.rule {
				t.Fatalf("%v by %q, want %v by %q", d.Verdict, rule, tt.want, tt.rule)
			}
		})
	}
}
