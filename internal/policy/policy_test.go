package policy

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/fsnotifyd/fsnotifyd/engine"
)

// countingProc is a Process that counts how often it is asked. A zero comm or exe, or a
// negative uid, is unknown (the process is gone); err, if set, is what every read fails with.
type countingProc struct {
	comm                       string
	uid                        int64
	groups                     []uint32
	exe                        string
	exeUnverified              bool
	ppid                       int64
	ancestry                   Ancestry
	exeTrust                   YesNo
	err                        error
	commN, uidN, groupsN, exeN int
	ppidN, ancN, trustedExeN   int
}

func newProc(comm string, uid int64) *countingProc {
	return &countingProc{comm: comm, uid: uid}
}

func (c *countingProc) Comm() (string, error) {
	c.commN++
	if c.err != nil {
		return "", c.err
	}
	return KnownProcess{Name: c.comm}.Comm()
}

func (c *countingProc) UID() (uint32, error) {
	c.uidN++
	if c.err != nil {
		return 0, c.err
	}
	return KnownProcess{UserID: c.uid}.UID()
}

func (c *countingProc) Groups() ([]uint32, error) {
	c.groupsN++
	if c.err != nil {
		return nil, c.err
	}
	return KnownProcess{GroupIDs: c.groups}.Groups()
}

func (c *countingProc) Exe() (string, bool, error) {
	c.exeN++
	if c.err != nil {
		return "", false, c.err
	}
	return KnownProcess{ExePath: c.exe, ExeUnverified: c.exeUnverified}.Exe()
}

func (c *countingProc) known() KnownProcess {
	return KnownProcess{ParentPID: c.ppid, Ancestry: c.ancestry, ExeTrust: c.exeTrust}
}

func (c *countingProc) PPid() (int32, error) {
	c.ppidN++
	if c.err != nil {
		return 0, c.err
	}
	return c.known().PPid()
}

func (c *countingProc) Ancestors() (Ancestry, error) {
	c.ancN++
	if c.err != nil {
		return Ancestry{}, c.err
	}
	return c.known().Ancestors()
}

func (c *countingProc) TrustedExe() (bool, error) {
	c.trustedExeN++
	if c.err != nil {
		return false, c.err
	}
	return c.known().TrustedExe()
}

func TestDecide(t *testing.T) {
	p := mustParse(t, `
deny  open /srv/**/*.sh comm=bash
allow exec /srv/bin/*
deny  exec /srv/**
allow *    /srv/public/** cache
deny  *    /srv/private/** uid!=0
deny  pre_access /cold/** errno=EIO
deny  open /pids/* pid=42,43
allow open /pids/* pid!=42
deny  open /pids/*
`)
	tests := []struct {
		name  string
		path  string
		ev    engine.Mask
		pid   int32
		proc  Process
		want  engine.Verdict
		errno syscall.Errno
		cache bool
		rule  string
	}{
		{"comm matches", "/srv/a/b.sh", engine.OpenPerm, 1, KnownProcess{Name: "bash", UserID: 1000}, engine.Deny, 0, false, "policy.rules:2"},
		{"comm differs", "/srv/a/b.sh", engine.OpenPerm, 1, KnownProcess{Name: "zsh", UserID: 1000}, engine.Allow, 0, false, "default"},
		{"comm unknown", "/srv/a/b.sh", engine.OpenPerm, 1, KnownProcess{Name: "", UserID: 1000}, engine.Allow, 0, false, "default"},
		{"no process", "/srv/a/b.sh", engine.OpenPerm, 0, nil, engine.Allow, 0, false, "default"},
		{"event kind differs", "/srv/a/b.sh", engine.AccessPerm, 1, KnownProcess{Name: "bash", UserID: 1000}, engine.Allow, 0, false, "default"},
		{"notification open counts as open", "/srv/a/b.sh", engine.Open, 1, KnownProcess{Name: "bash", UserID: 1000}, engine.Deny, 0, false, "policy.rules:2"},
		{"exec allowed first", "/srv/bin/tool", engine.OpenExecPerm, 1, nil, engine.Allow, 0, false, "policy.rules:3"},
		{"exec and open bits together", "/srv/bin/tool", engine.OpenPerm | engine.OpenExecPerm, 1, nil, engine.Allow, 0, false, "policy.rules:3"},
		{"exec denied below", "/srv/bin/sub/tool", engine.OpenExecPerm, 1, nil, engine.Deny, 0, false, "policy.rules:4"},
		{"notification exec", "/srv/x", engine.OpenExec, 1, nil, engine.Deny, 0, false, "policy.rules:4"},
		{"cacheable allow", "/srv/public/a", engine.OpenPerm, 1, nil, engine.Allow, 0, true, "policy.rules:5"},
		{"uid!=0 holds", "/srv/private/a", engine.OpenPerm, 1, KnownProcess{Name: "cat", UserID: 1000}, engine.Deny, 0, false, "policy.rules:6"},
		{"uid!=0 fails for root", "/srv/private/a", engine.OpenPerm, 1, KnownProcess{Name: "cat", UserID: 0}, engine.Allow, 0, false, "default"},
		{"uid unknown: condition never holds", "/srv/private/a", engine.OpenPerm, 1, KnownProcess{Name: "cat", UserID: -1}, engine.Allow, 0, false, "default"},
		{"errno", "/cold/x", engine.PreAccess, 1, nil, engine.Deny, syscall.EIO, false, "policy.rules:7"},
		{"errno rule not for open", "/cold/x", engine.OpenPerm, 1, nil, engine.Allow, 0, false, "default"},
		{"pid list", "/pids/a", engine.OpenPerm, 43, nil, engine.Deny, 0, false, "policy.rules:8"},
		{"pid!= holds", "/pids/a", engine.OpenPerm, 44, nil, engine.Allow, 0, false, "policy.rules:9"},
		{"pid unknown", "/pids/a", engine.OpenPerm, 0, nil, engine.Deny, 0, false, "policy.rules:10"},
		{"no rule", "/elsewhere", engine.OpenPerm, 1, nil, engine.Allow, 0, false, "default"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := p.Decide(&Request{Path: tt.path, Event: tt.ev, Pid: tt.pid, Proc: tt.proc})
			if d.Verdict != tt.want || d.Errno != tt.errno || d.Cache != tt.cache || d.Source() != tt.rule {
				t.Errorf("got %v errno %d cache %v by %s; want %v errno %d cache %v by %s",
					d.Verdict, d.Errno, d.Cache, d.Source(), tt.want, tt.errno, tt.cache, tt.rule)
			}
			if (d.Rule == nil) != (tt.rule == "default") {
				t.Errorf("Rule = %v", d.Rule)
			}
			resp := d.Response()
			if resp.Verdict != d.Verdict || resp.Errno != d.Errno || resp.Cache != d.Cache {
				t.Errorf("Response() = %+v", resp)
			}
		})
	}
}

