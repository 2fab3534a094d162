package fleet

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// The stream is deleted (an admin's mistake, or a host allowed to) and made anew while a
// reader follows it: the new stream's sequence numbers start again at 1. A reader either goes
// on with the new stream's records or stops saying why; it never waits silently for the old
// stream's sequence numbers to come round again (with an ordered consumer, nats.go resumes
// at the last stream sequence it saw plus one, which the new stream reaches only after as
// many records).
func TestTailStreamDeletedAndMadeAnew(t *testing.T) {
	for _, durable := range []string{"", "siem"} {
		name := "ordered"
		if durable != "" {
			name = "durable"
		}
		t.Run(name, func(t *testing.T) {
			ns := startNATS(t)
			_, js := ns.connect(t)
			e, _ := newTestExporter(t, ns, "h1", t.TempDir(), nil)
			defer closeExporter(t, e)
			const n = 200
			for i := 0; i < n; i++ {
				e.Append(Event, payload(i))
			}
			waitFor(t, 10*time.Second, "the first records acked", func() bool { return e.Stats().AckedThrough == n })
			var mu sync.Mutex
			var got []int
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan error, 1)
			go func() {
				done <- Tail(ctx, js, TailOptions{StartSeq: 1, Durable: durable}, func(r *Received) error {
					mu.Lock()
					got = append(got, payloadIndex(t, r.Data))
					mu.Unlock()
					return nil
				})
			}()
			count := func() int { mu.Lock(); defer mu.Unlock(); return len(got) }
			waitFor(t, 10*time.Second, "the first records read", func() bool { return count() == n })

			if err := js.DeleteStream(context.Background(), DefaultStream); err != nil {
				t.Fatal(err)
			}
			for i := n; i < n+5; i++ {
				e.Append(Event, payload(i))
			}
			waitFor(t, 20*time.Second, "the exporter making the stream anew and sending", func() bool { return e.Stats().AckedThrough == n+5 })
			deadline := time.Now().Add(15 * time.Second)
			for count() < n+5 {
				select {
				case err := <-done:
					if err == nil || !strings.Contains(err.Error(), DefaultStream) || !strings.Contains(err.Error(), "deleted") {
						t.Fatalf("Tail ended with %v: want the new records or an error saying the stream was deleted", err)
					}
					t.Logf("Tail stopped: %v", err)
					return
				default:
				}
				if time.Now().After(deadline) {
					t.Fatalf("after the stream was made anew, Tail neither read its %d records nor stopped (read %d in all)", 5, count()-n)
				}
				time.Sleep(50 * time.Millisecond)
			}
		})
	}
}

// A host allowed to create the stream (the example configuration lets it, for a fleet
// without an admin-made stream) creates it first with a subject transform that stores every
// host's records — its own included — under web-2's subjects, or with a source that copies
// another stream's messages there. Its own record, host field "web-2", is then stored on
// fsnotifyd.events.web-2 and would read as web-2's. A reader does not read such a stream, and
// an exporter does not export into it; each says why.
func TestStreamThatRelabelsSubjectsIsRefused(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(*jetstream.StreamConfig)
	}{
		{"subject_transform", func(sc *jetstream.StreamConfig) {
			sc.SubjectTransform = &jetstream.SubjectTransformConfig{Source: "fsnotifyd.*.*", Destination: "fsnotifyd.{{wildcard(1)}}.web-2"}
		}},
		{"allow_msg_schedules", func(sc *jetstream.StreamConfig) { sc.AllowMsgSchedules = true }},
		{"sources", func(sc *jetstream.StreamConfig) {
			sc.Sources = []*jetstream.StreamSource{{Name: "KV_" + DefaultBucket,
				SubjectTransforms: []jetstream.SubjectTransformConfig{{Source: "$KV." + DefaultBucket + ".status.web-1", Destination: "fsnotifyd.events.web-2"}}}}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, userURL, ajs := permServer(t)
			ctx := context.Background()
			openBucket(t, ajs)
			sc := StreamConfig{}.jetstream()
			tc.mod(&sc)
			ajs.DeleteStream(ctx, DefaultStream)
			if _, err := ajs.CreateStream(ctx, sc); err != nil { // as a host allowed to would, first
				t.Fatalf("creating the stream: %v", err)
			}
			_, js1 := hostConn(t, userURL("web-1"), "web-1")
			forged := []byte(`{"host":"web-2","boot_id":"b","seq":1,"kind":"event","path":"/forged-by-web-1"}`)
			if tc.name == "sources" {
				kv1, err := js1.KeyValue(ctx, DefaultBucket)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := kv1.Put(ctx, StatusPrefix+"web-1", forged); err != nil {
					t.Fatal(err)
				}
			} else if tc.name == "allow_msg_schedules" {
				// A message on its own subject that the server publishes, at the time it
				// names, on a subject of the stream it names.
				m := &nats.Msg{Subject: Subject(Event, "web-1"), Data: forged, Header: nats.Header{}}
				m.Header.Set("Nats-Schedule", "@at "+time.Now().Add(200*time.Millisecond).UTC().Format(time.RFC3339Nano))
				m.Header.Set("Nats-Schedule-Target", Subject(Event, "web-2"))
				if _, err := js1.PublishMsg(ctx, m); err != nil {
					t.Fatal(err)
				}
			} else if _, err := js1.Publish(ctx, Subject(Event, "web-1"), forged); err != nil {
				t.Fatal(err)
			}
			waitFor(t, 5*time.Second, "the forged record stored (the premise)", func() bool {
				s, err := ajs.Stream(ctx, DefaultStream)
				if err != nil {
					return false
				}
				m, err := s.GetLastMsgForSubject(ctx, Subject(Event, "web-2"))
				return err == nil && strings.Contains(string(m.Data), "forged-by-web-1")
			})

			tctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			defer cancel()
			var shown []string
			err := Tail(tctx, ajs, TailOptions{StartSeq: 1}, func(r *Received) error {
				if _, herr := CheckHeader(r.Subject, r.Data); herr == nil {
					shown = append(shown, r.Subject+" "+string(r.Data))
				}
				return nil
			})
			if len(shown) != 0 || err == nil || !strings.Contains(err.Error(), DefaultStream) {
				t.Errorf("Tail: %v, shown %q: want no record shown and an error naming the stream", err, shown)
			}

			lg := &testLog{t: t}
			e, err := NewExporter(ExporterConfig{Conn: ConnOptions{URLs: userURL("web-2"), Timeout: 2 * time.Second}, Host: "web-2", SpoolDir: t.TempDir(), Log: lg.log})
			if err != nil {
				t.Fatal(err)
			}
			e.Append(Event, payload(0))
			deadline := time.Now().Add(10 * time.Second)
			for !lg.has("not exporting into it") {
				if time.Now().After(deadline) {
					t.Fatalf("the exporter did not say why it does not export in 10 s; log:\n%s", lg)
				}
				time.Sleep(20 * time.Millisecond)
			}
			if a := e.Stats().AckedThrough; a != 0 {
				t.Errorf("%d records exported into the stream", a)
			}
			ctx2, cancel2 := context.WithTimeout(ctx, 500*time.Millisecond)
			e.Close(ctx2)
			cancel2()
		})
	}
}
