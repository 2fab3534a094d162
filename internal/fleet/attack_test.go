package fleet

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fsnotifyd/fsnotifyd/internal/fleet/spool"
	"github.com/fsnotifyd/fsnotifyd/internal/testenv"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Attacks on the fleet by a compromised host, with its own credentials under the documented
// permissions (contrib/nats-server-fleet.conf): what it may publish is its own subjects only,
// but it chooses everything else in its messages.

// permServer is a server with the example configuration; it returns a user's URL maker and
// the admin's JetStream.
func permServer(t *testing.T) (*natsServer, func(user string) string, jetstream.JetStream) {
	t.Helper()
	ns := &natsServer{t: t, store: t.TempDir(), port: freePort(t), conf: "../../contrib/nats-server-fleet.conf"}
	ns.start()
	t.Cleanup(ns.stop)
	userURL := func(user string) string {
		return fmt.Sprintf("nats://%s:change-me-%s@127.0.0.1:%d", user, user, ns.port)
	}
	admin := ConnOptions{URLs: userURL("admin"), Timeout: 2 * time.Second}
	anc, err := admin.Connect()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(anc.Close)
	ajs, _ := admin.JetStream(anc)
	// The stream is the admin's (fsnotifyd fleet init): hosts may create none.
	if err := EnsureStream(context.Background(), ajs, StreamConfig{}); err != nil {
		t.Fatal(err)
	}
	return ns, userURL, ajs
}

// hostConn is a raw connection as a host, for the attacker's own messages.
func hostConn(t *testing.T, url, host string) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(url, nats.CustomInboxPrefix(HostInboxPrefix(host)),
		nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, _ := jetstream.New(nc, jetstream.WithDefaultTimeout(2*time.Second))
	return nc, js
}

// A compromised host publishes, on its own subject (which it may), messages whose
// Nats-Msg-Id is another host's: the server's duplicate window is the stream's, not a
// subject's, so were the id <host>/<seq> (predictable: seqs count up from 1), the other
// host's records with those seqs would be acknowledged as duplicates and never stored — lost
// with no gap record. The id carries a secret of the exporter's spool, so the attacker cannot
// name the other host's records.
func TestHostCannotSuppressAnothersRecordsByMsgID(t *testing.T) {
	_, userURL, ajs := permServer(t)
	ctx := context.Background()
	_, js1 := hostConn(t, userURL("web-1"), "web-1")
	if err := EnsureStream(ctx, js1, StreamConfig{}); err != nil { // there, and right
		t.Fatal(err)
	}
	const n = 50
	for seq := 1; seq <= n; seq++ {
		m := &nats.Msg{Subject: Subject(Event, "web-1"), Data: fmt.Appendf(nil, `{"host":"web-1","boot_id":"b","seq":%d,"kind":"event"}`, seq), Header: nats.Header{}}
		m.Header.Set(jetstream.MsgIDHeader, fmt.Sprintf("web-2/%d", seq))
		if _, err := js1.PublishMsg(ctx, m); err != nil {
			t.Fatalf("web-1 publishing on its own subject: %v", err)
		}
	}

	lg := &testLog{t: t}
	e, err := NewExporter(ExporterConfig{Conn: ConnOptions{URLs: userURL("web-2"), Timeout: 2 * time.Second}, Host: "web-2", SpoolDir: t.TempDir(), Log: lg.log})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		e.Append(Event, payload(i))
	}
	waitFor(t, 10*time.Second, "web-2's records acked", func() bool { return e.Stats().AckedThrough == n })
	closeExporter(t, e)
	g := readAll(t, ajs, "web-2", time.Second)
	g.accountFor(t, n)
	if len(g.seqs) != n {
		t.Errorf("web-2's %d records: %d stored", n, len(g.seqs))
	}
}

// A record whose header key comes twice — the second time in another case, which Go's decoder
// matches to the same field and lets win — is no fleet record; nor is one whose host is not
// its subject's.
func TestCheckHeaderRefusesAmbiguousOrForeignRecords(t *testing.T) {
	base := `{"host":"web-1","boot_id":"b","seq":5,"kind":"event","path":"/x"`
	for _, tc := range []struct {
		subject, data string
		ok            bool
	}{
		{"fsnotifyd.events.web-1", base + `}`, true},
		{"fsnotifyd.events.web-1_example_com", `{"host":"web-1.example.com","boot_id":"b","seq":5,"kind":"event"}`, true},
		{"fsnotifyd.events.web-2", base + `}`, false},
		{"fsnotifyd.events.web-1", base + `,"HOST":"web-2"}`, false},
		{"fsnotifyd.events.web-1", base + `,"Seq":1}`, false},
		{"fsnotifyd.events.web-1", base + `,"\u017feq":1}`, false}, // ſeq: long s folds to s
		{"fsnotifyd.events.web-1", base + `,"ſeq":1}`, false},
		{"fsnotifyd.events.web-1", base + `,"\u212aind":"gap"}`, false}, // Kelvin sign folds to k
		{"fsnotifyd.events.web-1", base + `,"kind":"gap"}`, false},
		{"fsnotifyd.events.web-1", base + `,"hosts":"web-2","sequence":1}`, true},
		{"fsnotifyd.events", base + `}`, false},
	} {
		// What Go's decoder makes of it, for the record: the last of the folded keys wins.
		h, err := CheckHeader(tc.subject, []byte(tc.data))
		if (err == nil) != tc.ok {
			t.Errorf("%s %s: header %+v, err %v; want ok %v", tc.subject, tc.data, h, err, tc.ok)
		}
	}
	var h Header
	if err := json.Unmarshal([]byte(`{"host":"web-1","seq":5,"ſeq":1}`), &h); err != nil || h.Seq != 1 {
		t.Logf("Go's decoder no longer folds ſ to s (seq %d, %v): the check is then only stricter", h.Seq, err)
	}
}

