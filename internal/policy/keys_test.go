package policy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/fsnotifyd/fsnotifyd/engine"
	"github.com/fsnotifyd/fsnotifyd/internal/ftype"
	"pgregory.net/rapid"
)

// countingObj is an Object that counts how often it is asked and answers from a KnownObject;
// err, if set, is what every read fails with.
type countingObj struct {
	KnownObject
	err                                error
	typeN, sumN, trustN, sizeN, writeN int
}

func (o *countingObj) FileType() (ftype.Type, error) {
	o.typeN++
	if o.err != nil {
		return ftype.Type{}, o.err
	}
	return o.KnownObject.FileType()
}

func (o *countingObj) SHA256() ([32]byte, error) {
	o.sumN++
	if o.err != nil {
		return [32]byte{}, o.err
	}
	return o.KnownObject.SHA256()
}

func (o *countingObj) Trusted() (bool, error) {
	o.trustN++
	if o.err != nil {
		return false, o.err
	}
	return o.KnownObject.Trusted()
}

func (o *countingObj) Size() (uint64, error) {
	o.sizeN++
	if o.err != nil {
		return 0, o.err
	}
	return o.KnownObject.Size()
}

func (o *countingObj) MountWritable() (bool, error) {
	o.writeN++
	if o.err != nil {
		return false, o.err
	}
	return o.KnownObject.MountWritable()
}

func typeOf(s string) ftype.Type {
	if interp, ok := strings.CutPrefix(s, "script:"); ok {
		return ftype.Type{Kind: ftype.Script, Interp: interp}
	}
	for _, k := range ftype.Kinds() {
		if k.String() == s {
			return ftype.Type{Kind: k}
		}
	}
	panic("no type " + s)
}

// file is a regular file's attributes, all known.
func file(kind string, size uint64, trusted, writable bool) KnownObject {
	yn := func(b bool) YesNo {
		if b {
			return Yes
		}
		return No
	}
	return KnownObject{Type: typeOf(kind), TypeKnown: true, Bytes: size, SizeKnown: true,
		Sum: sha256.Sum256([]byte(kind)), SumKnown: true, Trust: yn(trusted), Writable: yn(writable)}
}

func sumHex(s string) string { h := sha256.Sum256([]byte(s)); return hex.EncodeToString(h[:]) }

