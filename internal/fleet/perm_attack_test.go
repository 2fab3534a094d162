package fleet

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// A push consumer delivers to any subject its creator names, and permissions cannot say which
// deliver subjects a user may name: a host allowed to make consumers on the policy bucket's
// stream (as the example configuration allowed, for nats.go's watch) named
// fsnotifyd.events.web-2, and the server itself published there what the host had written in
// its own status entry, whenever anyone listened on that subject (an operator's nats sub):
// the stream stored it as web-2's record, host field and all, and fleet tail showed it as
// web-2's. The follower takes no consumer now, and the hosts may make none.
func TestHostCannotDeliverIntoTheStreamAsAnotherHost(t *testing.T) {
	_, userURL, ajs := permServer(t)
	ctx := context.Background()
	openBucket(t, ajs)
	// Interest on the subject, without which nothing is delivered: an operator's core
	// subscriber.
	anc, err := nats.Connect(userURL("admin"))
	if err != nil {
		t.Fatal(err)
	}
	defer anc.Close()
	core := make(chan *nats.Msg, 16)
	anc.ChanSubscribe("fsnotifyd.events.web-2", core)
	anc.Flush()

	nc, js1 := hostConn(t, userURL("web-1"), "web-1")
	kv1, err := js1.KeyValue(ctx, DefaultBucket)
	if err != nil {
		t.Fatal(err)
	}
	forged := `{"host":"web-2","boot_id":"b","seq":1,"kind":"event","path":"/forged-by-web-1"}`
	if _, err := kv1.Put(ctx, StatusPrefix+"web-1", []byte(forged)); err != nil {
		t.Fatal(err)
	}
	req, _ := json.Marshal(map[string]any{"stream_name": "KV_" + DefaultBucket, "config": map[string]any{
		"deliver_subject": "fsnotifyd.events.web-2", "deliver_policy": "all", "ack_policy": "none",
		"filter_subject": "$KV." + DefaultBucket + "." + StatusPrefix + "web-1",
	}})
	resp, err := nc.Request("$JS.API.CONSUMER.CREATE.KV_"+DefaultBucket, req, 2*time.Second)
	if err == nil && !strings.Contains(string(resp.Data), `"error"`) {
		t.Errorf("web-1 made a push consumer delivering to web-2's subject: %s", resp.Data)
	}
	select {
	case m := <-core:
		t.Errorf("the server delivered web-1's words as %s: %s", m.Subject, m.Data)
	case <-time.After(2 * time.Second):
	}
	time.Sleep(500 * time.Millisecond)
	s, err := ajs.Stream(ctx, DefaultStream)
	if err != nil {
		t.Fatal(err)
	}
	if n := s.CachedInfo().State.Msgs; n != 0 {
		t.Errorf("the stream stored %d messages that web-1's consumer delivered as web-2's", n)
	}
}

// A host allowed $JS.API.STREAM.CREATE.FSNOTIFYD (the example configuration allowed it, so
// that the first exporter made the stream) that finds the stream missing creates it first,
// republishing its own subject on the policy key's: the server then stores each message the
// host publishes on its own subject as a revision of the fleet's policy, which every host
// applies. Hosts may create no stream; an exporter does not export into a stream that
// republishes.
func TestHostCannotPushAPolicyThroughTheStream(t *testing.T) {
	_, userURL, ajs := permServer(t)
	ctx := context.Background()
	akv := openBucket(t, ajs)
	pushed := push(t, akv, "deny open /srv/**\n")
	_, js1 := hostConn(t, userURL("web-1"), "web-1")
	if err := ajs.DeleteStream(ctx, DefaultStream); err != nil { // missing: not made yet
		t.Fatal(err)
	}
	sc := StreamConfig{}.jetstream()
	sc.RePublish = &jetstream.RePublish{Source: Subject(Event, "web-1"), Destination: kvSubject(DefaultBucket, DefaultKey)}
	if _, err := js1.CreateStream(ctx, sc); err == nil {
		t.Errorf("web-1 created the stream, republishing on the policy key")
		_, perr := js1.Publish(ctx, Subject(Event, "web-1"), []byte("allow * /**\n"))
		if perr != nil {
			t.Logf("publish: %v", perr)
		}
		time.Sleep(500 * time.Millisecond)
	}
	if e, err := akv.Get(ctx, DefaultKey); err != nil || e.Revision() != pushed.Revision || string(e.Value()) != "deny open /srv/**\n" {
		v := []byte(nil)
		if e != nil {
			v = e.Value()
		}
		t.Fatalf("the fleet's policy after web-1's stream: %q, %v; want revision %d", v, err, pushed.Revision)
	}
	// A missing stream: the host says who makes it.
	if err := EnsureStream(ctx, js1, StreamConfig{}); err == nil || !strings.Contains(err.Error(), "fleet init") {
		t.Errorf("EnsureStream as web-1 on a missing stream: %v, want the admin's command named", err)
	}
	// The same stream made by the admin, by mistake: no exporter exports into it.
	ajs.DeleteStream(ctx, DefaultStream)
	if _, err := ajs.CreateStream(ctx, sc); err != nil {
		t.Fatal(err)
	}
	if err := EnsureStream(ctx, js1, StreamConfig{}); err == nil || !strings.Contains(err.Error(), "republishes") {
		t.Errorf("EnsureStream on a stream that republishes: %v", err)
	}
}

