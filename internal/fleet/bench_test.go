package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// BenchmarkExport: records/s from Append to acknowledged by a local in-process server, through
// the memory buffer, the spool and the publisher; lag p50/p99 from Append to a consumer that
// receives the record. BenchmarkBarePublish is the reference in the same run: the same
// records published straight with PublishMsgAsync and the same window, no spool.
//
//	bench/fleet.sh
func BenchmarkExport(b *testing.B) { benchExport(b, 0) }

// BenchmarkExportLag paces Append at 10,000 records/s (below saturation), so the lag is the
// pipeline's, not a queue's.
func BenchmarkExportLag(b *testing.B) { benchExport(b, 10000) }

func benchExport(b *testing.B, rate int) {
	ns := startNATS(b)
	e, _ := newTestExporter(b, ns, "bench", b.TempDir(), nil)
	_, js := ns.connect(b)
	lags := make([]time.Duration, 0, b.N)
	var mu sync.Mutex
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cons, err := js.OrderedConsumer(ctx, DefaultStream, jetstream.OrderedConsumerConfig{})
	if err != nil { // the stream is made by the exporter: wait for it
		time.Sleep(500 * time.Millisecond)
		if cons, err = js.OrderedConsumer(ctx, DefaultStream, jetstream.OrderedConsumerConfig{}); err != nil {
			b.Fatal(err)
		}
	}
	cc, err := cons.Consume(func(m jetstream.Msg) {
		var v struct {
			T int64 `json:"t"`
		}
		json.Unmarshal(m.Data(), &v)
		mu.Lock()
		lags = append(lags, time.Duration(time.Now().UnixNano()-v.T))
		mu.Unlock()
	})
	if err != nil {
		b.Fatal(err)
	}
	defer cc.Stop()
	buf := make([]byte, 0, 256)
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		buf = append(buf[:0], `{"time":"2024-05-01T12:00:00.123456789Z","path":"/srv/data/file-`...)
		buf = strconv.AppendInt(buf, int64(i), 10)
		buf = append(buf, `","events":["CLOSE_WRITE"],"isdir":false,"pid":4242,"comm":"writer","t":`...)
		buf = strconv.AppendInt(buf, time.Now().UnixNano(), 10)
		buf = append(buf, '}')
		if rate > 0 {
			if d := time.Until(start.Add(time.Duration(i) * time.Second / time.Duration(rate))); d > 0 {
				time.Sleep(d)
			}
		}
		for e.queued() > e.cfg.BufferRecords/2 {
			time.Sleep(50 * time.Microsecond) // the pipeline's pace, not the loop's: no drops
		}
		e.Append(Event, buf)
	}
	for e.Stats().AckedThrough < uint64(b.N) {
		time.Sleep(time.Millisecond)
	}
	el := time.Since(start)
	if st := e.Stats(); st.DroppedBuffer+st.DroppedSpool > 0 {
		b.Fatalf("lossy run: %+v", st)
	}
	b.StopTimer()
	if rate == 0 {
		b.ReportMetric(float64(b.N)/el.Seconds(), "records/s")
		e.Close(context.Background())
		return
	}
	for {
		mu.Lock()
		n := len(lags)
		mu.Unlock()
		if n >= b.N {
			break
		}
		time.Sleep(time.Millisecond)
	}
	sort.Slice(lags, func(i, j int) bool { return lags[i] < lags[j] })
	b.ReportMetric(float64(lags[len(lags)/2].Microseconds()), "lag-p50-µs")
	b.ReportMetric(float64(lags[len(lags)*99/100].Microseconds()), "lag-p99-µs")
	e.Close(context.Background())
}

func BenchmarkBarePublish(b *testing.B) {
	ns := startNATS(b)
	nc, err := nats.Connect(ns.url())
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096))
	if err := EnsureStream(context.Background(), js, StreamConfig{}); err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 0, 256)
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		buf = append(buf[:0], `{"host":"bench","boot_id":"boot-1","seq":`...)
		buf = strconv.AppendInt(buf, int64(i+1), 10)
		buf = append(buf, `,"kind":"event","time":"2024-05-01T12:00:00.123456789Z","path":"/srv/data/file-`...)
		buf = strconv.AppendInt(buf, int64(i), 10)
		buf = append(buf, `","events":["CLOSE_WRITE"],"isdir":false,"pid":4242,"comm":"writer","t":1}`...)
		m := &nats.Msg{Subject: "fsnotifyd.events.bench", Data: append([]byte(nil), buf...), Header: nats.Header{}}
		m.Header.Set(jetstream.MsgIDHeader, "bench/"+strconv.Itoa(i+1))
		for {
			_, err := js.PublishMsgAsync(m)
			if errors.Is(err, jetstream.ErrTooManyStalledMsgs) {
				continue // the window is full: as the exporter, wait for acks
			}
			if err != nil {
				b.Fatal(err)
			}
			break
		}
	}
	<-js.PublishAsyncComplete()
	el := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/el.Seconds(), "records/s")
}

// BenchmarkAppend is the cost on the caller (the kernel reader): one Append.
func BenchmarkAppend(b *testing.B) {
	ns := startNATS(b)
	e, _ := newTestExporter(b, ns, "bench", b.TempDir(), func(c *ExporterConfig) { c.BufferRecords = 1 << 20; c.BufferBytes = 1 << 30 })
	p := payload(1)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		e.Append(Event, p)
	}
	b.StopTimer()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	e.Close(ctx)
}
