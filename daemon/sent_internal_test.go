//go:build linux

package daemon

import (
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/fsnotifyd/fsnotifyd/engine"
	"github.com/fsnotifyd/fsnotifyd/internal/proto"
	"github.com/fsnotifyd/fsnotifyd/internal/sys"
	"github.com/fsnotifyd/fsnotifyd/internal/testenv"
)

// TestSentForgetsExpired: the send times kept for the verdict latency histogram do not pile
// up for a client that lets its events reach the deadline (it never answers them).
func TestSentForgetsExpired(t *testing.T) {
	testenv.RequireRoot(t)
	if testing.Short() {
		t.Skip("needs a few thousand expiring permission events")
	}
	scratch := testenv.Tmpfs(t)
	file := filepath.Join(scratch, "f")
	if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	s, sock := fanServer(t)

	const deadline = 10 * time.Millisecond
	conn, err := proto.Dial(sock)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.WriteMsg(&proto.Hello{Req: 1, MinVersion: proto.MinVersion, MaxVersion: proto.MaxVersion,
		Class: engine.ClassContent, Deadline: deadline})
	if _, err := conn.ReadMsg(); err != nil {
		t.Fatal(err)
	}
	fd, err := sys.Open(scratch, sys.O_PATH, 0)
	if err != nil {
		t.Fatal(err)
	}
	conn.WriteMsg(&proto.AddMark{Req: 2, Kind: engine.KindInode, Mask: engine.OpenPerm | engine.EventOnChild, Target: proto.NewFD(fd)})
	sys.Close(fd)
	var events int
	go func() { // read and never answer
		for {
			m, err := conn.ReadMsg()
			if err != nil {
				return
			}
			proto.CloseFDs(m)
		}
	}()
	// Processes other than this one (the daemon exempts itself) open the file in a loop;
	// each open waits for the deadline.
	var loads []*exec.Cmd
	for i := 0; i < 16; i++ {
		cmd := exec.Command("sh", "-c", `while :; do : < "$0"; done`, file)
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		loads = append(loads, cmd)
	}
	defer func() {
		for _, cmd := range loads {
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			cmd.Wait()
		}
	}()
	end := time.Now().Add(time.Minute)
	for time.Now().Before(end) {
		st := s.Stats(false, 0).Daemon
		events = int(st.DeadlineExpired)
		if events > 3000 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.mu.Lock()
	var kept int
	for _, c := range s.clients {
		kept = c.sent.Len()
	}
	s.mu.Unlock()
	t.Logf("%d events past their deadline; %d send times kept", events, kept)
	if events <= 3000 {
		t.Fatalf("only %d deadline expiries in a minute", events)
	}
	if kept > 2048 {
		t.Errorf("%d send times kept for %d events that expired: they pile up", kept, events)
	}
}

// TestSockPeerGroups: the peer's groups come from the socket (SO_PEERGROUPS), as the kernel
// recorded them at connect time.
func TestSockPeerGroups(t *testing.T) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fds[0])
	defer syscall.Close(fds[1])
	got, err := sys.PeerGroups(fds[0])
	if err != nil {
		t.Fatalf("SO_PEERGROUPS: %v", err)
	}
	want, err := os.Getgroups()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("SO_PEERGROUPS: %v, want %v", got, want)
	}
	for i := range got {
		if int(got[i]) != want[i] {
			t.Fatalf("SO_PEERGROUPS: %v, want %v", got, want)
		}
	}
}