func TestDecideObjectKeys(t *testing.T) {
	p := mustParse(t, fmt.Sprintf(`
deny  exec /tmp/**
deny  exec ** mount_writable=yes trusted=no
allow exec ** ftype=elf-executable,script trusted=yes
deny  exec **
deny  open ** ftype=elf-shared-object trusted=no
deny  open /scripts/** ftype=script:python*,script:perl trusted=no
deny  open /big/** size>1M
allow open /small/** size<1K size>0
deny  open /small/**
deny  open /blocked/** sha256=%s,%s
allow open /sum/** sha256!=%s
deny  open /sum/**
deny  open /types/** ftype!=text,empty
`, sumHex("data"), strings.ToUpper(sumHex("text")), sumHex("empty")))
	dir := KnownObject{NotRegular: true, Writable: Yes}
	tests := []struct {
		name string
		path string
		ev   engine.Mask
		obj  Object
		want engine.Verdict
		rule string
	}{
		{"exec from /tmp, even trusted", "/tmp/x", engine.OpenExecPerm, file("elf-executable", 10, true, false), engine.Deny, "policy.rules:2"},
		{"untrusted on a writable mount", "/opt/x", engine.OpenExecPerm, file("elf-executable", 10, false, true), engine.Deny, "policy.rules:3"},
		{"trusted program", "/usr/bin/ls", engine.OpenExecPerm, file("elf-executable", 10, true, true), engine.Allow, "policy.rules:4"},
		{"trusted script, any interpreter", "/usr/bin/x", engine.OpenExecPerm, file("script:sh", 10, true, true), engine.Allow, "policy.rules:4"},
		{"trusted script with no interpreter named", "/usr/bin/x", engine.OpenExecPerm, file("script", 10, true, true), engine.Allow, "policy.rules:4"},
		{"trusted library run", "/usr/lib/ld.so", engine.OpenExecPerm, file("elf-shared-object", 10, true, true), engine.Deny, "policy.rules:5"},
		{"untrusted on a read-only mount", "/ro/x", engine.OpenExecPerm, file("elf-executable", 10, false, false), engine.Deny, "policy.rules:5"},
		{"untrusted library", "/home/a/l.so", engine.OpenPerm, file("elf-shared-object", 10, false, true), engine.Deny, "policy.rules:6"},
		{"trusted library", "/usr/lib/l.so", engine.OpenPerm, file("elf-shared-object", 10, true, true), engine.Allow, "default"},
		{"untrusted python script", "/scripts/a.py", engine.OpenPerm, file("script:python3.11", 10, false, true), engine.Deny, "policy.rules:7"},
		{"untrusted perl script", "/scripts/a.pl", engine.OpenPerm, file("script:perl", 10, false, true), engine.Deny, "policy.rules:7"},
		{"untrusted sh script", "/scripts/a.sh", engine.OpenPerm, file("script:sh", 10, false, true), engine.Allow, "default"},
		{"perl5 is not perl", "/scripts/a.pl", engine.OpenPerm, file("script:perl5", 10, false, true), engine.Allow, "default"},
		{"big", "/big/x", engine.OpenPerm, file("data", 1<<20+1, false, true), engine.Deny, "policy.rules:8"},
		{"1M is not more than 1M", "/big/x", engine.OpenPerm, file("data", 1<<20, false, true), engine.Allow, "default"},
		{"small", "/small/x", engine.OpenPerm, file("data", 1023, false, true), engine.Allow, "policy.rules:9"},
		{"1K is not less than 1K", "/small/x", engine.OpenPerm, file("data", 1024, false, true), engine.Deny, "policy.rules:10"},
		{"empty is not more than 0", "/small/x", engine.OpenPerm, file("empty", 0, false, true), engine.Deny, "policy.rules:10"},
		{"a directory has no size", "/small/d", engine.OpenPerm, dir, engine.Deny, "policy.rules:10"},
		{"blocked by hash", "/blocked/x", engine.OpenPerm, file("data", 1, false, true), engine.Deny, "policy.rules:11"},
		{"blocked by hash, written in upper case", "/blocked/x", engine.OpenPerm, file("text", 1, false, true), engine.Deny, "policy.rules:11"},
		{"another hash", "/blocked/x", engine.OpenPerm, file("empty", 1, false, true), engine.Allow, "default"},
		{"sha256!= holds", "/sum/x", engine.OpenPerm, file("data", 1, false, true), engine.Allow, "policy.rules:12"},
		{"sha256!= fails", "/sum/x", engine.OpenPerm, file("empty", 1, false, true), engine.Deny, "policy.rules:13"},
		{"a directory has no digest: sha256!= holds", "/sum/d", engine.OpenPerm, dir, engine.Allow, "policy.rules:12"},
		{"ftype!= holds", "/types/x", engine.OpenPerm, file("data", 1, false, true), engine.Deny, "policy.rules:14"},
		{"ftype!= fails", "/types/x", engine.OpenPerm, file("text", 1, false, true), engine.Allow, "default"},
		{"a directory has no type: ftype!= holds", "/types/d", engine.OpenPerm, dir, engine.Deny, "policy.rules:14"},
		{"a directory is not trusted", "/d", engine.OpenExecPerm, dir, engine.Deny, "policy.rules:3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := p.Decide(&Request{Path: tt.path, Event: tt.ev, Pid: 9, Obj: tt.obj})
			if d.Verdict != tt.want || d.Source() != tt.rule || d.Err != nil {
				t.Errorf("got %v by %s (err %v); want %v by %s", d.Verdict, d.Source(), d.Err, tt.want, tt.rule)
			}
			ex := p.Explain(&Request{Path: tt.path, Event: tt.ev, Pid: 9, Obj: tt.obj})
			if ex.Decision != d {
				t.Errorf("Explain decided %+v, Decide %+v", ex.Decision, d)
			}
		})
	}
	if !p.NeedsObject() || !p.ReadsContent() || p.Needs(AttrComm) {
		t.Error("Needs")
	}
	q := mustParse(t, "deny /x size>1 mount_writable=yes")
	if !q.NeedsObject() || q.ReadsContent() {
		t.Error("size and mount_writable read no content")
	}
}