// A stream made allowing rollups (by a host allowed to create it, as an earlier example
// configuration let it, or by an operator): then one message of a host's own with
// Nats-Rollup: all would erase every host's records. An exporter does not export into such
// a stream: it says why and keeps the records in its spool until the stream is made right,
// then sends them all.
func TestExporterRefusesAStreamThatAllowsRollups(t *testing.T) {
	_, userURL, ajs := permServer(t)
	ctx := context.Background()
	_, js1 := hostConn(t, userURL("web-1"), "web-1")
	sc := StreamConfig{}.jetstream()
	sc.AllowRollup = true
	ajs.DeleteStream(ctx, DefaultStream)
	if _, err := ajs.CreateStream(ctx, sc); err != nil {
		t.Fatalf("creating the stream: %v", err)
	}

	const n = 20
	lg := &testLog{t: t}
	e, err := NewExporter(ExporterConfig{Conn: ConnOptions{URLs: userURL("web-2"), Timeout: 2 * time.Second}, Host: "web-2", SpoolDir: t.TempDir(), Log: lg.log})
	if err != nil {
		t.Fatal(err)
	}
	defer closeExporter(t, e)
	for i := 0; i < n; i++ {
		e.Append(Event, payload(i))
	}
	// web-1 tries its rollup once web-2's records would be in (or not).
	time.Sleep(time.Second)
	m := &nats.Msg{Subject: Subject(Event, "web-1"), Data: []byte(`{"host":"web-1","boot_id":"b","seq":1,"kind":"event"}`), Header: nats.Header{}}
	m.Header.Set(jetstream.MsgRollup, jetstream.MsgRollupAll)
	js1.PublishMsg(ctx, m)
	waitFor(t, 10*time.Second, "the exporter saying why it does not export", func() bool { return lg.has("allows rollups") })
	if a := e.Stats().AckedThrough; a != 0 {
		t.Fatalf("%d records acknowledged by a stream any host may erase", a)
	}

	// The admin makes the stream right; everything spooled is sent.
	s, err := ajs.Stream(ctx, DefaultStream)
	if err != nil {
		t.Fatal(err)
	}
	fixed := s.CachedInfo().Config
	fixed.AllowRollup = false
	if _, err := ajs.UpdateStream(ctx, fixed); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "web-2's records acked", func() bool { return e.Stats().AckedThrough == n })
	if _, err := js1.PublishMsg(ctx, m); err == nil {
		t.Error("web-1's rollup taken by the fixed stream")
	}
	g := readAll(t, ajs, "web-2", time.Second)
	g.accountFor(t, n)
	if len(g.seqs) != n {
		t.Errorf("%d of web-2's %d records stored", len(g.seqs), n)
	}
}

// A host's NATS credentials (--nats-creds, and the private key of --nats-tls-key) say who
// it is to the server. One that a local user can read lets them publish as this host; one they
// can change (theirs, writable, or in a directory they may write) lets them swap the identity
// (the daemon then exports to an account of theirs). Both are refused, naming the flag and
// the fix, as ssh refuses a private key others can read; root's own, mode 0600, is taken.
func TestNATSSecretsOthersCanReadOrChangeAreRefused(t *testing.T) {
	testenv.RequireRoot(t)
	creds := "-----BEGIN NATS USER JWT-----\neyJ0eXAiOiJKV1QiLCJhbGciOiJlZDI1NTE5LW5rZXkifQ.e30.x\n------END NATS USER JWT------\n"
	for _, tc := range []placedFile{
		{"root's 0600", 0o600, 0, 0, 0o755, true, ""},
		{"readable by others", 0o644, 0, 0, 0o755, false, "readable by other users"},
		{"readable by the group", 0o640, 0, 0, 0o755, false, "readable by other users"},
		{"nobody's", 0o600, 65534, 0, 0o755, false, "writable only by root"},
		{"in nobody's directory", 0o600, 0, 65534, 0o755, false, "its directory"},
		{"in a directory anyone may write", 0o600, 0, 0, 0o777, false, "its directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := tc.place(t, "web-1.creds", creds)
			if tc.mode&0o004 != 0 {
				// What the refusal is about: nobody reads the host's credentials.
				if out, err := testenv.Sh(testenv.Nobody, "cat "+p); err != nil || !strings.Contains(out, "NATS USER JWT") {
					t.Fatalf("nobody could not read %s (%v): the test's premise", p, err)
				}
			}
			cert := filepath.Join(t.TempDir(), "web-1.pem") // root's: its own check passes
			if err := os.WriteFile(cert, []byte("c"), 0o644); err != nil {
				t.Fatal(err)
			}
			for _, o := range []ConnOptions{
				{URLs: "nats://127.0.0.1:1", Creds: p},
				{URLs: "nats://127.0.0.1:1", TLSCert: cert, TLSKey: p},
			} {
				flag := "--nats-creds"
				if o.TLSKey != "" {
					flag = "--nats-tls-key"
				}
				err := o.Check()
				if (err == nil) != tc.ok {
					t.Errorf("%s: Check: %v, want ok %v", flag, err, tc.ok)
					continue
				}
				if err != nil && (!strings.Contains(err.Error(), flag) || !strings.Contains(err.Error(), tc.want)) {
					t.Errorf("%s: %v: want the flag and %q", flag, err, tc.want)
				}
				if o.Creds == "" {
					continue
				}
				e, err := NewExporter(ExporterConfig{Conn: o, Host: "web-1", SpoolDir: t.TempDir()})
				if (err == nil) != tc.ok {
					t.Errorf("%s: NewExporter: %v, want ok %v", flag, err, tc.ok)
				}
				if e != nil {
					ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
					e.Close(ctx)
					cancel()
				}
			}
		})
	}
}

