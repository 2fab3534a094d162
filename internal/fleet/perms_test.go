package fleet

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// The example server configuration of docs/fleet.md (contrib/nats-server-fleet.conf) works
// for an exporter and a policy follower on a host, and keeps a host from writing as another
// host or pushing a policy.
func TestExampleServerConfigPermissions(t *testing.T) {
	ns := &natsServer{t: t, store: t.TempDir(), port: freePort(t), conf: "../../contrib/nats-server-fleet.conf"}
	ns.start()
	t.Cleanup(ns.stop)
	userURL := func(user, pass string) string { return fmt.Sprintf("nats://%s:%s@127.0.0.1:%d", user, pass, ns.port) }
	ctx := context.Background()

	// The admin pushes a policy.
	admin := ConnOptions{URLs: userURL("admin", "change-me-admin"), Timeout: 2 * time.Second}
	anc, err := admin.Connect()
	if err != nil {
		t.Fatal(err)
	}
	defer anc.Close()
	ajs, _ := admin.JetStream(anc)
	akv := openBucket(t, ajs)
	// And makes the stream (fsnotifyd fleet init): hosts may create none.
	if err := EnsureStream(ctx, ajs, StreamConfig{}); err != nil {
		t.Fatal(err)
	}
	push(t, akv, "deny open /srv/**\n")

	// web-1 exports and follows the policy.
	host := ConnOptions{URLs: userURL("web-1", "change-me-web-1"), Timeout: 2 * time.Second}
	lg := &testLog{t: t}
	e, err := NewExporter(ExporterConfig{Conn: host, Host: "web-1", SpoolDir: t.TempDir(), Log: lg.log})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 100; i++ {
		e.Append(Event, payload(i))
	}
	waitFor(t, 10*time.Second, "web-1's records acked", func() bool { return e.Stats().AckedThrough == 100 })
	closeExporter(t, e)
	g := &guardStub{}
	flg := &testLog{t: t}
	f, err := StartPolicyFollower(FollowerConfig{Conn: host, Host: "web-1", StateDir: t.TempDir(), Apply: g.apply, Log: flg.log})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "web-1 enforcing the policy and saying so", func() bool {
		st, _ := ReadStatuses(ctx, akv)
		return g.revision() == 1 && len(st) == 1 && st[0].Token == "web-1" && st[0].Status.Revision == 1
	})
	f.Close()
	if strings.Contains(lg.String()+flg.String(), "ermission") {
		t.Errorf("permission errors with the documented permissions:\n%s\n%s", lg, flg)
	}

	// What web-1 may not do.
	nc, err := nats.Connect(userURL("web-1", "change-me-web-1"), nats.CustomInboxPrefix(HostInboxPrefix("web-1")),
		nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {})) // the violations are expected
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc, jetstream.WithDefaultTimeout(time.Second))
	if _, err := js.Publish(ctx, "fsnotifyd.events.web-2", []byte(`{}`)); err == nil {
		t.Error("web-1 published as web-2")
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "X", Subjects: []string{"x.>"}}); err == nil {
		t.Error("web-1 created a stream")
	}
	if _, err := js.CreateConsumer(ctx, "KV_"+DefaultBucket, jetstream.ConsumerConfig{}); err == nil {
		t.Error("web-1 created a consumer")
	}
	kv, err := js.KeyValue(ctx, DefaultBucket)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, DefaultKey, []byte("default allow\n")); err == nil {
		t.Error("web-1 pushed a policy")
	}
	if _, err := kv.Put(ctx, StatusPrefix+"web-2", []byte(`{}`)); err == nil {
		t.Error("web-1 wrote web-2's status")
	}
	if _, err := nc.Subscribe("_INBOX_web-2.>", func(*nats.Msg) {}); err == nil {
		nc.Flush()
		if nc.LastError() == nil {
			t.Error("web-1 subscribed to web-2's replies")
		}
	}
	if e, err := akv.Get(ctx, DefaultKey); err != nil || e.Revision() != 1 {
		t.Errorf("the policy changed: %v %v", e, err)
	}
}