func TestDecideSubjectKeys(t *testing.T) {
	p := mustParse(t, `
allow open /cron/** ppid=1 uid=0
deny  open /cron/**
deny  open /ssh/** ancestor=/usr/sbin/sshd
allow open /make/** ancestor=**/make
deny  open /make/**
deny  open /only-cron/** ancestor!=/usr/sbin/cron
allow exec /run/** trusted_exe=yes
deny  exec /run/**
deny  open /orphans/** ppid!=0,1
`)
	sshd := Ancestor{Pid: 600, Exe: "/usr/sbin/sshd", Verified: true}
	bash := Ancestor{Pid: 700, Exe: "/usr/bin/bash", Verified: true}
	make := Ancestor{Pid: 800, Exe: "/usr/bin/make", Verified: true}
	cron := Ancestor{Pid: 500, Exe: "/usr/sbin/cron", Verified: true}
	init := Ancestor{Pid: 1, Exe: "/usr/lib/systemd/systemd", Verified: true}
	chain := func(complete bool, a ...Ancestor) Ancestry { return Ancestry{List: a, Complete: complete} }
	tests := []struct {
		name       string
		path       string
		ev         engine.Mask
		proc       KnownProcess
		want       engine.Verdict
		rule       string
		incomplete bool
	}{
		{"ppid=1 and root", "/cron/x", engine.OpenPerm, KnownProcess{ParentPID: 1, UserID: 0}, engine.Allow, "policy.rules:2", false},
		{"ppid 5", "/cron/x", engine.OpenPerm, KnownProcess{ParentPID: 5, UserID: 0}, engine.Deny, "policy.rules:3", false},
		{"ppid unknown", "/cron/x", engine.OpenPerm, KnownProcess{ParentPID: -1, UserID: 0}, engine.Deny, "policy.rules:3", false},
		{"below sshd", "/ssh/x", engine.OpenPerm, KnownProcess{Ancestry: chain(true, bash, sshd, init)}, engine.Deny, "policy.rules:4", false},
		{"below sshd, chain cut after it", "/ssh/x", engine.OpenPerm, KnownProcess{Ancestry: chain(false, bash, sshd)}, engine.Deny, "policy.rules:4", false},
		{"not below sshd", "/ssh/x", engine.OpenPerm, KnownProcess{Ancestry: chain(true, bash, cron, init)}, engine.Allow, "default", false},
		{"sshd unverified (replaced) is not sshd", "/ssh/x", engine.OpenPerm, KnownProcess{Ancestry: chain(true, bash, Ancestor{Pid: 600, Exe: "/usr/sbin/sshd"}, init)}, engine.Allow, "default", false},
		{"chain cut: a deny may apply, so it does", "/ssh/x", engine.OpenPerm, KnownProcess{Ancestry: chain(false, bash, bash)}, engine.Deny, "policy.rules:4", true},
		{"no ancestors at all (pid 1)", "/ssh/x", engine.OpenPerm, KnownProcess{Ancestry: chain(true)}, engine.Allow, "default", false},
		{"ancestry unknown: gone", "/ssh/x", engine.OpenPerm, KnownProcess{}, engine.Allow, "default", false},
		{"below make", "/make/x", engine.OpenPerm, KnownProcess{Ancestry: chain(true, bash, make, bash, init)}, engine.Allow, "policy.rules:5", false},
		{"make found before the cut", "/make/x", engine.OpenPerm, KnownProcess{Ancestry: chain(false, bash, make)}, engine.Allow, "policy.rules:5", false},
		{"chain cut: an allow must be sure", "/make/x", engine.OpenPerm, KnownProcess{Ancestry: chain(false, bash, bash)}, engine.Deny, "policy.rules:6", false},
		{"ancestor!= holds", "/only-cron/x", engine.OpenPerm, KnownProcess{Ancestry: chain(true, bash, init)}, engine.Deny, "policy.rules:7", false},
		{"ancestor!= fails below cron", "/only-cron/x", engine.OpenPerm, KnownProcess{Ancestry: chain(true, bash, cron, init)}, engine.Allow, "default", false},
		{"ancestor!= with the chain cut denies", "/only-cron/x", engine.OpenPerm, KnownProcess{Ancestry: chain(false, bash)}, engine.Deny, "policy.rules:7", true},
		{"ancestor!= settled before the cut", "/only-cron/x", engine.OpenPerm, KnownProcess{Ancestry: chain(false, cron)}, engine.Allow, "default", false},
		{"an unreadable ancestor may be sshd", "/ssh/x", engine.OpenPerm, KnownProcess{Ancestry: chain(true, bash, Ancestor{Pid: 1, Unreadable: true})}, engine.Deny, "policy.rules:4", true},
		{"an unreadable ancestor may not be make", "/make/x", engine.OpenPerm, KnownProcess{Ancestry: chain(true, bash, Ancestor{Pid: 1, Unreadable: true})}, engine.Deny, "policy.rules:6", false},
		{"make found, another unreadable", "/make/x", engine.OpenPerm, KnownProcess{Ancestry: chain(true, make, Ancestor{Pid: 1, Unreadable: true})}, engine.Allow, "policy.rules:5", false},
		{"trusted executable", "/run/x", engine.OpenExecPerm, KnownProcess{ExeTrust: Yes}, engine.Allow, "policy.rules:8", false},
		{"untrusted executable", "/run/x", engine.OpenExecPerm, KnownProcess{ExeTrust: No}, engine.Deny, "policy.rules:9", false},
		{"executable trust unknown: gone", "/run/x", engine.OpenExecPerm, KnownProcess{}, engine.Deny, "policy.rules:9", false},
		{"ppid!= holds", "/orphans/x", engine.OpenPerm, KnownProcess{ParentPID: 700}, engine.Deny, "policy.rules:10", false},
		{"ppid 0 is a value", "/orphans/x", engine.OpenPerm, KnownProcess{ParentPID: 0}, engine.Allow, "default", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := Request{Path: tt.path, Event: tt.ev, Pid: 9, Proc: tt.proc}
			d := p.Decide(&req)
			if d.Verdict != tt.want || d.Source() != tt.rule || d.Err != nil || d.AncestryIncomplete != tt.incomplete {
				t.Errorf("got %v by %s (err %v, ancestry incomplete %v); want %v by %s (%v)",
					d.Verdict, d.Source(), d.Err, d.AncestryIncomplete, tt.want, tt.rule, tt.incomplete)
			}
			if ex := p.Explain(&req); ex.Decision.Verdict != d.Verdict || ex.Decision.Rule != d.Rule || ex.Decision.AncestryIncomplete != d.AncestryIncomplete {
				t.Errorf("Explain decided %+v, Decide %+v", ex.Decision, d)
			}
		})
	}
}