// placedFile is a case of a file root reads (credentials, a CA): its mode and owner, its
// directory's owner and mode, whether it is taken, and what a refusal says.
type placedFile struct {
	name     string
	mode     os.FileMode
	owner    int
	dirOwner int
	dirMode  os.FileMode
	ok       bool
	want     string
}

// place writes content to name in a fresh directory anyone may reach, both with the case's
// owners and modes, and returns its path.
func (tc placedFile) place(t *testing.T, name, content string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "nats")
	if err := os.Mkdir(dir, tc.dirMode); err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, tc.dirMode)
	os.Chown(dir, tc.dirOwner, tc.dirOwner)
	testenv.OpenToAll(t, filepath.Join(dir, "x"))
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), tc.mode); err != nil {
		t.Fatal(err)
	}
	os.Chmod(p, tc.mode)
	os.Chown(p, tc.owner, tc.owner)
	return p
}

// The CA file of --nats-tls-ca says which servers the host believes: one a local user can
// change lets them swap in their CA, and a server of theirs (on the path to NATS) then feeds
// the guard a policy of theirs and takes the host's records. The client certificate of
// --nats-tls-cert is the key's partner. Both are public (any mode), but held to the trust
// files' rule for changing them; a refusal names the flag and the fix.
func TestNATSTLSFilesOthersCanChangeAreRefused(t *testing.T) {
	testenv.RequireRoot(t)
	for _, tc := range []placedFile{
		{"root's 0644", 0o644, 0, 0, 0o755, true, ""},
		{"nobody's", 0o644, 65534, 0, 0o755, false, "writable only by root"},
		{"writable by others", 0o666, 0, 0, 0o755, false, "writable only by root"},
		{"in nobody's directory", 0o644, 0, 65534, 0o755, false, "its directory"},
		{"in a directory anyone may write", 0o644, 0, 0, 0o777, false, "its directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := tc.place(t, "ca.pem", "-----BEGIN CERTIFICATE-----\n")
			key := filepath.Join(t.TempDir(), "key.pem")
			if err := os.WriteFile(key, []byte("k"), 0o600); err != nil {
				t.Fatal(err)
			}
			for _, c := range []struct {
				flag string
				o    ConnOptions
			}{
				{"--nats-tls-ca", ConnOptions{URLs: "tls://127.0.0.1:1", TLSCA: p}},
				{"--nats-tls-cert", ConnOptions{URLs: "tls://127.0.0.1:1", TLSCert: p, TLSKey: key}},
			} {
				err := c.o.Check()
				if (err == nil) != tc.ok {
					t.Errorf("%s: Check: %v, want ok %v", c.flag, err, tc.ok)
					continue
				}
				if err != nil && (!strings.Contains(err.Error(), c.flag) || !strings.Contains(err.Error(), tc.want)) {
					t.Errorf("%s: %v: want the flag and %q", c.flag, err, tc.want)
				}
			}
		})
	}
}

// A password (or a token: nats://TOKEN@host) in a --nats/--export URL never reaches the logs
// (the daemon's log goes to the journal) or an error: the exporter's "NATS connected" line,
// an unreachable server's error.
func TestNATSURLSecretsAreNotLogged(t *testing.T) {
	_, userURL, _ := permServer(t)
	lg := &testLog{t: t}
	e, err := NewExporter(ExporterConfig{Conn: ConnOptions{URLs: userURL("web-1"), Timeout: 2 * time.Second}, Host: "web-1", SpoolDir: t.TempDir(), Log: lg.log})
	if err != nil {
		t.Fatal(err)
	}
	e.Append(Event, payload(1))
	waitFor(t, 10*time.Second, "the record acked", func() bool { return e.Stats().AckedThrough == 1 })
	closeExporter(t, e)
	if !lg.has("NATS connected") || lg.has("change-me-web-1") {
		t.Errorf("the exporter's log:\n%s", lg)
	}
	for _, u := range []string{"nats://web-1:s3cret@127.0.0.1:1", "nats://s3cret@127.0.0.1:1", "127.0.0.1:2,nats://web-1:s3cret@127.0.0.1:1"} {
		o := ConnOptions{URLs: u, Timeout: 200 * time.Millisecond}
		_, err := o.Connect()
		if err == nil || strings.Contains(err.Error(), "s3cret") || !strings.Contains(err.Error(), "127.0.0.1:1") {
			t.Errorf("%s: %v", u, err)
		}
		if r := o.Redacted(); strings.Contains(r, "s3cret") || !strings.Contains(r, "127.0.0.1:1") {
			t.Errorf("%s: Redacted %q", u, r)
		}
	}
}

