package fleet

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// TailOptions select what Tail reads.
type TailOptions struct {
	Stream string // default FSNOTIFYD
	// Decisions reads decisions instead of events (gap records come with either).
	Decisions bool
	// HostToken, when not "", reads only that host (a HostToken); otherwise every host.
	HostToken string
	// Where to start: the records from StartSeq (a stream sequence), or those newer than
	// Since, or (both zero) only new ones.
	StartSeq uint64
	Since    time.Duration
	// Durable names a durable consumer that remembers what was read (acknowledged) so a
	// reader can stop and resume without loss; it is created on first use with the start
	// above and resumed after that. "" reads with an ephemeral ordered consumer.
	Durable string
}

// Received is one record read from the stream.
type Received struct {
	StreamSeq uint64
	Subject   string
	Data      []byte
	// MsgID is the record's Nats-Msg-Id (<token>/<spool key>/<seq>): see DedupeKey.
	MsgID string
	// Missed, when not nil, says that the stream dropped records before this reader read
	// them (Subject, Data and MsgID are then empty): see Missed.
	Missed *Missed
	// ack acknowledges it to a durable consumer (nil otherwise).
	ack func() error
}

// Missed is a run of stream sequences, First to Last (Count of them), that the reader did not
// get because the stream no longer held them when the reader got there: its limits
// (max_msgs, max_bytes, max_age, with discard old) dropped them while the reader was behind
// or stopped, or an admin purged them. The stream does not say whose they were: a run may
// hold records of any host and kind, including ones this reader would not have shown.
type Missed struct {
	First, Last, Count uint64
}

// Ack tells a durable consumer that the record was handled; a no-op otherwise.
func (r *Received) Ack() error {
	if r.ack == nil {
		return nil
	}
	return r.ack()
}

// FilterSubjects are the subjects Tail reads for o.
func (o TailOptions) FilterSubjects() []string {
	tok := "*"
	if o.HostToken != "" {
		tok = o.HostToken
	}
	k := Event
	if o.Decisions {
		k = Decision
	}
	return []string{Subject(k, tok), Subject(Gap, tok)}
}