func TestDefaultDeny(t *testing.T) {
	p := mustParse(t, "default deny\nallow * /usr/**\n")
	if d := p.Decide(&Request{Path: "/etc/shadow", Event: engine.OpenPerm}); d.Verdict != engine.Deny || d.Rule != nil || d.Cache {
		t.Errorf("got %+v", d)
	}
	p.CacheAllows = true
	if d := p.Decide(&Request{Path: "/etc/shadow", Event: engine.OpenPerm}); d.Cache {
		t.Errorf("a deny is never cached: %+v", d)
	}
	if d := p.Decide(&Request{Path: "/usr/bin/ls", Event: engine.OpenPerm}); d.Verdict != engine.Allow || !d.Cache {
		t.Errorf("got %+v", d)
	}
}

func TestCacheSafety(t *testing.T) {
	p := mustParse(t, `
deny  open /data/secret/* comm=bash
allow open /data/** cache
allow open /opt/** uid=0 cache
deny  open /opt/**
allow open /tmp/** cache
`)
	tests := []struct {
		path  string
		comm  string
		cache bool
		why   string
	}{
		{"/data/secret/a", "cat", false, "bash would be denied: the allow depends on the process"},
		{"/data/public/a", "cat", true, "no process-dependent rule matches the path"},
		{"/opt/x", "cat", false, "the deciding rule has a condition"},
		{"/tmp/x", "cat", true, "plain cache rule"},
	}
	for _, tt := range tests {
		d := p.Decide(&Request{Path: tt.path, Event: engine.OpenPerm, Proc: KnownProcess{Name: tt.comm, UserID: 0}})
		if d.Verdict != engine.Allow || d.Cache != tt.cache {
			t.Errorf("%s: %+v; want allow cache=%v (%s)", tt.path, d, tt.cache, tt.why)
		}
	}
	// With --cache, the default allow is cached too, under the same condition.
	p.CacheAllows = true
	if d := p.Decide(&Request{Path: "/elsewhere", Event: engine.OpenPerm}); !d.Cache {
		t.Errorf("default allow with CacheAllows: %+v", d)
	}
	q := mustParse(t, "deny open /x/* comm=bash\n")
	q.CacheAllows = true
	if d := q.Decide(&Request{Path: "/x/a", Event: engine.OpenPerm, Proc: KnownProcess{Name: "cat", UserID: 0}}); d.Cache {
		t.Errorf("default allow after a skipped deny must not be cached: %+v", d)
	}
}

// Process attributes are fetched only when a rule that matched path and event needs them,
// and at most once per request.
func TestLazyAttributes(t *testing.T) {
	p := mustParse(t, `
deny open /a/** comm=bash
deny open /a/** comm=zsh
deny open /a/** uid=5
deny exec /b/** comm=bash
deny open /c/**
deny open /e/** exe=/bin/* gid=5
deny open /e/** exe!=/sbin/* gid=5
deny open /f/** exe=/bin/* uid=5
`)
	tests := []struct {
		path                       string
		ev                         engine.Mask
		commN, uidN, groupsN, exeN int
	}{
		{"/a/x", engine.OpenPerm, 1, 1, 0, 0},
		{"/b/x", engine.OpenPerm, 0, 0, 0, 0}, // event differs
		{"/c/x", engine.OpenPerm, 0, 0, 0, 0}, // path differs
		{"/d/x", engine.OpenPerm, 0, 0, 0, 0},
		{"/b/x", engine.OpenExecPerm, 1, 0, 0, 0},
		{"/e/x", engine.OpenPerm, 0, 0, 1, 1}, // exe and groups, each read once for two rules
		{"/f/x", engine.OpenPerm, 0, 0, 0, 1}, // the second condition is not evaluated
	}
	for _, tt := range tests {
		proc := newProc("cat", 1)
		proc.exe, proc.groups = "/usr/bin/cat", []uint32{1}
		p.Decide(&Request{Path: tt.path, Event: tt.ev, Pid: 1, Proc: proc})
		if proc.commN != tt.commN || proc.uidN != tt.uidN || proc.groupsN != tt.groupsN || proc.exeN != tt.exeN {
			t.Errorf("%s %s: Comm called %d times, UID %d, Groups %d, Exe %d; want %d, %d, %d, %d", tt.ev, tt.path,
				proc.commN, proc.uidN, proc.groupsN, proc.exeN, tt.commN, tt.uidN, tt.groupsN, tt.exeN)
		}
	}
	if p.NeedsPreContent() {
		t.Error("NeedsPreContent")
	}
	q := mustParse(t, "deny open /x\n")
	if q.NeedsComm() || q.NeedsUID() {
		t.Error("a policy without conditions needs no attributes")
	}
}