// A spool directory (--spool) that a local user may write in is theirs to fill: a segment
// they plant is published as this host's records at the next start, and the exporter, as
// root, creates files through the links they put there (LOCK: an empty root-owned file
// anywhere, /etc/nologin say). A spool directory another user owns or may write is refused,
// naming it and the fix; root's 0700 is taken (every other exporter test).
func TestSpoolOthersCanWriteIsRefused(t *testing.T) {
	testenv.RequireRoot(t)
	ns := startNATS(t)
	for _, tc := range []struct {
		name  string
		mode  os.FileMode
		owner int
	}{
		{"anyone may write", 0o777, 0},
		{"the group may write", 0o770, 0},
		{"nobody's", 0o700, 65534},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base := t.TempDir()
			testenv.OpenToAll(t, filepath.Join(base, "x"))
			spoolDir := filepath.Join(base, "spool")
			victim := filepath.Join(base, "nologin")
			os.Mkdir(spoolDir, tc.mode)
			os.Chmod(spoolDir, tc.mode)
			os.Chown(spoolDir, tc.owner, tc.owner)
			// What a local user does there, as nobody where they can.
			forged := spool.AppendFrame(nil, 1, byte(Event), []byte(`{"host":"web-1","boot_id":"b","seq":1,"kind":"event","path":"/planted"}`))
			seg := filepath.Join(t.TempDir(), "seg")
			os.WriteFile(seg, forged, 0o644)
			testenv.OpenToAll(t, seg)
			cred := testenv.Nobody
			if tc.owner != 65534 && tc.mode&0o002 == 0 {
				cred = &syscall.Credential{Uid: 65534, Gid: 0} // a member of the directory's group
			}
			script := fmt.Sprintf("ln -s %s %s/LOCK && cp %s %s/%020d.seg", victim, spoolDir, seg, spoolDir, 1)
			if out, err := testenv.Sh(cred, script); err != nil {
				t.Fatalf("the local user's step: %v: %s", err, out)
			}

			lg := &testLog{t: t}
			e, err := NewExporter(ExporterConfig{Conn: ConnOptions{URLs: ns.url()}, Host: "web-1", SpoolDir: spoolDir, Log: lg.log})
			if e != nil {
				defer closeExporter(t, e)
				time.Sleep(500 * time.Millisecond)
			}
			if _, serr := os.Lstat(victim); serr == nil {
				t.Errorf("the exporter created %s through the link another user put in the spool", victim)
			}
			if e != nil {
				_, js := ns.connect(t)
				if s, err := js.Stream(context.Background(), DefaultStream); err == nil {
					if m, err := s.GetMsg(context.Background(), 1); err == nil && strings.Contains(string(m.Data), "/planted") {
						t.Errorf("the planted record was published as web-1's: %s", m.Data)
					}
				}
			}
			if err == nil || !strings.Contains(err.Error(), spoolDir) {
				t.Errorf("NewExporter: %v, want a refusal naming %s", err, spoolDir)
			}
		})
	}
}

// A stream that refuses one record for good — larger than the stream's max_msg_size, which
// an operator (or a host allowed to create the stream) may set below the exporter's record
// limit — does not wedge the export: the record is named by a gap record (reason rejected)
// in its place, and the records after it are sent. Before, the publisher resent it forever
// and sent nothing after it, the spool filled, and every host's export into that stream
// stopped for good.
func TestExporterRecordTheStreamRefusesBecomesAGap(t *testing.T) {
	t.Run("max_msg_size", func(t *testing.T) {
		ns := startNATS(t)
		_, js := ns.connect(t)
		sc := StreamConfig{}.jetstream()
		sc.MaxMsgSize = 2048
		if _, err := js.CreateStream(context.Background(), sc); err != nil {
			t.Fatal(err)
		}
		testRefusedRecordBecomesAGap(t, ns, js)
	})
	t.Run("max_payload", func(t *testing.T) { // refused by the client library before it is sent
		conf := filepath.Join(t.TempDir(), "nats.conf")
		os.WriteFile(conf, []byte("max_payload: 4096\njetstream: enabled\n"), 0o600)
		ns := &natsServer{t: t, store: t.TempDir(), port: freePort(t), conf: conf}
		ns.start()
		t.Cleanup(ns.stop)
		_, js := ns.connect(t)
		testRefusedRecordBecomesAGap(t, ns, js)
	})
}