// Tail calls fn for each record until ctx is done (nil), fn returns ErrStopTail (nil), or fn
// or the consumer fails. fn runs on Tail's goroutine; with a durable consumer, a record is
// acknowledged after fn returns nil or ErrStopTail, so one that was not handled comes again
// next time.
func Tail(ctx context.Context, js jetstream.JetStream, o TailOptions, fn func(*Received) error) error {
	if o.Stream == "" {
		o.Stream = DefaultStream
	}
	var deliver jetstream.DeliverPolicy = jetstream.DeliverNewPolicy
	var startTime *time.Time
	switch {
	case o.StartSeq > 0:
		deliver = jetstream.DeliverByStartSequencePolicy
	case o.Since > 0:
		deliver = jetstream.DeliverByStartTimePolicy
		t := time.Now().Add(-o.Since)
		startTime = &t
	}
	// The stream as it is now: one deleted and made anew numbers from 1 again, which an
	// ordered consumer (resuming after the last sequence it saw) would wait for silently.
	var created time.Time
	if s, err := js.Stream(ctx, o.Stream); err == nil {
		created = s.CachedInfo().Created
		// A stream whose subjects are not its publishers' says nothing of who sent what.
		if err := checkStreamSubjects(s.CachedInfo().Config); err != nil {
			return fmt.Errorf("%w; not reading it", err)
		}
	}
	var cons jetstream.Consumer
	var err error
	// filters are the consumer's subject filters: o's two, or, on a server before 2.10
	// (Debian 12's 2.9 has no multiple filters), one that covers them (every kind of the
	// host's records), the other kinds being skipped here (wanted).
	filters, wanted := o.FilterSubjects(), map[string]bool(nil)
	create := func() {
		if o.Durable != "" {
			cons, err = js.Consumer(ctx, o.Stream, o.Durable)
			if errors.Is(err, jetstream.ErrConsumerNotFound) {
				cons, err = js.CreateConsumer(ctx, o.Stream, jetstream.ConsumerConfig{
					Durable: o.Durable, Description: "fsnotifyd fleet tail",
					FilterSubjects: filters, DeliverPolicy: deliver, OptStartSeq: o.StartSeq,
					OptStartTime: startTime, AckPolicy: jetstream.AckExplicitPolicy, AckWait: 30 * time.Second,
					MaxAckPending: 10000,
				})
			}
		} else {
			cons, err = js.OrderedConsumer(ctx, o.Stream, jetstream.OrderedConsumerConfig{
				FilterSubjects: filters, DeliverPolicy: deliver, OptStartSeq: o.StartSeq, OptStartTime: startTime,
			})
		}
	}
	create()
	if errors.Is(err, jetstream.ErrConsumerMultipleFilterSubjectsNotSupported) {
		tok := "*"
		if o.HostToken != "" {
			tok = o.HostToken
		}
		wanted = map[string]bool{}
		for _, f := range filters {
			wanted[strings.Split(f, ".")[1]] = true // the kind's word: fsnotifyd.<kind>.<host>
		}
		filters = []string{SubjectRoot + ".*." + tok}
		create()
	}
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return fmt.Errorf("stream %s does not exist yet: no host has exported to this server (or use --stream)", o.Stream)
	}
	if err != nil {
		return explainJS("reading stream "+o.Stream, err)
	}
	// gone says why the stream read so far is gone, or "" (a failed check says nothing).
	gone := func() string {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		s, err := js.Stream(cctx, o.Stream)
		switch {
		case errors.Is(err, jetstream.ErrStreamNotFound):
			return fmt.Sprintf("stream %s was deleted while it was read", o.Stream)
		case err != nil || created.IsZero() || s.CachedInfo().Created.Equal(created):
			return ""
		}
		return fmt.Sprintf("stream %s was deleted and made anew (at %s) while it was read: its sequence numbers start again", o.Stream, s.CachedInfo().Created.UTC().Format(time.RFC3339))
	}
	readAgain := "; its records since then were not read here: run fleet tail again (--seq 1 for the new stream's first)"
	// last is the stream sequence of the last message read (0: none yet). A jump in stream
	// sequence is either what the filter skips (other hosts, other kinds) or what the stream
	// dropped (its limits, a purge) before this reader got there: the stream's first
	// sequence, asked after the jump, tells them apart. The stream drops from its front only,
	// so a first sequence at or below the jump's start, asked any time after, proves that
	// nothing was dropped there; jumps are asked about together, at most every missedCheck
	// (the first after a quiet time at once, before its record), and what lies below the
	// first sequence is said (Missed), never passed over as if the stream were continuous.
	var last uint64
	type jump struct{ after, next uint64 }
	var pending []jump
	var checked time.Time
	var stream jetstream.Stream
	fnFailed := false
	// report asks the stream about the pending jumps and hands fn the runs it dropped. A
	// failed request keeps them for the next time; a reader that cannot ask (no
	// $JS.API.STREAM.INFO permission: the request times out) asks again only after
	// missedBackoff, keeping the last maxPendingJumps jumps.
	var backoff time.Time
	report := func(c context.Context) error {
		if len(pending) == 0 || time.Now().Before(backoff) {
			if len(pending) > maxPendingJumps {
				pending = pending[len(pending)-maxPendingJumps:]
			}
			return nil
		}
		checked = time.Now()
		var err error
		if stream == nil {
			stream, err = js.Stream(c, o.Stream)
		}
		var info *jetstream.StreamInfo
		if err == nil {
			info, err = stream.Info(c)
		}
		if err != nil || info.State.FirstSeq == 0 {
			if c.Err() == nil {
				backoff = time.Now().Add(missedBackoff)
			}
			return nil
		}
		first := info.State.FirstSeq
		jumps := pending
		pending = nil
		for _, j := range jumps {
			if first <= j.after+1 {
				continue
			}
			hi := min(first, j.next) - 1
			if err := fn(&Received{StreamSeq: hi, Missed: &Missed{First: j.after + 1, Last: hi, Count: hi - j.after}}); err != nil && err != ErrStopTail {
				fnFailed = true
				return err
			}
		}
		return nil
	}
	var durableCfg *jetstream.ConsumerConfig // to write the position in (saved: when)
	var saved time.Time
	var savedSeq uint64
	if o.Durable != "" {
		last, durableCfg = durablePosition(ctx, cons)
		savedSeq = last
	}
	// savePosition writes last in the durable consumer's metadata: the server moves a
	// consumer's own position past what a purge removed (and its ack floor past what its
	// limits dropped), so only this says where the previous run stopped. The pending jumps
	// are asked about first: the next run starts after them.
	savePosition := func(c context.Context, now bool) error {
		if durableCfg == nil || last == savedSeq || (!now && time.Since(saved) < time.Second) {
			return nil
		}
		if err := report(c); err != nil {
			return err
		}
		cfg := *durableCfg
		cfg.Metadata = maps.Clone(cfg.Metadata)
		if cfg.Metadata == nil {
			cfg.Metadata = map[string]string{}
		}
		cfg.Metadata[tailPositionKey] = strconv.FormatUint(last, 10)
		uctx, cancel := context.WithTimeout(c, 5*time.Second)
		defer cancel()
		if _, err := js.UpdateConsumer(uctx, o.Stream, cfg); err == nil {
			savedSeq = last
		}
		saved = time.Now()
		return nil
	}
	// At the end (not after fn failed): the jumps not asked about yet, and the position.
	defer func() {
		if fnFailed {
			return
		}
		c, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if report(c) == nil {
			savePosition(c, true)
		}
	}()
	handle := func(m jetstream.Msg) (stop bool, err error) {
		meta, err := m.Metadata()
		if err != nil {
			return true, err
		}
		seq := meta.Sequence.Stream
		if last > 0 && seq > last+1 {
			pending = append(pending, jump{last, seq})
			last = seq - 1 // accounted for: read, or in pending
		}
		if len(pending) > 0 && (time.Since(checked) >= missedCheck || len(pending) >= maxPendingJumps) {
			if err := report(ctx); err != nil {
				return true, err
			}
		}
		defer func() {
			if err == nil && seq > last {
				last = seq
			}
		}()
		r := &Received{StreamSeq: meta.Sequence.Stream, Subject: m.Subject(), Data: m.Data(), MsgID: m.Headers().Get(jetstream.MsgIDHeader)}
		if o.Durable != "" {
			r.ack = m.Ack
		}
		if w := strings.Split(r.Subject, "."); wanted != nil && (len(w) != 3 || !wanted[w[1]]) {
			return false, r.Ack() // another kind than asked for (a server without multiple filters)
		}
		ferr := fn(r)
		if ferr != nil && ferr != ErrStopTail {
			fnFailed = true
			return true, ferr // not handled: last stays
		}
		if err := r.Ack(); err != nil && ctx.Err() == nil {
			return true, explainJS("acknowledging", err)
		}
		return ferr == ErrStopTail, nil
	}
	if o.Durable != "" {
		// Batches, so that what was fetched and not handled when the reader stops is handed
		// back at once (Nak) instead of after the ack wait: the next run resumes right there.
		for ctx.Err() == nil {
			batch, err := cons.Fetch(100, jetstream.FetchMaxWait(time.Second))
			if err != nil {
				if why := gone(); why != "" {
					return fmt.Errorf("%s; the consumer %s went with it%s", why, o.Durable, readAgain)
				}
				return explainJS("reading stream "+o.Stream, err)
			}
			var stopErr error
			stopped := false
			for m := range batch.Messages() {
				if stopped || ctx.Err() != nil {
					m.Nak()
					continue
				}
				if stopped, stopErr = handle(m); stopped && stopErr != nil {
					m.Nak()
				}
			}
			if stopped {
				return stopErr
			}
			if err := savePosition(ctx, false); err != nil {
				return err
			}
			if err := batch.Error(); err != nil && ctx.Err() == nil && !errors.Is(err, nats.ErrTimeout) && !errors.Is(err, context.DeadlineExceeded) {
				if why := gone(); why != "" {
					return fmt.Errorf("%s; the consumer %s went with it%s", why, o.Durable, readAgain)
				}
				return explainJS("reading stream "+o.Stream, err)
			}
		}
		return nil
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(1000))
	if err != nil {
		return explainJS("reading stream "+o.Stream, err)
	}
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	defer it.Stop()
	// The ordered consumer recovers from a deleted stream on its own, at the old sequence:
	// check the stream every tailCheck, and stop saying why when it is gone or made anew.
	var why atomic.Pointer[string]
	checkDone := make(chan struct{})
	defer close(checkDone)
	go func() {
		tick := time.NewTicker(tailCheck)
		defer tick.Stop()
		for {
			select {
			case <-checkDone:
				return
			case <-ctx.Done():
				return
			case <-tick.C:
				if w := gone(); w != "" {
					why.Store(&w)
					it.Stop()
					return
				}
			}
		}
	}()
	for {
		m, err := it.Next()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if w := why.Load(); w != nil {
				return errors.New(*w + readAgain)
			}
			return explainJS("reading stream "+o.Stream, err)
		}
		if stopped, err := handle(m); stopped {
			return err
		}
	}
}