func TestDecideDoesNotAllocate(t *testing.T) {
	p := mustParse(t, `
allow open /usr/** cache
deny open,exec /srv/**/*.sh comm=bash,dash
deny * /home/*/.ssh/id_* uid!=0
allow open /var/lib/x/** exe=/usr/bin/*,/opt/**/bin/* gid=10
deny * **/*.key
`)
	proc := newProc("bash", 1000)
	proc.exe, proc.groups = "/opt/app/bin/run", []uint32{1000, 10}
	reqs := []*Request{
		{Path: "/usr/lib/libc.so.6", Event: engine.OpenPerm, Pid: 7, Proc: proc},
		{Path: "/srv/app/run.sh", Event: engine.OpenExecPerm, Pid: 7, Proc: proc},
		{Path: "/home/ann/.ssh/id_rsa", Event: engine.OpenPerm, Pid: 7, Proc: proc},
		{Path: "/var/lib/x/y/z/w.key", Event: engine.OpenPerm, Pid: 7, Proc: proc},
		{Path: "/var/lib/x/y/z/w", Event: engine.OpenPerm, Pid: 7, Proc: proc},
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

func TestDecideConcurrent(t *testing.T) {
	p := mustParse(t, "deny open /x/** comm=bash\nallow * /x/** cache\n")
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 1000; j++ {
				d := p.Decide(&Request{Path: "/x/a", Event: engine.OpenPerm, Proc: KnownProcess{Name: "bash", UserID: 0}})
				if d.Verdict != engine.Deny {
					t.Error("wrong verdict")
					return
				}
			}
		}()
	}
	wg.Wait()
}

func TestKnownProcess(t *testing.T) {
	k := KnownProcess{Name: "", UserID: -1}
	if _, err := k.Comm(); !errors.Is(err, os.ErrProcessDone) {
		t.Error("empty comm is known")
	}
	if _, err := k.UID(); !errors.Is(err, os.ErrProcessDone) {
		t.Error("negative uid is known")
	}
	if _, err := k.Groups(); !errors.Is(err, os.ErrProcessDone) {
		t.Error("nil groups are known")
	}
	if _, _, err := k.Exe(); !errors.Is(err, os.ErrProcessDone) {
		t.Error("empty exe is known")
	}
	if _, err := (KnownProcess{UserID: 1 << 33}).UID(); err == nil {
		t.Error("out-of-range uid is known")
	}
	if u, err := (KnownProcess{UserID: 7}).UID(); err != nil || u != 7 {
		t.Error("uid 7")
	}
	if g, err := (KnownProcess{GroupIDs: []uint32{}}).Groups(); err != nil || len(g) != 0 {
		t.Error("an empty group list is known")
	}
	if p, v, err := (KnownProcess{ExePath: "/bin/x", ExeUnverified: true}).Exe(); err != nil || v || p != "/bin/x" {
		t.Error("unverified exe")
	}
}

func TestFromFlags(t *testing.T) {
	p, err := FromFlags([]Flag{
		{engine.Deny, "/srv/**/secret"},
		{engine.Allow, "/srv/**"},
		{engine.Deny, "/**"},
	})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		path string
		want engine.Verdict
		rule string
	}{
		{"/srv/a/secret", engine.Deny, "--deny /srv/**/secret"},
		{"/srv/a/b", engine.Allow, "--allow /srv/**"},
		{"/etc/x", engine.Deny, "--deny /**"},
	}
	for _, tt := range tests {
		for _, ev := range []engine.Mask{engine.OpenPerm, engine.AccessPerm, engine.OpenExecPerm, engine.PreAccess} {
			d := p.Decide(&Request{Path: tt.path, Event: ev})
			if d.Verdict != tt.want || d.Source() != tt.rule || d.Cache {
				t.Errorf("%s %s: %v by %s", ev, tt.path, d.Verdict, d.Source())
			}
		}
	}
	if _, err := FromFlags([]Flag{{engine.Deny, "/srv/[x"}}); err == nil ||
		err.Error() != `--deny "/srv/[x": unterminated character class (missing ])` {
		t.Errorf("err = %v", err)
	}
	if _, err := FromFlags([]Flag{{engine.Deny, "**/*.key\x00.txt"}}); err == nil ||
		err.Error() != `--deny "**/*.key\x00.txt": NUL byte: no path or name holds one, so the pattern could never match` {
		t.Errorf("err = %v", err)
	}
	if _, err := FromFlags([]Flag{{engine.Verdict(7), "/x"}}); err == nil {
		t.Error("bad verdict accepted")
	}
}