// With the ancestry cut, or an ancestor's executable unreadable, the decision is sound: if it
// allows, the whole chain it is part of is allowed by the same policy; so a chain the guard
// cannot read to its end, or in full, can never turn a deny into an allow.
func TestDecideIncompleteAncestryIsSound(t *testing.T) {
	exes := []string{"/usr/sbin/sshd", "/usr/bin/bash", "/usr/bin/make", "/usr/sbin/cron", "/tmp/x"}
	globs := []string{"/usr/sbin/sshd", "**/make", "/usr/sbin/*", "/tmp/**"}
	rapid.Check(t, func(t *rapid.T) {
		var b strings.Builder
		if rapid.Bool().Draw(t, "default deny") {
			b.WriteString("default deny\n")
		}
		for i, n := 0, rapid.IntRange(0, 5).Draw(t, "rules"); i < n; i++ {
			verdict := rapid.SampledFrom([]string{"allow", "deny"}).Draw(t, "verdict")
			op := rapid.SampledFrom([]string{"=", "!="}).Draw(t, "op")
			extra := rapid.SampledFrom([]string{"", "uid=0", "uid!=0"}).Draw(t, "extra")
			fmt.Fprintf(&b, "%s open /x/** ancestor%s%s %s\n", verdict, op, rapid.SampledFrom(globs).Draw(t, "glob"), extra)
		}
		p, err := Parse("p", strings.NewReader(b.String()))
		if err != nil {
			t.Fatalf("%v\n%s", err, b.String())
		}
		// The real chain, all of it readable; then what the guard sees of it: a prefix (cut
		// when shorter), some executables unreadable.
		real := []Ancestor{}
		for i, n := 0, rapid.IntRange(0, 5).Draw(t, "length"); i < n; i++ {
			real = append(real, Ancestor{Pid: int32(100 + i), Exe: rapid.SampledFrom(exes).Draw(t, "exe"),
				Verified: rapid.IntRange(0, 4).Draw(t, "verified") > 0})
		}
		seen := Ancestry{List: []Ancestor{}} // not nil: nil is a process that is gone
		n := rapid.IntRange(0, len(real)).Draw(t, "seen")
		seen.Complete = n == len(real) && rapid.Bool().Draw(t, "read to the top")
		for _, a := range real[:n] {
			if rapid.IntRange(0, 4).Draw(t, "unreadable") == 0 {
				a = Ancestor{Pid: a.Pid, Unreadable: true}
			}
			seen.List = append(seen.List, a)
		}
		uid := int64(rapid.SampledFrom([]int{0, 1000}).Draw(t, "uid"))
		d := p.Decide(&Request{Path: "/x/a", Event: engine.OpenPerm, Pid: 5, Proc: KnownProcess{UserID: uid, Ancestry: seen}})
		if d.Verdict != engine.Allow {
			return
		}
		whole := Ancestry{List: real, Complete: true}
		if r := p.Decide(&Request{Path: "/x/a", Event: engine.OpenPerm, Pid: 5, Proc: KnownProcess{UserID: uid, Ancestry: whole}}); r.Verdict != engine.Allow {
			t.Fatalf("%+v was allowed (by %s), but the chain it is part of, %+v, is denied (by %s) under\n%s",
				seen, d.Source(), real, r.Source(), b.String())
		}
	})
}