// A bucket whose stream allows message schedules (the admin's mistake): a host's status
// write with Nats-Schedule-Target naming the policy key is written by the server as the
// policy. fleet init and policy push refuse such a bucket, naming the setting; a follower
// says it.
func TestBucketWithMessageSchedulesIsRefused(t *testing.T) {
	_, userURL, ajs := permServer(t)
	ctx := context.Background()
	akv := openBucket(t, ajs)
	push(t, akv, "deny open /srv/**\n")
	s, err := ajs.Stream(ctx, bucketStream(DefaultBucket))
	if err != nil {
		t.Fatal(err)
	}
	cfg := s.CachedInfo().Config
	cfg.AllowMsgSchedules, cfg.Discard = true, jetstream.DiscardOld // schedules need discard old
	if _, err := ajs.UpdateStream(ctx, cfg); err != nil {
		t.Skipf("the server does not turn schedules on in a bucket: %v", err)
	}
	_, js1 := hostConn(t, userURL("web-1"), "web-1")
	m := &nats.Msg{Subject: kvSubject(DefaultBucket, StatusPrefix+"web-1"), Data: []byte("allow * /**\n"), Header: nats.Header{}}
	m.Header.Set("Nats-Schedule", "@at "+time.Now().Add(100*time.Millisecond).UTC().Format(time.RFC3339Nano))
	m.Header.Set("Nats-Schedule-Target", kvSubject(DefaultBucket, DefaultKey))
	if _, err := js1.PublishMsg(ctx, m); err != nil {
		t.Skipf("the bucket refused the schedule: %v", err)
	}
	waitFor(t, 5*time.Second, "web-1's words written as the policy (the premise)", func() bool {
		e, err := akv.Get(ctx, DefaultKey)
		return err == nil && string(e.Value()) == "allow * /**\n"
	})
	if _, err := OpenBucket(ctx, ajs, DefaultBucket, true); err == nil || !strings.Contains(err.Error(), "message schedules") {
		t.Errorf("OpenBucket (policy push, fleet init) on a bucket with schedules: %v", err)
	}
	g := &guardStub{}
	f, lg := startFollowerAt(t, userURL("web-2"), "web-2", t.TempDir(), g)
	defer f.Close()
	waitFor(t, 10*time.Second, "web-2's follower saying the bucket is wrong", func() bool { return lg.has("message schedules") })
}

// A host reads another host's status entry (which revision it enforces, the errors of the
// revisions it refused: what its guard is missing) with the example configuration: it needs
// to read its policy key only, but was allowed $JS.API.DIRECT.GET on the whole bucket. Each
// host follows the policy with the narrowed permissions still, and reads no other entry, by
// nats.go's Get (the subject form) nor by a request body naming the subject.
func TestHostCannotReadAnotherHostsStatus(t *testing.T) {
	_, userURL, ajs := permServer(t)
	ctx := context.Background()
	akv := openBucket(t, ajs)
	pushed := push(t, akv, "deny open /srv/**\n")
	for _, h := range []string{"web-1", "web-2"} {
		g := &guardStub{}
		f, _ := startFollowerAt(t, userURL(h), h, t.TempDir(), g)
		defer f.Close()
		waitFor(t, 10*time.Second, h+" following the policy with the example permissions", func() bool { return g.revision() == pushed.Revision })
	}
	waitFor(t, 10*time.Second, "both status entries written", func() bool {
		st, _ := ReadStatuses(ctx, akv)
		return len(st) == 2
	})

	nc, js1 := hostConn(t, userURL("web-1"), "web-1")
	kv1, err := js1.KeyValue(ctx, DefaultBucket)
	if err != nil {
		t.Fatal(err)
	}
	if e, err := kv1.Get(ctx, StatusPrefix+"web-2"); err == nil {
		t.Errorf("web-1 read web-2's status entry through its permissions: %s", e.Value())
	}
	req, _ := json.Marshal(map[string]any{"last_by_subj": "$KV." + DefaultBucket + "." + StatusPrefix + "web-2"})
	if m, err := nc.Request("$JS.API.DIRECT.GET.KV_"+DefaultBucket, req, time.Second); err == nil && len(m.Data) > 0 {
		t.Errorf("web-1 read web-2's status entry by a direct get naming it: %s", m.Data)
	}
	req, _ = json.Marshal(map[string]any{"seq": 2})
	if m, err := nc.Request("$JS.API.DIRECT.GET.KV_"+DefaultBucket+".$KV."+DefaultBucket+"."+DefaultKey, req, time.Second); err == nil && strings.Contains(string(m.Data), "web-2") {
		t.Errorf("web-1 read another entry by a body on its own key's direct get: %s", m.Data)
	}
}