func TestFlagValue(t *testing.T) {
	var list []Flag
	fs := flag.NewFlagSet("guard", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Var(FlagValue(&list, engine.Deny), "deny", "deny GLOB")
	fs.Var(FlagValue(&list, engine.Allow), "allow", "allow GLOB")
	if err := fs.Parse([]string{"--deny", "/a/**", "--allow", "/b", "--deny", "**/*.key"}); err != nil {
		t.Fatal(err)
	}
	want := []Flag{{engine.Deny, "/a/**"}, {engine.Allow, "/b"}, {engine.Deny, "**/*.key"}}
	if len(list) != len(want) {
		t.Fatalf("list = %v", list)
	}
	for i := range want {
		if list[i] != want[i] {
			t.Errorf("list[%d] = %v, want %v", i, list[i], want[i])
		}
	}
	if got := fs.Lookup("deny").Value.String(); got != "/a/** **/*.key" {
		t.Errorf("deny String() = %q", got)
	}
	err := fs.Parse([]string{"--allow", "relative/*"})
	if err == nil || !strings.Contains(err.Error(), `--allow "relative/*": pattern must be absolute`) {
		t.Errorf("err = %v", err)
	}
	if (&flagValue{}).String() != "" {
		t.Error("zero flagValue String")
	}
}

func TestConcat(t *testing.T) {
	flags, _ := FromFlags([]Flag{{engine.Allow, "/srv/ok"}})
	file := mustParse(t, "default deny\ndeny /srv/**\n")
	p, err := Concat(flags, nil, file)
	if err != nil {
		t.Fatal(err)
	}
	if p.Default != engine.Deny || len(p.Rules) != 2 {
		t.Fatalf("%+v", p)
	}
	if d := p.Decide(&Request{Path: "/srv/ok", Event: engine.OpenPerm}); d.Verdict != engine.Allow || d.Source() != "--allow /srv/ok" {
		t.Errorf("flags come first: %+v", d)
	}
	if d := p.Decide(&Request{Path: "/etc/x", Event: engine.OpenPerm}); d.Verdict != engine.Deny || d.Rule != nil {
		t.Errorf("file's default: %+v", d)
	}
	other := mustParse(t, "default allow\n")
	if _, err := Concat(file, other); err == nil || err.Error() != "conflicting defaults: deny at policy.rules:1, allow at policy.rules:1" {
		t.Errorf("err = %v", err)
	}
	same := mustParse(t, "default deny\n")
	if _, err := Concat(file, same); err != nil {
		t.Errorf("same defaults: %v", err)
	}
	c := &Policy{CacheAllows: true}
	if p, _ := Concat(flags, c); !p.CacheAllows {
		t.Error("CacheAllows lost")
	}
}

func TestPolicyString(t *testing.T) {
	p, _ := FromFlags([]Flag{{engine.Deny, "/my dir/**"}})
	if got := p.String(); got != "deny * \"/my dir/**\"  # --deny /my dir/**\n" {
		t.Errorf("String() = %q", got)
	}
	q := mustParse(t, "default allow\n")
	if got := q.String(); got != "default allow\n" {
		t.Errorf("String() = %q", got)
	}
	if Attr(99).String() != "attr(99)" || AttrComm.String() != "comm" || AttrExe.String() != "exe" || AttrGID.String() != "gid" {
		t.Error("Attr.String")
	}
	if errnoName(syscall.ENOENT) != "2" {
		t.Error("errnoName")
	}
}

func BenchmarkDecide(b *testing.B) {
	p := mustParse(b, `
allow open /usr/** cache
deny open,exec /srv/**/*.sh comm=bash,dash
deny * /home/*/.ssh/id_* uid!=0
deny * **/*.key
`)
	proc := newProc("bash", 1000)
	for _, path := range []string{"/usr/lib/libc.so.6", "/var/lib/x/y/z/w"} {
		req := &Request{Path: path, Event: engine.OpenPerm, Pid: 7, Proc: proc}
		b.Run(path, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				p.Decide(req)
			}
		})
	}
}