// Object attributes are read only when a rule that matched path and event needs them, at
// most once per request, and in the order written: a rule's conditions stop at the first
// that fails.
func TestLazyObjectAttributes(t *testing.T) {
	p := mustParse(t, `
deny open /a/** ftype=script trusted=no
deny open /a/** ftype=text trusted=no
deny open /b/** size>10 sha256=`+strings.Repeat("0", 64)+`
deny exec /c/** mount_writable=yes
deny open /d/** ancestor=/x ppid=5 trusted_exe=no
`)
	tests := []struct {
		path                               string
		ev                                 engine.Mask
		obj                                KnownObject
		typeN, sumN, trustN, sizeN, writeN int
		ancN, ppidN, trustedExeN           int
	}{
		{"/a/x", engine.OpenPerm, file("script:sh", 3, true, true), 1, 0, 1, 0, 0, 0, 0, 0},
		{"/a/x", engine.OpenPerm, file("data", 3, true, true), 1, 0, 0, 0, 0, 0, 0, 0}, // ftype fails twice, read once
		{"/a/x", engine.OpenExecPerm, file("data", 3, true, true), 0, 0, 0, 0, 0, 0, 0, 0},
		{"/b/x", engine.OpenPerm, file("data", 3, true, true), 0, 0, 0, 1, 0, 0, 0, 0},   // size fails: no hashing
		{"/b/x", engine.OpenPerm, file("data", 300, true, true), 0, 1, 0, 1, 0, 0, 0, 0}, // size holds: hashed
		{"/c/x", engine.OpenPerm, file("data", 3, true, true), 0, 0, 0, 0, 0, 0, 0, 0},
		{"/c/x", engine.OpenExecPerm, file("data", 3, true, true), 0, 0, 0, 0, 1, 0, 0, 0},
		{"/d/x", engine.OpenPerm, file("data", 3, true, true), 0, 0, 0, 0, 0, 1, 0, 0}, // complete chain without /x: fails
	}
	for _, tt := range tests {
		obj := &countingObj{KnownObject: tt.obj}
		proc := newProc("cat", 1)
		proc.ancestry = Ancestry{List: []Ancestor{{Pid: 1, Exe: "/sbin/init", Verified: true}}, Complete: true}
		p.Decide(&Request{Path: tt.path, Event: tt.ev, Pid: 1, Proc: proc, Obj: obj})
		got := []int{obj.typeN, obj.sumN, obj.trustN, obj.sizeN, obj.writeN, proc.ancN, proc.ppidN, proc.trustedExeN}
		want := []int{tt.typeN, tt.sumN, tt.trustN, tt.sizeN, tt.writeN, tt.ancN, tt.ppidN, tt.trustedExeN}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s %s %s: reads (type sum trust size mount ancestors ppid trusted_exe) %v, want %v",
				tt.ev, tt.path, tt.obj.Type, got, want)
		}
	}
}

