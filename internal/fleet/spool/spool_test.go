package spool

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

func open(t *testing.T, dir string) (*Spool, Recovery) {
	t.Helper()
	s, rec, err := Open(Options{Dir: dir, MaxBytes: 1 << 20, SegmentBytes: 4096})
	if err != nil {
		t.Fatal(err)
	}
	return s, rec
}

// writeN writes records first..last, one batch each, rotating like the exporter.
func writeN(t *testing.T, s *Spool, first, last uint64) {
	t.Helper()
	for seq := first; seq <= last; seq++ {
		f := AppendFrame(nil, seq, 'e', fmt.Appendf(nil, `{"seq":%d}`, seq))
		if s.NeedRotate(0, int64(len(f))) {
			if err := s.Rotate(seq); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Write(f, seq); err != nil {
			t.Fatal(err)
		}
	}
}

func readAll(t *testing.T, s *Spool, from uint64) []uint64 {
	t.Helper()
	r := s.NewReader(from)
	defer r.Close()
	var out []uint64
	for {
		f, ok, err := r.Next()
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			return out
		}
		if want := fmt.Sprintf(`{"seq":%d}`, f.Seq); string(f.Data) != want || f.Kind != 'e' {
			t.Fatalf("frame %d: %q kind %c", f.Seq, f.Data, f.Kind)
		}
		out = append(out, f.Seq)
	}
}

func TestWriteReadAckRotate(t *testing.T) {
	dir := t.TempDir()
	s, _ := open(t, dir)
	writeN(t, s, 1, 500)
	got := readAll(t, s, 1)
	if len(got) != 500 || got[0] != 1 || got[499] != 500 {
		t.Fatalf("read %d frames", len(got))
	}
	if len(readAll(t, s, 251)) != 250 {
		t.Error("reader from 251")
	}
	segs := func() int { m, _ := filepath.Glob(filepath.Join(dir, "*.seg")); return len(m) }
	before := segs()
	if before < 3 {
		t.Fatalf("only %d segments for 500 frames of 4 KiB segments", before)
	}
	s.Ack(500)
	if segs() != 1 {
		t.Errorf("after acking everything %d segments remain, want the active one", segs())
	}
	s.Close()
	// The active segment survives: the last seq is known after a restart.
	s, rec := open(t, dir)
	defer s.Close()
	if rec.LastSeq != 500 || rec.Truncated != 0 {
		t.Errorf("recovery %+v", rec)
	}
}

// A torn tail (a power loss in the middle of a write, or garbage after it) is cut at the last
// whole frame, never parsed, and the spool goes on from there.
func TestTornTailIsTruncated(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(b []byte) []byte
		last uint64
	}{
		{"cut inside the last frame", func(b []byte) []byte { return b[:len(b)-3] }, 19},
		{"cut inside the last header", func(b []byte) []byte { return b[:len(b)-frameLen(20)+4] }, 19},
		{"garbage appended", func(b []byte) []byte { return append(b, "\x10\x00\x00\x00garbage-garbage"...) }, 20},
		{"zeros appended (a preallocated tail)", func(b []byte) []byte { return append(b, make([]byte, 100)...) }, 20},
		{"a bit flipped in the last frame", func(b []byte) []byte { b[len(b)-2] ^= 1; return b }, 19},
		{"a bit flipped in frame 10", func(b []byte) []byte { b[9*frameLen(1)+HeaderSize+BodyFixed] ^= 1; return b }, 9},
		{"a frame repeated", func(b []byte) []byte { return append(b, b[len(b)-frameLen(20):]...) }, 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s, _ := open(t, dir)
			writeN(t, s, 1, 20)
			s.Close()
			p := filepath.Join(dir, segName(1))
			b, _ := os.ReadFile(p)
			os.WriteFile(p, tc.mod(b), 0o600)
			s, rec := open(t, dir)
			if rec.LastSeq != tc.last {
				t.Fatalf("recovered last seq %d, want %d (%+v)", rec.LastSeq, tc.last, rec)
			}
			want := int64(0)
			for q := uint64(1); q <= tc.last; q++ {
				want += int64(frameLen(q))
			}
			if st, _ := os.Stat(p); st.Size() != want {
				t.Errorf("file is %d bytes, want %d", st.Size(), want)
			}
			writeN(t, s, tc.last+1, tc.last+5) // appends after the cut
			got := readAll(t, s, 1)
			if uint64(len(got)) != tc.last+5 {
				t.Errorf("read %v", got)
			}
			s.Close()
		})
	}
}