// exe= matches the verified executable only; gid= any of the process's groups. An unverified
// executable (deleted, replaced, or from a mount the guard does not see) matches no exe= glob,
// so exe= fails and exe!= holds: an allow by exe= is never granted to it, and a deny of every
// exe but one catches it.
func TestExeAndGidConditions(t *testing.T) {
	p := mustParse(t, `
allow open /keys/** exe=/usr/sbin/nginx,/usr/lib/*/nginx-helper
deny  open /keys/**
deny  open /backup/** exe!=/usr/bin/restic
deny  open /staff/** gid!=50
allow open /wheel/** gid=10,27
deny  open /wheel/**
`)
	type proc = KnownProcess
	tests := []struct {
		name string
		path string
		proc Process
		want engine.Verdict
		rule string
	}{
		{"exe allowed", "/keys/a", proc{ExePath: "/usr/sbin/nginx"}, engine.Allow, "policy.rules:2"},
		{"exe glob", "/keys/a", proc{ExePath: "/usr/lib/x86_64/nginx-helper"}, engine.Allow, "policy.rules:2"},
		{"another exe", "/keys/a", proc{ExePath: "/usr/bin/cat"}, engine.Deny, "policy.rules:3"},
		{"same name elsewhere", "/keys/a", proc{Name: "nginx", ExePath: "/tmp/nginx"}, engine.Deny, "policy.rules:3"},
		{"deleted exe is not its old path", "/keys/a", proc{ExePath: "/usr/sbin/nginx (deleted)", ExeUnverified: true}, engine.Deny, "policy.rules:3"},
		{"unverified exe with the right path", "/keys/a", proc{ExePath: "/usr/sbin/nginx", ExeUnverified: true}, engine.Deny, "policy.rules:3"},
		{"exe unknown: gone", "/keys/a", proc{}, engine.Deny, "policy.rules:3"},
		{"exe!= holds", "/backup/x", proc{ExePath: "/usr/bin/cp"}, engine.Deny, "policy.rules:4"},
		{"exe!= fails for the one exe", "/backup/x", proc{ExePath: "/usr/bin/restic"}, engine.Allow, "default"},
		{"exe!= holds for an unverified exe", "/backup/x", proc{ExePath: "/usr/bin/restic", ExeUnverified: true}, engine.Deny, "policy.rules:4"},
		{"gid!= holds", "/staff/x", proc{GroupIDs: []uint32{1000, 1001}}, engine.Deny, "policy.rules:5"},
		{"gid!= fails when any group is 50", "/staff/x", proc{GroupIDs: []uint32{1000, 50}}, engine.Allow, "default"},
		{"gid= any group", "/wheel/x", proc{GroupIDs: []uint32{1000, 27}}, engine.Allow, "policy.rules:6"},
		{"gid= none", "/wheel/x", proc{GroupIDs: []uint32{1000}}, engine.Deny, "policy.rules:7"},
		{"no groups at all", "/wheel/x", proc{GroupIDs: []uint32{}}, engine.Deny, "policy.rules:7"},
		{"groups unknown", "/wheel/x", proc{}, engine.Deny, "policy.rules:7"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := p.Decide(&Request{Path: tt.path, Event: engine.OpenPerm, Pid: 9, Proc: tt.proc})
			if d.Verdict != tt.want || d.Source() != tt.rule || d.Err != nil {
				t.Errorf("got %v by %s (err %v); want %v by %s", d.Verdict, d.Source(), d.Err, tt.want, tt.rule)
			}
		})
	}
	if !p.Needs(AttrExe) || !p.Needs(AttrGID) || p.Needs(AttrComm) {
		t.Error("Needs")
	}
}

// A failure to read what a condition needs (not a process that is gone) stops the decision:
// Err says what failed, the verdict is deny, and the rule is the one being evaluated. A
// process that is gone makes the condition not hold instead.
func TestDecideAttributeError(t *testing.T) {
	p := mustParse(t, "allow open /x/** cache\nallow open /k/** exe=/bin/ok\ndeny open /k/** uid!=0\n")
	emfile := fmt.Errorf("open /proc/7/exe: %w", syscall.EMFILE)
	for _, tt := range []struct {
		name  string
		path  string
		err   error
		want  engine.Verdict
		rule  string
		isErr bool
	}{
		{"no condition needed", "/x/a", emfile, engine.Allow, "policy.rules:1", false},
		{"exe unreadable", "/k/a", emfile, engine.Deny, "error in policy.rules:2", true},
		{"gone", "/k/a", os.ErrProcessDone, engine.Allow, "default", false},
		{"gone, wrapped", "/k/a", fmt.Errorf("reading: %w", os.ErrProcessDone), engine.Allow, "default", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			proc := newProc("cat", 1000)
			proc.err = tt.err
			d := p.Decide(&Request{Path: tt.path, Event: engine.OpenPerm, Pid: 7, Proc: proc})
			if d.Verdict != tt.want || d.Source() != tt.rule || (d.Err != nil) != tt.isErr || (d.Err != nil && d.Cache) {
				t.Fatalf("got %v by %s err %v cache %v; want %v by %s", d.Verdict, d.Source(), d.Err, d.Cache, tt.want, tt.rule)
			}
			if tt.isErr {
				if !errors.Is(d.Err, syscall.EMFILE) || !strings.Contains(d.Err.Error(), "executable for exe") {
					t.Errorf("Err = %v, want it to name the attribute and wrap EMFILE", d.Err)
				}
				if proc.uidN != 0 {
					t.Error("evaluation went on after the error")
				}
			}
		})
	}
}

// TestNeedsPath: NeedsPath(ev) is false exactly when no rule for ev tells paths apart, and
// then Decide without the path gives what it gives with it (the guard reads no path then).
func TestNeedsPath(t *testing.T) {
	tests := []struct {
		name  string
		rules string
		ev    engine.Mask
		want  bool
	}{
		{"exec allowlist, open", "allow exec ** trusted=yes\ndeny exec **\n", engine.OpenPerm, false},
		{"exec allowlist, exec", "allow exec ** trusted=yes\ndeny exec **\n", engine.OpenExecPerm, true},
		{"exec allowlist, notification exec", "allow exec ** trusted=yes\ndeny exec **\n", engine.OpenExec, true},
		{"exec allowlist, open and exec bits", "allow exec ** trusted=yes\ndeny exec **\n", engine.OpenPerm | engine.OpenExecPerm, true},
		{"allow all", "allow * **\n", engine.OpenPerm, false},
		{"deny all exec, open", "deny exec **\n", engine.OpenPerm, false},
		{"deny all exec, exec", "deny exec **\n", engine.OpenExecPerm, false},
		{"glob for every event", "deny * /srv/**\n", engine.AccessPerm, true},
		{"glob for open only, pre_access", "deny open /srv/**\n", engine.PreAccess, false},
		{"condition on **", "deny open ** uid=0\n", engine.OpenPerm, true},
		{"default deny, no rule for open", "default deny\nallow exec /usr/**\n", engine.OpenPerm, false},
		{"default deny with cache", "default deny\nallow exec /usr/** cache\nallow open ** cache\n", engine.OpenPerm, false},
		{"errno rule", "deny pre_access /cold/** errno=EIO\n", engine.PreAccess, true},
		{"no rules", "", engine.OpenExecPerm, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := mustParse(t, tt.rules)
			if got := p.NeedsPath(tt.ev); got != tt.want {
				t.Fatalf("NeedsPath(%v) = %v, want %v", tt.ev, got, tt.want)
			}
			if tt.want {
				return
			}
			for _, path := range []string{"/", "/srv/x", "/usr/bin/true", "/tmp/a/b", "/cold/y"} {
				with := p.Decide(&Request{Path: path, Event: tt.ev, Pid: 1, Proc: KnownProcess{Name: "x", UserID: 0}})
				without := p.Decide(&Request{Event: tt.ev, Pid: 1, Proc: KnownProcess{Name: "x", UserID: 0}})
				if with.Verdict != without.Verdict || with.Rule != without.Rule || with.Cache != without.Cache || with.Errno != without.Errno {
					t.Errorf("%s: with the path %v %s cache %v, without %v %s cache %v",
						path, with.Verdict, with.Source(), with.Cache, without.Verdict, without.Source(), without.Cache)
				}
			}
		})
	}
}