// A failure to read a file attribute is the guard's: Err is set, the verdict is deny, the
// rule the one being evaluated; a deadline says TimedOut (the guard's on-timeout verdict).
// A request without an Object has no file attributes: that is an error too, never a
// condition quietly failing (a deny rule on ftype= must not be skipped for want of a
// descriptor).
func TestDecideObjectErrors(t *testing.T) {
	p := mustParse(t, "allow open /x/** cache\nallow open /k/** trusted=yes\ndeny open /k/**\n")
	deadline := fmt.Errorf("hashing: %w", context.DeadlineExceeded)
	for _, tt := range []struct {
		name     string
		obj      Object
		want     engine.Verdict
		rule     string
		isErr    bool
		timedOut bool
	}{
		{"trusted", &countingObj{KnownObject: KnownObject{Trust: Yes}}, engine.Allow, "policy.rules:2", false, false},
		{"deadline", &countingObj{err: deadline}, engine.Deny, "error in policy.rules:2", true, true},
		{"read error", &countingObj{err: syscall.EIO}, engine.Deny, "error in policy.rules:2", true, false},
		{"no object", nil, engine.Deny, "error in policy.rules:2", true, false},
		{"unknown", KnownObject{}, engine.Deny, "error in policy.rules:2", true, false},
		{"not regular: untrusted", KnownObject{NotRegular: true}, engine.Deny, "policy.rules:3", false, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			d := p.Decide(&Request{Path: "/k/a", Event: engine.OpenPerm, Pid: 7, Obj: tt.obj})
			if d.Verdict != tt.want || d.Source() != tt.rule || (d.Err != nil) != tt.isErr || d.TimedOut() != tt.timedOut || d.Cache {
				t.Fatalf("got %v by %s err %v timed out %v; want %v by %s", d.Verdict, d.Source(), d.Err, d.TimedOut(), tt.want, tt.rule)
			}
			if tt.isErr && !strings.Contains(d.Err.Error(), "reading the file's trust for trusted: ") {
				t.Errorf("Err = %v, want it to name the attribute", d.Err)
			}
		})
	}
	// A file attribute that a rule never reaches is never asked for.
	if d := p.Decide(&Request{Path: "/x/a", Event: engine.OpenPerm, Pid: 7}); d.Err != nil || d.Verdict != engine.Allow || !d.Cache {
		t.Errorf("no object, no file condition: %+v", d)
	}
	// The process's side: an executable whose trust cannot be settled in time.
	q := mustParse(t, "allow exec /k/** trusted_exe=yes\n")
	proc := newProc("x", 0)
	proc.err = deadline
	if d := q.Decide(&Request{Path: "/k/a", Event: engine.OpenExecPerm, Pid: 7, Proc: proc}); !d.TimedOut() ||
		!strings.Contains(d.Err.Error(), "reading the process's executable's trust for trusted_exe: ") {
		t.Errorf("trusted_exe past the deadline: %+v", d)
	}
	proc.err = fmt.Errorf("x: %w", os.ErrProcessDone)
	if d := q.Decide(&Request{Path: "/k/a", Event: engine.OpenExecPerm, Pid: 7, Proc: proc}); d.Err != nil || d.Rule != nil {
		t.Errorf("trusted_exe of a process that is gone: %+v", d)
	}
	if (Decision{Err: errors.New("x")}).TimedOut() || (Decision{}).TimedOut() {
		t.Error("TimedOut without a deadline")
	}
}

func TestKnownObject(t *testing.T) {
	var k KnownObject
	if _, err := k.FileType(); !errors.Is(err, ErrUnknown) {
		t.Error("type")
	}
	if _, err := k.SHA256(); !errors.Is(err, ErrUnknown) {
		t.Error("sha256")
	}
	if _, err := k.Trusted(); !errors.Is(err, ErrUnknown) {
		t.Error("trusted")
	}
	if _, err := k.Size(); !errors.Is(err, ErrUnknown) {
		t.Error("size")
	}
	if _, err := k.MountWritable(); !errors.Is(err, ErrUnknown) {
		t.Error("mount")
	}
	k.NotRegular = true
	if _, err := k.FileType(); !errors.Is(err, ErrNoValue) {
		t.Error("a directory's type")
	}
	if tr, err := k.Trusted(); tr || err != nil {
		t.Error("a directory is untrusted")
	}
	if _, err := k.Size(); !errors.Is(err, ErrNoValue) {
		t.Error("a directory's size")
	}
	if YesNo(9).String() != "unknown" || Yes.String() != "yes" || No.String() != "no" {
		t.Error("YesNo.String")
	}
	kp := KnownProcess{ParentPID: -1}
	if _, err := kp.PPid(); !errors.Is(err, os.ErrProcessDone) {
		t.Error("ppid -1 is known")
	}
	if _, err := kp.Ancestors(); !errors.Is(err, os.ErrProcessDone) {
		t.Error("nil ancestry is known")
	}
	if _, err := kp.TrustedExe(); !errors.Is(err, os.ErrProcessDone) {
		t.Error("unknown trust is known")
	}
	if a, err := (KnownProcess{Ancestry: Ancestry{List: []Ancestor{}, Complete: true}}).Ancestors(); err != nil || !a.Complete {
		t.Error("an empty ancestry is known")
	}
}

