package policy

import (
	"flag"
	"io"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/fsnotifyd/fsnotifyd/engine"
)

// countingProc is a Process that counts how often it is asked.
type countingProc struct {
	comm          string
	uid           int64
	commN, uidN   int
	commOK, uidOK bool
}

func newProc(comm string, uid int64) *countingProc {
	return &countingProc{comm: comm, uid: uid, commOK: comm != "", uidOK: uid >= 0}
}

func (c *countingProc) Comm() (string, bool) { c.commN++; return c.comm, c.commOK }
func (c *countingProc) UID() (uint32, bool)  { c.uidN++; return uint32(c.uid), c.uidOK }

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
		{"comm matches", "/srv/a/b.sh", engine.OpenPerm, 1, KnownProcess{"bash", 1000}, engine.Deny, 0, false, "policy.rules:2"},
		{"comm differs", "/srv/a/b.sh", engine.OpenPerm, 1, KnownProcess{"zsh", 1000}, engine.Allow, 0, false, "default"},
		{"comm unknown", "/srv/a/b.sh", engine.OpenPerm, 1, KnownProcess{"", 1000}, engine.Allow, 0, false, "default"},
		{"no process", "/srv/a/b.sh", engine.OpenPerm, 0, nil, engine.Allow, 0, false, "default"},
		{"event kind differs", "/srv/a/b.sh", engine.AccessPerm, 1, KnownProcess{"bash", 1000}, engine.Allow, 0, false, "default"},
		{"notification open counts as open", "/srv/a/b.sh", engine.Open, 1, KnownProcess{"bash", 1000}, engine.Deny, 0, false, "policy.rules:2"},
		{"exec allowed first", "/srv/bin/tool", engine.OpenExecPerm, 1, nil, engine.Allow, 0, false, "policy.rules:3"},
		{"exec and open bits together", "/srv/bin/tool", engine.OpenPerm | engine.OpenExecPerm, 1, nil, engine.Allow, 0, false, "policy.rules:3"},
		{"exec denied below", "/srv/bin/sub/tool", engine.OpenExecPerm, 1, nil, engine.Deny, 0, false, "policy.rules:4"},
		{"notification exec", "/srv/x", engine.OpenExec, 1, nil, engine.Deny, 0, false, "policy.rules:4"},
		{"cacheable allow", "/srv/public/a", engine.OpenPerm, 1, nil, engine.Allow, 0, true, "policy.rules:5"},
		{"uid!=0 holds", "/srv/private/a", engine.OpenPerm, 1, KnownProcess{"cat", 1000}, engine.Deny, 0, false, "policy.rules:6"},
		{"uid!=0 fails for root", "/srv/private/a", engine.OpenPerm, 1, KnownProcess{"cat", 0}, engine.Allow, 0, false, "default"},
		{"uid unknown: condition never holds", "/srv/private/a", engine.OpenPerm, 1, KnownProcess{"cat", -1}, engine.Allow, 0, false, "default"},
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
		d := p.Decide(&Request{Path: tt.path, Event: engine.OpenPerm, Proc: KnownProcess{tt.comm, 0}})
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
	if d := q.Decide(&Request{Path: "/x/a", Event: engine.OpenPerm, Proc: KnownProcess{"cat", 0}}); d.Cache {
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
`)
	tests := []struct {
		path        string
		ev          engine.Mask
		commN, uidN int
	}{
		{"/a/x", engine.OpenPerm, 1, 1},
		{"/b/x", engine.OpenPerm, 0, 0}, // event differs
		{"/c/x", engine.OpenPerm, 0, 0}, // path differs
		{"/d/x", engine.OpenPerm, 0, 0},
		{"/b/x", engine.OpenExecPerm, 1, 0},
	}
	for _, tt := range tests {
		proc := newProc("cat", 1)
		p.Decide(&Request{Path: tt.path, Event: tt.ev, Pid: 1, Proc: proc})
		if proc.commN != tt.commN || proc.uidN != tt.uidN {
			t.Errorf("%s %s: Comm called %d times, UID %d; want %d, %d", tt.ev, tt.path, proc.commN, proc.uidN, tt.commN, tt.uidN)
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
deny * **/*.key
`)
	proc := newProc("bash", 1000)
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
				d := p.Decide(&Request{Path: "/x/a", Event: engine.OpenPerm, Proc: KnownProcess{"bash", 0}})
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
	if _, ok := k.Comm(); ok {
		t.Error("empty comm is known")
	}
	if _, ok := k.UID(); ok {
		t.Error("negative uid is known")
	}
	if _, ok := (KnownProcess{UserID: 1 << 33}).UID(); ok {
		t.Error("out-of-range uid is known")
	}
	if u, ok := (KnownProcess{UserID: 7}).UID(); !ok || u != 7 {
		t.Error("uid 7")
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
	if Attr(9).String() != "attr(9)" || AttrComm.String() != "comm" {
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