// AllowsEvery is true only where Decide allows every access of the event, whatever the path
// and process: each true case is decided for several paths, processes and an unknown path,
// and must allow each. It may be false where every access is allowed anyway (an allow of a
// path glob under a default allow, "/**"): such a guard asks the kernel for events it did not
// need, which costs time, never a decision.
func TestAllowsEvery(t *testing.T) {
	tests := []struct {
		name  string
		rules string
		ev    engine.Mask
		want  bool
	}{
		{"exec allowlist, open", "allow exec ** trusted=yes\ndeny exec **\n", engine.OpenPerm, true},
		{"exec allowlist, notification open", "allow exec ** trusted=yes\ndeny exec **\n", engine.Open, true},
		{"exec allowlist, exec", "allow exec ** trusted=yes\ndeny exec **\n", engine.OpenExecPerm, false},
		{"exec allowlist, access", "allow exec ** trusted=yes\ndeny exec **\n", engine.AccessPerm, true},
		{"no rules", "", engine.OpenPerm, true},
		{"default deny, no rule for open", "default deny\nallow exec /usr/**\n", engine.OpenPerm, false},
		{"allow open ** first", "allow open **\ndeny * /srv/**\n", engine.OpenPerm, true},
		{"allow every event ** first", "allow * **\ndeny open /srv/**\n", engine.OpenPerm, true},
		{"a deny of ** for open", "deny open **\n", engine.OpenPerm, false},
		{"a path rule for open", "allow exec ** trusted=yes\ndeny open /srv/**\n", engine.OpenPerm, false},
		{"a path allow for open, default allow (allowed anyway: false is safe)", "allow open /srv/**\n", engine.OpenPerm, false},
		{"a rule for every event", "deny * /srv/**\n", engine.OpenPerm, false},
		{"a condition on **", "allow open ** uid=0\n", engine.OpenPerm, false},
		{"a deny with a condition", "deny open ** uid=65534\n", engine.OpenPerm, false},
		{"/** is not ** (false is safe)", "allow open /**\n", engine.OpenPerm, false},
		{"a rule for opens after a rule for exec", "deny exec **\ndeny open /etc/shadow\n", engine.OpenPerm, false},
	}
	procs := []KnownProcess{{Name: "x", UserID: 0}, {Name: "sh", UserID: 65534}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := mustParse(t, tt.rules)
			if got := p.AllowsEvery(tt.ev); got != tt.want {
				t.Fatalf("AllowsEvery(%v) = %v, want %v", tt.ev, got, tt.want)
			}
			for _, path := range []string{"", "/", "/srv/x", "/usr/bin/true", "/etc/shadow"} {
				for _, pr := range procs {
					d := p.Decide(&Request{Path: path, PathUnknown: path == "", Event: tt.ev, Pid: 1, Proc: pr})
					if tt.want && (d.Verdict != engine.Allow || d.Err != nil) {
						t.Errorf("path %q uid %d: %v (%s, err %v), but AllowsEvery said every access is allowed", path, pr.UserID, d.Verdict, d.Source(), d.Err)
					}
				}
			}
		})
	}
}

// unverifiableObject is a regular file whose content could not be read as one version: its
// digest is ErrUnverifiable (wrapping the reason, as sysattr wraps trust's), asked how often.
type unverifiableObject struct {
	KnownObject
	sums int
}

func (o *unverifiableObject) SHA256() ([32]byte, error) {
	o.sums++
	return [32]byte{}, fmt.Errorf("%w: the file is open for writing", ErrUnverifiable)
}