func testRefusedRecordBecomesAGap(t *testing.T, ns *natsServer, js jetstream.JetStream) {
	e, lg := newTestExporter(t, ns, "h1", t.TempDir(), nil)
	big := fmt.Appendf(nil, `{"path":"/big","pad":"%s","i":-1}`, strings.Repeat("x", 8000))
	for i := 0; i < 10; i++ {
		e.Append(Event, payload(i))
	}
	e.Append(Event, big) // seq 11
	for i := 10; i < 20; i++ {
		e.Append(Event, payload(i))
	}
	waitFor(t, 20*time.Second, "everything after the refused record acked", func() bool {
		s := e.Stats()
		return s.LastSeq >= 22 && s.AckedThrough == s.LastSeq
	})
	st := e.Stats()
	closeExporter(t, e)
	g := readAll(t, js, "h1", time.Second)
	g.accountFor(t, st.LastSeq)
	if len(g.seqs) != 20 || len(g.gaps) != 1 || g.gaps[0].First != 11 || g.gaps[0].Last != 11 || !strings.Contains(g.gaps[0].Reason, "rejected") {
		t.Errorf("records %v, gaps %+v; want 20 records and one gap naming seq 11", g.seqs, g.gaps)
	}
	if !lg.has("refused seq 11") {
		t.Errorf("the refusal is not logged:\n%s", lg)
	}
}

// A stream that is full and discards new records (an operator's discard: new) refuses
// records until there is room: the exporter says so in its log, keeps them in the spool,
// and sends them all once there is room, none twice.
func TestExporterFullStreamDiscardNewResumes(t *testing.T) {
	ns := startNATS(t)
	_, js := ns.connect(t)
	ctx := context.Background()
	sc := StreamConfig{}.jetstream()
	sc.Discard = jetstream.DiscardNew
	sc.MaxMsgs = 10
	if _, err := js.CreateStream(ctx, sc); err != nil {
		t.Fatal(err)
	}
	e, lg := newTestExporter(t, ns, "h1", t.TempDir(), nil)
	const n = 30
	for i := 0; i < n; i++ {
		e.Append(Event, payload(i))
	}
	waitFor(t, 10*time.Second, "the first 10 acked", func() bool { return e.Stats().AckedThrough == 10 })
	waitFor(t, 10*time.Second, "the refusal logged", func() bool { return lg.has("maximum messages exceeded") })
	time.Sleep(time.Second)
	if a := e.Stats().AckedThrough; a != 10 {
		t.Fatalf("acked through %d in a stream of 10", a)
	}
	s, _ := js.Stream(ctx, DefaultStream)
	cfg := s.CachedInfo().Config
	cfg.MaxMsgs = -1
	if _, err := js.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "everything acked once there is room", func() bool { return e.Stats().AckedThrough == n })
	closeExporter(t, e)
	g := readAll(t, js, "h1", time.Second)
	g.accountFor(t, n)
	if len(g.seqs) != n || g.dups != 0 || len(g.gaps) != 0 || !g.order {
		t.Errorf("%d records, %d duplicates, gaps %+v, in order %v; want %d, none, none, true", len(g.seqs), g.dups, g.gaps, g.order, n)
	}
}

// The network: a follower that stays up through a server restart follows the revisions
// pushed after it; and a server restored from an older copy of its store (or anyone who can
// make the bucket's current revision an older one) does not roll the host back to the older,
// weaker policy: the host keeps the newer one and its status says why.
func TestFollowerThroughRestartAndRestoredServer(t *testing.T) {
	ns := startNATS(t)
	_, js := ns.connect(t)
	ctx := context.Background()
	kv := openBucket(t, js)
	weak := push(t, kv, "deny open /nothing/**\n")
	g, lg := followH1(t, ns, weak.Revision, "the first revision applied")

	// A copy of the store now, to restore later (the server stopped: a consistent copy).
	old := ns.snapshot()
	js, kv = ns.reopen(ctx)
	strong := push(t, kv, "deny open /srv/**\n")
	waitFor(t, 15*time.Second, "the revision pushed after the restart applied", func() bool { return g.revision() == strong.Revision })

	// The restored server: the bucket's current revision is the weak one again.
	ns.restore(old)
	js, kv = ns.reopen(ctx)
	deadline := time.Now().Add(15 * time.Second)
	for {
		st, _ := ReadStatuses(ctx, kv)
		if len(st) == 1 && strings.Contains(st[0].Status.Error, "older than the enforced") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the host does not say the bucket is behind: statuses %+v; log:\n%s", st, lg)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if g.revision() != strong.Revision {
		t.Fatalf("rolled back to revision %d (the restored server's), want %d kept; log:\n%s", g.revision(), strong.Revision, lg)
	}
}

// A policy key is one key, never a host's status entry nor a wildcard: a follower of ">" (or
// of "status.web-3") would take a host's status entry, which that host writes as it likes,
// for the fleet's policy — a compromised web-3 writing "allow * /**" there would set every
// such follower's policy. Refused at start, and by Push, naming the key.
func TestPolicyKeyIsNoWildcardNorStatus(t *testing.T) {
	ns := startNATS(t)
	_, js := ns.connect(t)
	ctx := context.Background()
	kv := openBucket(t, js)
	push(t, kv, "deny open /srv/**\n")
	// web-3's own status entry, with rules in it.
	if _, err := kv.Put(ctx, StatusPrefix+"web-3", []byte("allow * /**\n")); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{">", "*", "status.web-3", "status.*", "a.>", ""} {
		g := &guardStub{}
		lg := &testLog{t: t}
		f, err := StartPolicyFollower(FollowerConfig{Conn: ConnOptions{URLs: ns.url(), Timeout: 2 * time.Second},
			Host: "web-1", Key: key, StateDir: t.TempDir(), Apply: g.apply, Log: lg.log})
		if key == "" { // the default key: a control
			if err != nil {
				t.Fatal(err)
			}
			waitFor(t, 10*time.Second, "the default key followed", func() bool { return g.revision() != 0 })
			f.Close()
			continue
		}
		if err == nil {
			time.Sleep(time.Second)
			f.Close()
			t.Errorf("key %q: follower started (enforcing revision %d); log:\n%s", key, g.revision(), lg)
			continue
		}
		if !strings.Contains(err.Error(), strconvQuote(key)) {
			t.Errorf("key %q: %v (want the key named)", key, err)
		}
		if _, err := Push(ctx, kv, key, []byte("allow * /**\n"), 0, validatePolicy); err == nil {
			t.Errorf("key %q: pushed", key)
		}
	}
}