// missedCheck is how often at most Tail asks the stream's first sequence about the jumps in
// stream sequence it read (one request each time); maxPendingJumps asks sooner.
const (
	missedCheck     = 100 * time.Millisecond
	maxPendingJumps = 4096
	missedBackoff   = 30 * time.Second
)

// tailPositionKey is the durable consumer's metadata key where Tail keeps the stream
// sequence of the last record it read.
const tailPositionKey = "fsnotifyd_tail_read_through"

// durablePosition is where the durable consumer's previous run stopped: the position Tail
// saved in its metadata, else (a server before 2.10 keeps no metadata, or a run that never
// saved) the lower of its ack floor and its last delivered, which the server moves past a
// purge (and the ack floor past what the limits dropped) but not past a message the limits
// dropped before it was delivered. It also returns the consumer's config, to save in.
func durablePosition(ctx context.Context, cons jetstream.Consumer) (uint64, *jetstream.ConsumerConfig) {
	info, err := cons.Info(ctx)
	if err != nil {
		return 0, nil
	}
	cfg := info.Config
	if v, ok := cfg.Metadata[tailPositionKey]; ok {
		if n, err := strconv.ParseUint(v, 10, 64); err == nil {
			return n, &cfg
		}
	}
	return min(info.AckFloor.Stream, info.Delivered.Stream), &cfg
}