// TestDecideUnverifiableContent: a sha256= condition on content that could not be read as one
// version may hold, key= and key!= alike: a deny rule denies on it, an allow rule is passed
// over, and it is never an error (so never the guard's --on-error verdict, which may be
// allow). The digest is asked for once however many rules test it.
func TestDecideUnverifiableContent(t *testing.T) {
	good := strings.Repeat("ab", 32)
	for _, tt := range []struct {
		name, rules string
		want        engine.Verdict
		rule        string
		unverified  bool // Decision.ContentUnverifiable
	}{
		{"allowlist", "allow exec ** sha256=" + good + "\ndeny exec **\n", engine.Deny, "policy.rules:2", false},
		{"allowlist, default deny", "default deny\nallow exec ** sha256=" + good + "\n", engine.Deny, "default", false},
		{"allowlist by !=", "allow exec ** sha256!=" + good + "\ndefault deny\n", engine.Deny, "default", false},
		{"denylist", "deny exec ** sha256=" + good + "\n", engine.Deny, "policy.rules:1", true},
		{"denylist by !=", "deny exec ** sha256!=" + good + "\n", engine.Deny, "policy.rules:1", true},
		{"deny with a condition that fails first", "deny exec ** uid=0 sha256=" + good + "\n", engine.Allow, "default", false},
		{"deny with a condition that fails after", "deny exec ** sha256=" + good + " uid=0\n", engine.Allow, "default", false},
		{"allow passed over, then a path deny", "allow exec /usr/** sha256=" + good + "\nallow exec /usr/** sha256!=" + good + "\ndeny exec /usr/**\n", engine.Deny, "policy.rules:3", false},
		{"no sha256 rule for the file", "allow exec /usr/** sha256=" + good + "\nallow exec /home/**\n", engine.Allow, "policy.rules:2", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := mustParse(t, tt.rules)
			obj := &unverifiableObject{}
			path := "/usr/bin/tool"
			if tt.name == "no sha256 rule for the file" {
				path = "/home/u/tool"
			}
			d := p.Decide(&Request{Path: path, Event: engine.OpenExecPerm, Pid: 7, Proc: newProc("sh", 1000), Obj: obj})
			if d.Err != nil {
				t.Fatalf("Err = %v: unverifiable content must be decided, not an error", d.Err)
			}
			if d.Verdict != tt.want || d.Source() != tt.rule || d.ContentUnverifiable != tt.unverified || d.AncestryIncomplete || d.Cache {
				t.Fatalf("got %v by %s unverifiable %v ancestry %v cache %v; want %v by %s unverifiable %v",
					d.Verdict, d.Source(), d.ContentUnverifiable, d.AncestryIncomplete, d.Cache, tt.want, tt.rule, tt.unverified)
			}
			if obj.sums > 1 {
				t.Errorf("SHA256 asked %d times, want at most once", obj.sums)
			}
		})
	}
}

// lateObject and lateProc answer as a guard's decision at its late point does for a file and
// an executable whose digests the hash cache does not hold: trusted= and trusted_exe= are
// unverifiable.
type lateObject struct {
	KnownObject
	trusts int
}

func (o *lateObject) Trusted() (bool, error) {
	o.trusts++
	return false, fmt.Errorf("%w: not hashed (late)", ErrUnverifiable)
}

type lateProc struct {
	*countingProc
	exeTrusts int
}

func (p *lateProc) TrustedExe() (bool, error) {
	p.exeTrusts++
	return false, fmt.Errorf("%w: not hashed (late)", ErrUnverifiable)
}

// TestDecideLateTrust: trusted= and trusted_exe= on content that was not hashed (a guard's late
// point) may hold, as sha256= does: an allowlist by them does not allow, a deny by trusted=no
// denies, never an error; each is asked once however many rules test it.
func TestDecideLateTrust(t *testing.T) {
	for _, tt := range []struct {
		name, rules string
		want        engine.Verdict
		rule        string
		unverified  bool
	}{
		{"trusted allowlist", "allow exec ** trusted=yes\ndeny exec **\n", engine.Deny, "policy.rules:2", false},
		{"trusted allowlist, default deny", "default deny\nallow exec ** trusted=yes\nallow exec ** trusted=yes uid=1000\n", engine.Deny, "default", false},
		{"deny untrusted", "deny exec ** trusted=no\n", engine.Deny, "policy.rules:1", true},
		{"trusted_exe allowlist", "allow exec ** trusted_exe=yes\ndeny exec **\n", engine.Deny, "policy.rules:2", false},
		{"deny from an untrusted executable", "deny exec ** trusted_exe=no\n", engine.Deny, "policy.rules:1", true},
		{"deny by another condition that fails", "deny exec ** trusted=no uid=0\n", engine.Allow, "default", false},
		{"path rule first", "allow exec /usr/** \ndeny exec ** trusted=no\n", engine.Allow, "policy.rules:1", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := mustParse(t, tt.rules)
			obj, proc := &lateObject{}, &lateProc{countingProc: newProc("sh", 1000)}
			d := p.Decide(&Request{Path: "/usr/bin/tool", Event: engine.OpenExecPerm, Pid: 7, Proc: proc, Obj: obj})
			if d.Err != nil {
				t.Fatalf("Err = %v: content not hashed must be decided, not an error", d.Err)
			}
			if d.Verdict != tt.want || d.Source() != tt.rule || d.ContentUnverifiable != tt.unverified || d.Cache {
				t.Fatalf("got %v by %s unverifiable %v cache %v; want %v by %s unverifiable %v",
					d.Verdict, d.Source(), d.ContentUnverifiable, d.Cache, tt.want, tt.rule, tt.unverified)
			}
			if obj.trusts > 1 || proc.exeTrusts > 1 {
				t.Errorf("Trusted asked %d times, TrustedExe %d, want at most once each", obj.trusts, proc.exeTrusts)
			}
		})
	}
}

// exeProc is a process whose executable is not verified; unknown says whether it may be any
// program (ExeUnknower), as for a process in a user's mount namespace.
type exeProc struct {
	KnownProcess
	unknown bool
}

func (p exeProc) Exe() (string, bool, error)   { return p.ExePath, false, nil }
func (p exeProc) ExeUnknown() (bool, error)    { return p.unknown, nil }
func (p exeProc) Ancestors() (Ancestry, error) { return p.Ancestry, nil }