func strconvQuote(s string) string { return fmt.Sprintf("%q", s) }

// The network: a server without JetStream (started without -js, or JetStream off for the
// account) takes no records; the exporter says so in its log, keeps them in the spool, and
// sends every one, none twice, once the server has JetStream.
func TestExporterWaitsForJetStream(t *testing.T) {
	conf := filepath.Join(t.TempDir(), "nojs.conf")
	os.WriteFile(conf, []byte("jetstream: disabled\n"), 0o600)
	ns := &natsServer{t: t, store: t.TempDir(), port: freePort(t), conf: conf}
	ns.start()
	t.Cleanup(ns.stop)
	if ns.srv.JetStreamEnabled() {
		t.Fatal("the server has JetStream: the test's premise")
	}
	e, lg := newTestExporter(t, ns, "h1", t.TempDir(), nil)
	const n = 50
	for i := 0; i < n; i++ {
		e.Append(Event, payload(i))
	}
	waitFor(t, 15*time.Second, "the missing JetStream logged", func() bool { return lg.has("JetStream") })
	v0, _ := ns.srv.Varz(nil)
	time.Sleep(4 * time.Second) // several retries
	v1, _ := ns.srv.Varz(nil)
	if st := e.Stats(); st.AckedThrough != 0 || !st.Connected {
		t.Fatalf("without JetStream: %+v", st)
	}
	// Retries back off (250 ms doubling to 5 s): a handful of requests, not one per 10 ms.
	if n := v1.InMsgs - v0.InMsgs; n > 20 {
		t.Errorf("%d messages to the server in 4 s while JetStream is missing: the retries do not back off", n)
	}
	if n := strings.Count(lg.String(), "JetStream"); n != 1 {
		t.Errorf("the missing JetStream logged %d times (once is enough until it changes)", n)
	}
	ns.stop()
	ns.conf = ""
	ns.start()
	waitFor(t, 30*time.Second, "every record acked once JetStream is there", func() bool { return e.Stats().AckedThrough == n })
	closeExporter(t, e)
	_, js := ns.connect(t)
	g := readAll(t, js, "h1", time.Second)
	g.accountFor(t, n)
	if len(g.seqs) != n || g.dups != 0 || len(g.gaps) != 0 || !g.order {
		t.Errorf("%d records, %d duplicates, gaps %+v, in order %v", len(g.seqs), g.dups, g.gaps, g.order)
	}
}

