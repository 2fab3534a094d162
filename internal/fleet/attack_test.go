package fleet

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

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
	if err := EnsureStream(ctx, js1, StreamConfig{}); err != nil {
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

// A host allowed to create the stream (the example configuration lets it, for a fleet
// without an admin-made stream) creates it first, allowing rollups: then one message of its
// own with Nats-Rollup: all would erase every host's records. An exporter does not export
// into such a stream: it says why and keeps the records in its spool until the stream is
// made right, then sends them all.
func TestExporterRefusesAStreamThatAllowsRollups(t *testing.T) {
	_, userURL, ajs := permServer(t)
	ctx := context.Background()
	_, js1 := hostConn(t, userURL("web-1"), "web-1")
	sc := StreamConfig{}.jetstream()
	sc.AllowRollup = true
	if _, err := js1.CreateStream(ctx, sc); err != nil {
		t.Fatalf("web-1 creating the stream: %v", err)
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
