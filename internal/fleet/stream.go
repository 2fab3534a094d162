package fleet

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// StreamConfig is the JetStream stream the records go to. The exporter creates it when it is
// missing (an operator may create it beforehand instead, with these subjects).
type StreamConfig struct {
	// Name is the stream's name (default FSNOTIFYD).
	Name string
	// MaxAge drops records older than this (default 7 days; negative: keep forever).
	MaxAge time.Duration
	// MaxBytes bounds the stream's size; the oldest records go first (default 1 GiB;
	// negative: no limit but the server's).
	MaxBytes int64
	// Duplicates is the window in which the server drops a record whose Nats-Msg-Id
	// (host/seq) it already has (default 2 minutes, as NATS). A record resent after a longer
	// outage can be stored twice; readers drop the second copy by (host, spool, seq) (DedupeKey). The server keeps
	// one entry per record in the window, so a longer window costs server memory.
	Duplicates time.Duration
	// Replicas is the number of copies in a clustered JetStream (default 1).
	Replicas int
}

// DefaultStream is the default stream name.
const DefaultStream = "FSNOTIFYD"

// StreamSubjects are the subjects of the fleet stream.
var StreamSubjects = []string{SubjectRoot + ".events.*", SubjectRoot + ".decisions.*", SubjectRoot + ".gaps.*"}

func (c StreamConfig) withDefaults() StreamConfig {
	if c.Name == "" {
		c.Name = DefaultStream
	}
	if c.MaxAge == 0 {
		c.MaxAge = 7 * 24 * time.Hour
	}
	if c.MaxBytes == 0 {
		c.MaxBytes = 1 << 30
	}
	if c.Duplicates == 0 {
		c.Duplicates = 2 * time.Minute
	}
	if c.Replicas == 0 {
		c.Replicas = 1
	}
	return c
}

func (c StreamConfig) jetstream() jetstream.StreamConfig {
	c = c.withDefaults()
	sc := jetstream.StreamConfig{
		Name:        c.Name,
		Description: "fsnotifyd fleet: file events, guard decisions and gaps of every host (docs/fleet.md)",
		Subjects:    StreamSubjects,
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		Storage:     jetstream.FileStorage,
		Duplicates:  c.Duplicates,
		Replicas:    c.Replicas,
		MaxBytes:    -1,
		MaxAge:      0,
	}
	if c.MaxBytes > 0 {
		sc.MaxBytes = c.MaxBytes
	}
	if c.MaxAge > 0 {
		sc.MaxAge = c.MaxAge
	}
	return sc
}

// EnsureStream creates the stream when it is missing (the admin's fleet init; an exporter
// whose user may). An existing stream is left as it is (an operator may have tuned it), but
// one that does not take the fleet subjects, or that CheckStream refuses, is an error.
func EnsureStream(ctx context.Context, js jetstream.JetStream, c StreamConfig) error {
	sc := c.jetstream()
	s, err := js.Stream(ctx, sc.Name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		_, err = js.CreateStream(ctx, sc)
		if err != nil && !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			// A host may not, with the documented permissions: the admin makes it.
			return explainJS(fmt.Sprintf("stream %s does not exist, and creating it failed (create it as the admin: fsnotifyd fleet init)", sc.Name), err)
		}
		if err == nil {
			return nil
		}
		// Another host was quicker: check what it made.
		s, err = js.Stream(ctx, sc.Name)
	}
	if err != nil {
		return explainJS("looking up stream "+sc.Name, err)
	}
	if err := CheckStream(s.CachedInfo().Config); err != nil {
		// The records wait in the spool until it is made right.
		return fmt.Errorf("%w; not exporting into it until it is made right", err)
	}
	have := s.CachedInfo().Config.Subjects
	for _, want := range StreamSubjects {
		if !slices.Contains(have, want) && !slices.Contains(have, SubjectRoot+".>") && !slices.Contains(have, SubjectRoot+".*.*") {
			return fmt.Errorf("stream %s exists but does not take %s (its subjects: %v): add it, or use another stream name", sc.Name, want, have)
		}
	}
	return nil
}

// CheckStream refuses a fleet stream whose settings let one host's message count as another
// host's, or as the fleet's policy, or erase others' records — whoever created it (a host
// allowed $JS.API.STREAM.CREATE may, first): the server itself applies them, whatever the
// publisher's permissions.
//   - allow_rollup_hdrs: one message of a host's own with Nats-Rollup: all erases every
//     host's records.
//   - subject_transform, sources, mirror, allow_msg_schedules: stored subjects that are not
//     their publishers' (a host's record stored on fsnotifyd.events.web-2, another stream's
//     messages copied there, a host's scheduled message published there by the server).
//   - republish: the server publishes each stored message again on a subject the stream
//     names, which may be the policy key's ($KV.fsnotifyd-policy.default), where the bucket
//     stores it as a revision every host applies.
func CheckStream(c jetstream.StreamConfig) error {
	fix := "create the stream as the admin (fsnotifyd fleet init) and keep $JS.API.STREAM.CREATE from the hosts (docs/fleet.md, \"Security\")"
	switch {
	case c.AllowRollup:
		return fmt.Errorf("stream %s allows rollups (allow_rollup_hdrs): any host could erase every host's records with one message (nats stream edit %s --no-allow-rollup)", c.Name, c.Name)
	case c.RePublish != nil:
		return fmt.Errorf("stream %s republishes its messages (on %q): a host's record would be published again where it may not publish, the policy key included; %s", c.Name, c.RePublish.Destination, fix)
	}
	return checkStreamSubjects(c)
}

// checkStreamSubjects is CheckStream's part that matters to a reader: a stream whose stored
// subjects may not be their publishers' says nothing of who sent a record.
func checkStreamSubjects(c jetstream.StreamConfig) error {
	// Message schedules: a host's message on its own subject names a target subject of the
	// stream (Nats-Schedule-Target), and the server publishes it there.
	if c.SubjectTransform != nil || len(c.Sources) > 0 || c.Mirror != nil || c.AllowMsgSchedules {
		return fmt.Errorf("stream %s relabels subjects (a subject transform, sources, a mirror or message schedules): a host's record, or another stream's message, could be stored as another host's; create the stream as the admin (fsnotifyd fleet init) and keep $JS.API.STREAM.CREATE from the hosts (docs/fleet.md, \"Security\")", c.Name)
	}
	return nil
}