// A follower takes no consumer on the bucket's stream (a watch's consumer could be deleted
// by anyone allowed CONSUMER.DELETE, or made while the server's JetStream was still
// recovering after a restart, and went quiet; and the permission to make one lets a host make
// a push consumer that delivers as another host: TestHostCannotDeliverIntoTheStreamAsAnotherHost).
// It hears a write of its key on the key's subject and reads it: a push is applied within a
// second.
func TestFollowerTakesNoConsumer(t *testing.T) {
	ns := startNATS(t)
	_, js := ns.connect(t)
	ctx := context.Background()
	kv := openBucket(t, js)
	first := push(t, kv, "deny open /a/**\n")
	g, lg := followH1(t, ns, first.Revision, "the first revision applied")
	s, err := js.Stream(ctx, "KV_"+DefaultBucket)
	if err != nil {
		t.Fatal(err)
	}
	names := s.ConsumerNames(ctx)
	for name := range names.Name() {
		t.Errorf("the follower made consumer %s on the bucket's stream", name)
	}
	for i, p := range []string{"/b/**", "/c/**", "/d/**"} {
		start := time.Now()
		rev := push(t, kv, "deny open "+p+"\n")
		for g.revision() != rev.Revision {
			if time.Since(start) > time.Second {
				t.Fatalf("push %d: revision %d not applied in 1 s; enforcing %d; log:\n%s", i, rev.Revision, g.revision(), lg)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}

// FuzzCheckHeader: a record shown is its subject's host's, with a seq and a kind, and none of
// its header fields is set twice, also as a key that folds to it (counted here with Go's
// decoder's view of each top-level key); nothing panics.
func FuzzCheckHeader(f *testing.F) {
	base := `{"host":"web-1","boot_id":"b","seq":5,"kind":"event","path":"/x"`
	for _, s := range []string{base + `}`, base + `,"HOST":"web-2"}`, base + `,"ſeq":1}`, base + `,"\u212aind":"gap"}`,
		`{"host":"web-1","seq":1,"kind":"event","host":"web-1"}`, `{"\u0068ost":"web-1","seq":1,"kind":"e"}`, `[]`, `{"host":"web-1","seq":1,"kind":"e"} {}`, `null`} {
		f.Add("fsnotifyd.events.web-1", s)
	}
	f.Add("fsnotifyd.events.w=65b-1", base+`}`)
	f.Fuzz(func(t *testing.T, subject string, data string) {
		h, err := CheckHeader(subject, []byte(data))
		if err != nil {
			return
		}
		host, err := SubjectHost(subject)
		if err != nil || h.Host != host || h.Seq == 0 || h.Kind == "" {
			t.Fatalf("CheckHeader(%q, %q) = %+v; subject's host %q, %v", subject, data, h, host, err)
		}
		dec := json.NewDecoder(strings.NewReader(data))
		if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
			t.Fatalf("CheckHeader(%q, %q) took a record that is not an object", subject, data)
		}
		counts := map[string]int{}
		for dec.More() {
			tok, err := dec.Token()
			if err != nil {
				t.Fatalf("CheckHeader took %q: %v", data, err)
			}
			for _, hk := range headerKeys {
				if strings.EqualFold(tok.(string), hk) {
					counts[hk]++
				}
			}
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				t.Fatalf("CheckHeader took %q: %v", data, err)
			}
		}
		for k, n := range counts {
			if n > 1 {
				t.Fatalf("CheckHeader(%q) took a record that sets %q %d times", data, k, n)
			}
		}
	})
}

// FuzzCheckPolicyKey: a key accepted is one plain key of the bucket as the NATS client checks
// keys (letters, digits, - / _ = and '.' between them: no wildcard, no blank) and not a
// host's status entry, nor the status prefix itself.
func FuzzCheckPolicyKey(f *testing.F) {
	for _, s := range []string{"default", "web/prod", "status.web-1", "status", "status.", "*", ">", "a.>", "a..b", ".a", "a b", "a\x00", "Status.web-1", "a.b"} {
		f.Add(s)
	}
	valid := regexp.MustCompile(`^[-/_=\.a-zA-Z0-9]+$`) // nats.go jetstream's validKeyRe
	f.Fuzz(func(t *testing.T, key string) {
		if CheckPolicyKey(key) != nil {
			return
		}
		if !valid.MatchString(key) || key[0] == '.' || key[len(key)-1] == '.' || strings.Contains(key, "..") {
			t.Fatalf("CheckPolicyKey accepted %q, no key of a bucket", key)
		}
		if strings.HasPrefix(key, StatusPrefix) || key+"." == StatusPrefix {
			t.Fatalf("CheckPolicyKey accepted %q, a status entry", key)
		}
	})
}

// A host may write its own status entry, $KV.<bucket>.status.<host>, and so chooses that
// message's headers. A key-value bucket as nats.go creates it allows rollups (its Purge is a
// rollup of one key), and a rollup of "all" on any subject of the bucket's stream purges every
// other message: the fleet's policy and every other host's status. A bucket made that way
// (by nats.go, an earlier fsnotifyd, the nats CLI) is said by each follower; policy push turns
// its rollups off, and then a host's rollup is refused.
func TestHostCannotEraseThePolicyBucket(t *testing.T) {
	_, userURL, ajs := permServer(t)
	ctx := context.Background()
	if _, err := ajs.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: DefaultBucket, History: 16}); err != nil {
		t.Fatal(err)
	}
	g := &guardStub{}
	f, lg := startFollowerAt(t, userURL("web-1"), "web-1", t.TempDir(), g)
	defer f.Close()
	waitFor(t, 10*time.Second, "web-1's follower saying the bucket allows rollups", func() bool { return lg.has("allows rollups") })
	akv := openBucket(t, ajs) // policy push's
	pushed := push(t, akv, "deny open /srv/**\n")
	_, js1 := hostConn(t, userURL("web-1"), "web-1")
	for _, rollup := range []string{jetstream.MsgRollupAll, jetstream.MsgRollupSubject} {
		m := &nats.Msg{Subject: "$KV." + DefaultBucket + "." + StatusPrefix + "web-1", Data: []byte(`{"host":"web-1"}`), Header: nats.Header{}}
		m.Header.Set(jetstream.MsgRollup, rollup)
		if _, err := js1.PublishMsg(ctx, m); err == nil {
			t.Errorf("web-1's status write with Nats-Rollup: %s taken by the policy bucket", rollup)
		}
	}
	e, err := akv.Get(ctx, DefaultKey)
	if err != nil || e.Revision() != pushed.Revision {
		t.Fatalf("the fleet's policy after web-1's rollup: %v, %v; want revision %d", e, err, pushed.Revision)
	}
}