// TestDecideExeUnknown: an exe= condition on an executable that may be any program (the path a
// user's mount namespace gives, which says nothing of what runs: a bind mount of python3 over
// /usr/bin/true reads /usr/bin/true) may hold, key= and key!= alike: a deny rule denies
// (ExeUnknown), an allow rule is passed over; one that is merely not verified (deleted since
// it started, root's container) matches no glob, as before; so for ancestor=, whose unknown
// ancestor counts as an unreadable one.
func TestDecideExeUnknown(t *testing.T) {
	anc := func(unknown bool) Ancestry {
		return Ancestry{List: []Ancestor{{Pid: 5, Exe: "/usr/bin/true", Unknown: unknown}, {Pid: 1, Exe: "/sbin/init", Verified: true}}, Complete: true}
	}
	for _, tt := range []struct {
		name, rules string
		unknown     bool
		want        engine.Verdict
		rule        string
		exeUnknown  bool
	}{
		{"deny by exe, unknown", "deny open /x/** exe=/usr/bin/python3*\n", true, engine.Deny, "policy.rules:1", true},
		{"deny by exe, not verified", "deny open /x/** exe=/usr/bin/python3*\n", false, engine.Allow, "default", false},
		{"allow by exe, unknown", "allow open /x/** exe=/usr/bin/true\ndeny open /x/**\n", true, engine.Deny, "policy.rules:2", false},
		{"allow by exe!=, unknown", "allow open /x/** exe!=/usr/bin/evil\ndeny open /x/**\n", true, engine.Deny, "policy.rules:2", false},
		{"allow by exe!=, not verified", "allow open /x/** exe!=/usr/bin/evil\ndeny open /x/**\n", false, engine.Allow, "policy.rules:1", false},
		{"deny by ancestor, unknown", "deny open /x/** ancestor=/usr/bin/python3*\n", true, engine.Deny, "policy.rules:1", false},
		{"deny by ancestor, not verified", "deny open /x/** ancestor=/usr/bin/python3*\n", false, engine.Allow, "default", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := mustParse(t, tt.rules)
			proc := exeProc{KnownProcess: KnownProcess{Name: "true", UserID: 1000, ExePath: "/usr/bin/true", Ancestry: anc(tt.unknown)}, unknown: tt.unknown}
			d := p.Decide(&Request{Path: "/x/s.py", Event: engine.OpenPerm, Pid: 7, Proc: proc})
			if d.Err != nil || d.Verdict != tt.want || d.Source() != tt.rule || d.ExeUnknown != tt.exeUnknown {
				t.Fatalf("got %v by %s, exe unknown %v, err %v; want %v by %s, exe unknown %v", d.Verdict, d.Source(), d.ExeUnknown, d.Err, tt.want, tt.rule, tt.exeUnknown)
			}
			if strings.HasPrefix(tt.name, "deny by ancestor, unknown") && !d.AncestryIncomplete {
				t.Errorf("AncestryIncomplete not set for a deny on an unknown ancestor")
			}
		})
	}
}

// groupsProc is a KnownProcess whose groups may lack one it had (GroupsMayLacker).
type groupsProc struct {
	KnownProcess
	mayLack bool
}

func (p groupsProc) GroupsMayLack() (bool, error) { return p.mayLack, nil }

// A process that may have dropped groups (a user namespace where setgroups was allowed):
// the groups it has settle gid=, the ones it lacks do not — gid= and gid!= may hold then (a
// deny denies, an allow is passed over).
func TestDecideGroupsMayLack(t *testing.T) {
	for _, tt := range []struct {
		name, rules string
		mayLack     bool
		want        engine.Verdict
		rule        string
	}{
		{"deny by gid, lacking it, may have dropped it", "deny open /x/** gid=4242\n", true, engine.Deny, "policy.rules:1"},
		{"deny by gid, lacking it", "deny open /x/** gid=4242\n", false, engine.Allow, "default"},
		{"deny by gid, having it", "deny open /x/** gid=1000\n", true, engine.Deny, "policy.rules:1"},
		{"allow by gid!=, may have dropped it", "allow open /x/** gid!=4242\ndeny open /x/**\n", true, engine.Deny, "policy.rules:2"},
		{"allow by gid!=", "allow open /x/** gid!=4242\ndeny open /x/**\n", false, engine.Allow, "policy.rules:1"},
		{"allow by gid, having it", "allow open /x/** gid=1000\ndeny open /x/**\n", true, engine.Allow, "policy.rules:1"},
		{"deny by gid!=, having one", "deny open /x/** gid!=1000\n", true, engine.Allow, "default"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := mustParse(t, tt.rules)
			proc := groupsProc{KnownProcess: KnownProcess{Name: "cat", UserID: 1000, GroupIDs: []uint32{1000, 1000, 1000, 1000}, ExePath: "/usr/bin/cat"}, mayLack: tt.mayLack}
			d := p.Decide(&Request{Path: "/x/s", Event: engine.OpenPerm, Pid: 7, Proc: proc})
			wantFlag := tt.name == "deny by gid, lacking it, may have dropped it" // the deny that may hold
			if d.Err != nil || d.Verdict != tt.want || d.Source() != tt.rule || d.GroupsMayLack != wantFlag {
				t.Fatalf("got %v by %s (groups may lack %v), err %v; want %v by %s (%v)", d.Verdict, d.Source(), d.GroupsMayLack, d.Err, tt.want, tt.rule, wantFlag)
			}
		})
	}
}