// tailCheck is how often Tail without a durable consumer checks that its stream is the one
// it started reading.
const tailCheck = 2 * time.Second

// ErrStopTail, returned by Tail's fn, stops Tail after the record (which counts as handled).
var ErrStopTail = errors.New("stop tail")

// DedupeKey is what a record's seq counts in: its host and its spool (the key in its
// Nats-Msg-Id, <token>/<key>/<seq>). A resent copy has the same; a host whose spool started
// over (reinstalled, or the spool removed) numbers from 1 again under a new key, and its
// records are new ones, not second copies of the old spool's.
//
// The host is written as its token, which holds no '/': the key up to its first '/' is the
// host's own, whatever key the host (which chooses its Msg-Id) writes, so that host "a" with
// spool key "b/c" is not host "a/b" with key "c".
func DedupeKey(host, msgID string) string {
	key := ""
	if i, j := strings.IndexByte(msgID, '/'), strings.LastIndexByte(msgID, '/'); i >= 0 && j > i {
		key = msgID[i+1 : j]
	}
	token, err := HostToken(host)
	if err != nil {
		token = "" // no host: a key of its own, which no host's token is
	}
	return token + "/" + key
}

// Deduper drops the second copy of a record (same DedupeKey, same seq): the server drops a
// resent record only within the stream's duplicate window. It remembers, per key, the seqs
// within Window below the highest one seen.
//
// It keeps at most maxDedupeKeysPerHost keys per host (the part of a key before its first
// '/'), forgetting the oldest: a host chooses its records' keys, and each key costs a window's
// bitmap (8 KiB at the default), so a host that gave each record a new key would otherwise make
// a long-running reader grow without bound. A host whose spool restarts has one new key; its
// forgotten keys' resent copies, if any, are shown twice, never dropped.
type Deduper struct {
	Window uint64 // default 1<<16
	hosts  map[string]*seen
	keys   map[string][]string // per host, its keys in hosts, oldest first
}

// maxDedupeKeysPerHost bounds the keys a Deduper keeps per host.
const maxDedupeKeysPerHost = 8

type seen struct {
	high uint64
	bits []uint64 // bit (seq % window) for seqs in (high-window, high]
}

// Seen reports whether (key, seq) was seen before, and records it; key is DedupeKey's (or a
// host name). A seq older than the window below the key's highest counts as seen (it is far
// older than any resend).
func (d *Deduper) Seen(host string, seq uint64) bool {
	if d.Window == 0 {
		d.Window = 1 << 16
	}
	if d.hosts == nil {
		d.hosts = map[string]*seen{}
	}
	s := d.hosts[host]
	if s == nil {
		s = &seen{bits: make([]uint64, d.Window/64)}
		d.hosts[host] = s
		if d.keys == nil {
			d.keys = map[string][]string{}
		}
		owner, _, _ := strings.Cut(host, "/")
		list := d.keys[owner]
		if len(list) >= maxDedupeKeysPerHost {
			delete(d.hosts, list[0])
			list = append(list[:0], list[1:]...)
		}
		d.keys[owner] = append(list, host)
	}
	w := d.Window
	bit := func(q uint64) (int, uint64) { i := q % w; return int(i / 64), 1 << (i % 64) }
	switch {
	case seq > s.high:
		if seq-s.high >= w {
			clear(s.bits)
		} else {
			for q := s.high + 1; q <= seq; q++ { // clear the slots of seqs now out of the window
				i, m := bit(q)
				s.bits[i] &^= m
			}
		}
		s.high = seq
	case s.high-seq >= w:
		return true
	}
	i, m := bit(seq)
	if s.bits[i]&m != 0 {
		return true
	}
	s.bits[i] |= m
	return false
}
