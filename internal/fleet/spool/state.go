package spool

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// lockDir takes an exclusive flock(2) on DIR/LOCK, so two exporters never share a spool.
func lockDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, "LOCK"), os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("spool %s: %w (is another fsnotifyd exporting with the same --spool?)", dir, ErrLocked)
		}
		return nil, fmt.Errorf("spool %s: lock: %w", dir, err)
	}
	return f, nil
}

func syncFile(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("spool: sync %s: %w", path, err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("spool: sync %s: %w", dir, err)
	}
	return nil
}

// writeFileAtomic replaces dir/name with data: a temporary file, fsync when durable, rename,
// and an fsync of the directory when durable.
func writeFileAtomic(dir, name string, data []byte, durable bool) error {
	tmp := filepath.Join(dir, name+".tmp")
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	_, err = f.Write(data)
	if err == nil && durable {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, name))
	}
	if err == nil && durable {
		err = syncDir(dir)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("spool: writing %s: %w", name, err)
	}
	return nil
}

// ReadSeq reads the sequence state; a spool without one has the zero state.
func (s *Spool) ReadSeq() (Seq, error) {
	var st Seq
	b, err := os.ReadFile(filepath.Join(s.dir, "seq"))
	if errors.Is(err, fs.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return st, fmt.Errorf("spool: %w", err)
	}
	if err := json.Unmarshal(b, &st); err != nil {
		// Written with fsync and rename: a damaged file is not ours to guess about.
		return st, fmt.Errorf("spool: %s/seq is damaged (%v): remove the spool directory to start over (seq numbers then restart at 1)", s.dir, err)
	}
	return st, nil
}

// WriteSeq writes the sequence state durably (fsync of the file and the directory) before it
// returns (writer only).
func (s *Spool) WriteSeq(st Seq) error {
	return writeFileAtomic(s.dir, "seq", st.marshal(), true)
}

// ReadAcked returns the last "acknowledged through" hint (0 if none or unreadable).
func (s *Spool) ReadAcked() uint64 {
	b, err := os.ReadFile(filepath.Join(s.dir, "acked"))
	if err != nil {
		return 0
	}
	v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0
	}
	return v
}

// WriteAcked records the "acknowledged through" hint, without fsync: it only saves resending
// (deduplicated) records after a restart, so losing it costs nothing but time.
func (s *Spool) WriteAcked(seq uint64) error {
	return writeFileAtomic(s.dir, "acked", strconv.AppendUint(nil, seq, 10), false)
}
