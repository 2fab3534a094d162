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

// EnsureStream creates the stream when it is missing. An existing stream is left as it is
// (an operator may have tuned it), but one that does not take the fleet subjects, or that
// allows rollups (one host's message could erase every host's records), is an error.
func EnsureStream(ctx context.Context, js jetstream.JetStream, c StreamConfig) error {
	sc := c.jetstream()
	s, err := js.Stream(ctx, sc.Name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		_, err = js.CreateStream(ctx, sc)
		if !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			return explainJS("creating stream "+sc.Name, err)
		}
		// Another host was quicker: check what it made.
		s, err = js.Stream(ctx, sc.Name)
	}
	if err != nil {
		return explainJS("looking up stream "+sc.Name, err)
	}
	if s.CachedInfo().Config.AllowRollup {
		// Whoever created it (a host may, with the example permissions) let any publisher
		// erase every host's records with one message of its own (Nats-Rollup: all). The
		// records wait in the spool until it is made right.
		return fmt.Errorf("stream %s allows rollups (allow_rollup_hdrs): any host could erase every host's records with one message; not exporting into it until it does not (nats stream edit %s --no-allow-rollup; docs/fleet.md, \"Security\")", sc.Name, sc.Name)
	}
	have := s.CachedInfo().Config.Subjects
	for _, want := range StreamSubjects {
		if !slices.Contains(have, want) && !slices.Contains(have, SubjectRoot+".>") && !slices.Contains(have, SubjectRoot+".*.*") {
			return fmt.Errorf("stream %s exists but does not take %s (its subjects: %v): add it, or use another stream name", sc.Name, want, have)
		}
	}
	return nil
}