// frameLen is the frame size of the test records with seq's digits (1-9: one digit).
func frameLen(seq uint64) int { return int(FrameSize(len(fmt.Sprintf(`{"seq":%d}`, seq)))) }

// Damage in an older segment (synced at rotation, so only a disk fault) is reported as the
// range it makes unreadable, and reading goes on.
func TestDamagedOlderSegmentIsReported(t *testing.T) {
	dir := t.TempDir()
	s, _ := open(t, dir)
	writeN(t, s, 1, 400)
	s.Close()
	m, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	b, _ := os.ReadFile(m[0])
	b[len(b)/2] ^= 0xff
	os.WriteFile(m[0], b, 0o600)
	s, _ = open(t, dir)
	defer s.Close()
	r := s.NewReader(1)
	defer r.Close()
	var n int
	var bad *ErrCorrupt
	for {
		_, ok, err := r.Next()
		if errors.As(err, &bad) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		n++
	}
	if bad == nil || bad.First < 2 || bad.Last+1 != s.segs[1].first {
		t.Fatalf("corruption reported as %+v", bad)
	}
	if uint64(n)+bad.Last-bad.First+1 != 400 {
		t.Errorf("%d frames read + %d unreadable != 400", n, bad.Last-bad.First+1)
	}
}

func TestLockAndLimits(t *testing.T) {
	dir := t.TempDir()
	s, _ := open(t, dir)
	if _, _, err := Open(Options{Dir: dir, MaxBytes: 1, SegmentBytes: 1}); !errors.Is(err, ErrLocked) {
		t.Errorf("second Open: %v", err)
	}
	if !s.Fits(1<<20) || s.Fits(1<<20+1) {
		t.Error("Fits")
	}
	s.Close()
	os.WriteFile(filepath.Join(dir, "junk.seg"), nil, 0o600)
	if _, _, err := Open(Options{Dir: dir, MaxBytes: 1, SegmentBytes: 1}); err == nil {
		t.Error("a foreign .seg file accepted")
	}
}

func TestSeqState(t *testing.T) {
	s, _ := open(t, t.TempDir())
	defer s.Close()
	if st, err := s.ReadSeq(); err != nil || st.Reserved != 0 {
		t.Fatal(st, err)
	}
	want := Seq{Reserved: 99, Clean: true, Last: 42, BootID: "b\"x", Pending: &PendingGap{First: 3, Last: 4, Reason: "spool_full"}}
	if err := s.WriteSeq(want); err != nil {
		t.Fatal(err)
	}
	got, err := s.ReadSeq()
	if err != nil || got.Reserved != 99 || !got.Clean || got.Last != 42 || got.BootID != want.BootID || *got.Pending != *want.Pending {
		t.Errorf("%+v %v", got, err)
	}
	os.WriteFile(filepath.Join(s.dir, "seq"), []byte("{"), 0o600)
	if _, err := s.ReadSeq(); err == nil {
		t.Error("damaged seq file accepted")
	}
}

// FuzzDecode: whatever the bytes, decode never panics and never returns a frame whose
// checksum did not match (every accepted frame re-encodes to the same bytes).
func FuzzDecode(f *testing.F) {
	f.Add(AppendFrame(nil, 7, 'e', []byte(`{"a":1}`)))
	f.Add([]byte("\x09\x00\x00\x00\x00\x00\x00\x00garbage!!"))
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, n, err := decode(b)
		if err != nil {
			return
		}
		if got := AppendFrame(nil, fr.Seq, fr.Kind, fr.Data); string(got) != string(b[:n]) {
			t.Fatalf("decoded %+v from %x, re-encodes to %x", fr, b[:n], got)
		}
	})
}