// The admin deletes the policy bucket while hosts follow it, then makes it anew and pushes:
// the new bucket's revisions start again at 1. A host says the bucket is gone (and keeps
// what it enforces); a bucket made anew is not a restored one (its stream was created after
// the revision the host enforces), so its revisions are applied, not refused as older.
func TestFollowerBucketDeletedAndMadeAnew(t *testing.T) {
	ns := startNATS(t)
	_, js := ns.connect(t)
	ctx := context.Background()
	kv := openBucket(t, js)
	Push(ctx, kv, DefaultKey, []byte("deny open /a/**\n"), 0, validatePolicy)
	second := push(t, kv, "deny open /b/**\n")
	g, lg := followH1(t, ns, second.Revision, "revision 2 applied")

	if err := js.DeleteKeyValue(ctx, DefaultBucket); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "the host saying the bucket is gone", func() bool { return lg.has("does not exist") })
	if g.revision() != second.Revision {
		t.Fatalf("enforcing revision %d after the bucket was deleted, want %d kept", g.revision(), second.Revision)
	}

	kv = openBucket(t, js)
	anew := push(t, kv, "deny open /c/**\n")
	if anew.Revision >= second.Revision {
		t.Fatalf("the new bucket's revision is %d: the test's premise is a lower one", anew.Revision)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		g.mu.Lock()
		ok := g.rev == anew.Revision && strings.Contains(string(g.data), "/c/")
		g.mu.Unlock()
		st, _ := ReadStatuses(ctx, kv)
		if ok && len(st) == 1 && st[0].Status.Revision == anew.Revision && st[0].Status.Error == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the new bucket's revision %d not enforced: guard at %d, statuses %+v; log:\n%s", anew.Revision, g.revision(), st, lg)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A server restored from a copy made before the bucket was made anew holds the old bucket,
// with higher revisions than the new one's: what the host enforces came from the newer
// bucket, so the old one's revisions are older, whatever their numbers, and refused.
func TestFollowerRefusesARestoredOlderBucket(t *testing.T) {
	ns := startNATS(t)
	_, js := ns.connect(t)
	ctx := context.Background()
	kv := openBucket(t, js)
	var old PushResult
	for _, p := range []string{"/a/**", "/b/**", "/weak/**"} {
		old = push(t, kv, "deny open "+p+"\n")
	}
	g, lg := followH1(t, ns, old.Revision, "the old bucket's revision applied")
	copyDir := ns.snapshot()
	_, js = ns.connect(t)
	if err := js.DeleteKeyValue(ctx, DefaultBucket); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond) // a creation time of its own (the server's clock)
	kv = openBucket(t, js)
	anew := push(t, kv, "deny open /strong/**\n")
	waitFor(t, 20*time.Second, "the new bucket's revision applied", func() bool { return g.revision() == anew.Revision })

	ns.restore(copyDir)
	_, kv = ns.reopen(ctx)
	waitFor(t, 20*time.Second, "the host saying the restored bucket is older", func() bool {
		st, _ := ReadStatuses(ctx, kv)
		return len(st) == 1 && strings.Contains(st[0].Status.Error, "before the enforced one's")
	})
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.rev != anew.Revision || !strings.Contains(string(g.data), "/strong/") {
		t.Fatalf("enforcing revision %d %q: the restored older bucket's; log:\n%s", g.rev, g.data, lg)
	}
}

// The server's disk is full (its JetStream store limit reached: "insufficient resources"):
// the stream takes nothing more. The exporter keeps what it has in the spool, counts it as
// unacknowledged, says why once, and never makes a gap of it; Append does not wait. Once the
// server has room (restarted with a larger store), every record is stored, none twice.
func TestExporterServerStoreFullResumes(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "small.conf")
	os.WriteFile(conf, []byte("jetstream { max_file_store: 1MB }\n"), 0o600)
	ns := &natsServer{t: t, store: t.TempDir(), port: freePort(t), conf: conf}
	ns.start()
	t.Cleanup(ns.stop)
	_, js := ns.connect(t)
	sc := StreamConfig{}.jetstream()
	sc.MaxBytes = -1 // the server's store is the limit
	if _, err := js.CreateStream(context.Background(), sc); err != nil {
		t.Fatal(err)
	}
	e, lg := newTestExporter(t, ns, "h1", t.TempDir(), nil)
	const n = 3000
	pad := strings.Repeat("p", 900)
	start := time.Now()
	for i := 0; i < n; i++ {
		e.Append(Event, fmt.Appendf(nil, `{"path":"/f","pad":%q,"i":%d}`, pad, i))
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("%d Appends took %v against a full server", n, d)
	}
	waitFor(t, 20*time.Second, "the full store said, with what to do", func() bool { return lg.has("storage is full: free its disk") })
	time.Sleep(2 * time.Second)
	st := e.Stats()
	if st.AckedThrough >= n || st.DroppedBuffer+st.DroppedSpool != 0 {
		t.Fatalf("against a full store: %+v", st)
	}
	if c := strings.Count(lg.String(), "publishing seq"); c > 3 {
		t.Errorf("the full store said %d times:\n%s", c, lg)
	}
	ns.stop()
	ns.conf = ""
	ns.start()
	waitFor(t, 60*time.Second, "every record acked once the server has room", func() bool { return e.Stats().AckedThrough == n })
	closeExporter(t, e)
	_, js = ns.connect(t)
	g := readAll(t, js, "h1", time.Second)
	g.accountFor(t, n)
	if len(g.seqs) != n || g.dups != 0 || len(g.gaps) != 0 {
		t.Errorf("%d records, %d duplicates, gaps %+v; want %d, none, none", len(g.seqs), g.dups, g.gaps, n)
	}
}