func TestAttrKinds(t *testing.T) {
	for _, k := range condKeys {
		obj := k.attr == AttrFtype || k.attr == AttrSHA256 || k.attr == AttrTrusted || k.attr == AttrSize || k.attr == AttrMountWritable
		if k.attr.IsObject() != obj {
			t.Errorf("%s: IsObject %v", k.name, !obj)
		}
		content := k.attr == AttrFtype || k.attr == AttrSHA256 || k.attr == AttrTrusted || k.attr == AttrTrustedExe
		if k.attr.ReadsContent() != content {
			t.Errorf("%s: ReadsContent %v", k.name, !content)
		}
		if k.attr.String() != k.name {
			t.Errorf("%s: String %q", k.name, k.attr)
		}
	}
}

func TestRuleUsing(t *testing.T) {
	p := mustParse(t, "deny /a uid=0\ndeny /b ppid=1 ftype=text\n")
	if r, a := p.RuleUsing(AttrFtype, AttrPPID); r == nil || r.String() != "policy.rules:2" || a != AttrPPID {
		t.Errorf("RuleUsing: %v %v", r, a)
	}
	if r, _ := p.RuleUsing(AttrSHA256); r != nil {
		t.Errorf("RuleUsing sha256: %v", r)
	}
}

func TestDecideObjectKeysDoNotAllocate(t *testing.T) {
	p := mustParse(t, `
deny open ** ftype=elf-shared-object trusted=no
deny open ** ftype=script:python* exe=/usr/bin/python3* trusted=no
deny exec /tmp/** size>1M mount_writable=yes
allow open ** ancestor=**/make ppid!=1 trusted_exe=yes
`)
	proc := newProc("python3", 1000)
	proc.exe, proc.exeTrust = "/usr/bin/python3.11", Yes
	proc.ancestry = Ancestry{List: []Ancestor{{Pid: 5, Exe: "/usr/bin/make", Verified: true}}, Complete: true}
	obj := &countingObj{KnownObject: file("script:python3", 10, false, true)}
	reqs := []*Request{
		{Path: "/srv/a.py", Event: engine.OpenPerm, Pid: 7, Proc: proc, Obj: obj},
		{Path: "/tmp/a", Event: engine.OpenExecPerm, Pid: 7, Proc: proc, Obj: obj},
		{Path: "/x", Event: engine.OpenPerm, Pid: 7, Proc: proc, Obj: &countingObj{KnownObject: file("text", 1, false, true)}},
	}
	allocs := testing.AllocsPerRun(100, func() {
		for _, r := range reqs {
			p.Decide(r)
		}
	})
	if allocs != 0 {
		t.Fatalf("Decide allocates %v times per run", allocs)
	}
}

func TestParseSizeAndFileType(t *testing.T) {
	for s, want := range map[string]uint64{"0": 0, "10": 10, "1K": 1024, "2M": 2 << 20, "3G": 3 << 30, "1T": 1 << 40} {
		if n, err := ParseSize(s); err != nil || n != want {
			t.Errorf("ParseSize(%q) = %d, %v", s, n, err)
		}
	}
	for _, s := range []string{"", "k", "1k", "1.5M", "-1", "99999999999999999999"} {
		if _, err := ParseSize(s); err == nil {
			t.Errorf("ParseSize(%q) accepted", s)
		}
	}
	for _, s := range []string{"elf-executable", "elf-shared-object", "elf-other", "script", "script:python3", "text", "empty", "data"} {
		if typ, err := ParseFileType(s); err != nil || typ.String() != s {
			t.Errorf("ParseFileType(%q) = %v, %v", s, typ, err)
		}
	}
	for _, s := range []string{"elf", "script:", "script:a b", "script:/bin/sh", "elf-*", ""} {
		if _, err := ParseFileType(s); err == nil {
			t.Errorf("ParseFileType(%q) accepted", s)
		}
	}
}
