//go:build linux

package procfs

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// kernelComm is comm as the kernel keeps it: at most TASK_COMM_LEN-1 (15) bytes, no NUL.
func kernelComm(comm string) string {
	if i := strings.IndexByte(comm, 0); i >= 0 {
		comm = comm[:i]
	}
	if len(comm) > 15 {
		comm = comm[:15]
	}
	return comm
}

// FuzzParseStat: a process chooses its own comm, and /proc/PID/stat prints it unescaped; no
// comm shifts the fields after it (ppid, session, flags), and no input panics or gives fewer
// than seven fields or a field holding ')'.
func FuzzParseStat(f *testing.F) {
	for _, comm := range []string{
		"bash", "x) R 1 1 1", "x) S 0 0 0 0 0", "a)\nR 1 1 1 1 1", ")", "))", "(", "((x)", " ",
		"", "x)\n", "x) R 1 1 1 1 1 9", "\\", "x\x00) R 0",
	} {
		f.Add(comm, int32(4242), int32(4000), uint32(0x400100), []byte("1 (init) S 0 1 1 0 -1 4194560 "+comm))
	}
	f.Add("kworker/0:1", int32(2), int32(0), uint32(0x04208060), []byte("2 (kthreadd) S 0 0 0 0 -1 2129984 0 0"))
	f.Add("x", int32(-1), int32(0), uint32(0), []byte("1 (x) R\n"))
	f.Fuzz(func(t *testing.T, comm string, ppid, sid int32, flags uint32, raw []byte) {
		comm = kernelComm(comm)
		// fs/proc/array.c do_task_stat: "%d (%s) %c %d %d %d %d %d %u %lu ..."
		line := fmt.Sprintf("%d (%s) S %d %d %d 34816 %d %d 1234 0 5678 0 2 3 0 0 20 0 1 0 99 12345 678 18446744073709551615\n",
			77, comm, ppid, 77, sid, -1, flags)
		f, err := parseStat([]byte(line))
		if err != nil {
			t.Fatalf("parseStat(%q): %v", line, err)
		}
		if f[1] != strconv.Itoa(int(ppid)) || f[3] != strconv.Itoa(int(sid)) || f[6] != strconv.FormatUint(uint64(flags), 10) {
			t.Fatalf("comm %q shifted the fields: ppid %q session %q flags %q; want %d %d %d", comm, f[1], f[3], f[6], ppid, sid, flags)
		}
		f, err = parseStat(raw)
		if err != nil {
			return
		}
		if len(f) < 7 || slices.ContainsFunc(f, func(s string) bool { return strings.ContainsRune(s, ')') }) {
			t.Fatalf("parseStat(%q) = %q", raw, f)
		}
	})
}

// escapeStatusName escapes comm as /proc/PID/status's Name line does (proc_task_name with
// escape: seq_escape_str(ESCAPE_SPACE|ESCAPE_SPECIAL, "\n\\")): a newline and a backslash.
func escapeStatusName(comm string) string {
	return strings.NewReplacer("\\", `\\`, "\n", `\n`, "\t", `\t`, "\v", `\v`, "\f", `\f`, "\r", `\r`, "\a", `\a`, "\x1b", `\e`, "\"", `\"`).Replace(comm)
}

// FuzzStatusIDs: a comm on the Name line never makes statusIDs read its own Uid:, Gid: or
// Groups: line, and no input panics; a line it reads gives back its numbers.
func FuzzStatusIDs(f *testing.F) {
	for _, comm := range []string{"bash", "x\nUid:\t0\t0\t0\t0", "\nGroups:\t0", "Uid:\t0", "\\nUid:\t0", "x\\"} {
		f.Add(comm, uint32(1000), uint32(65534), "4 24 27", []byte("Uid:\t1\t2\t3\t4\n"), "Uid:")
	}
	f.Add("x", uint32(0), uint32(0), "", []byte("Groups:\t\n"), "Groups:")
	f.Add("x", uint32(0), uint32(0), "", []byte("Uid:\t4294967296\t0\t0\t0\n"), "Uid:")
	f.Fuzz(func(t *testing.T, comm string, ruid, euid uint32, groups string, raw []byte, key string) {
		comm = kernelComm(comm)
		var supp []uint32
		for _, g := range strings.Fields(groups) {
			if n, err := strconv.ParseUint(g, 10, 32); err == nil {
				supp = append(supp, uint32(n))
			}
		}
		var gs strings.Builder
		for _, g := range supp {
			fmt.Fprintf(&gs, "%d ", g)
		}
		status := fmt.Sprintf("Name:\t%s\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t7\nPid:\t7\nPPid:\t1\nTracerPid:\t0\n"+
			"Uid:\t%d\t%d\t%d\t%d\nGid:\t%d\t%d\t%d\t%d\nFDSize:\t64\nGroups:\t%s\nNStgid:\t7\n",
			escapeStatusName(comm), ruid, euid, euid, euid, ruid, ruid, ruid, ruid, gs.String())
		ids, ok := statusIDs([]byte(status), "Uid:")
		if !ok || !slices.Equal(ids, []uint32{ruid, euid, euid, euid}) {
			t.Fatalf("comm %q: Uid = %v, %v; want %d %d", comm, ids, ok, ruid, euid)
		}
		got, ok := statusIDs([]byte(status), "Groups:")
		if !ok || len(got) != len(supp) || (len(supp) > 0 && !slices.Equal(got, supp)) {
			t.Fatalf("comm %q: Groups = %v, %v; want %v", comm, got, ok, supp)
		}
		ids, ok = statusIDs(raw, key)
		if !ok {
			return
		}
		// Every id read is a number of a line starting with key.
		for _, line := range strings.Split(string(raw), "\n") {
			if rest, found := strings.CutPrefix(line, key); found {
				f := strings.Fields(rest)
				if len(f) != len(ids) {
					t.Fatalf("statusIDs(%q, %q) = %v: the line has %d fields", raw, key, ids, len(f))
				}
				for i, s := range f {
					if n, err := strconv.ParseUint(s, 10, 32); err != nil || uint32(n) != ids[i] {
						t.Fatalf("statusIDs(%q, %q) = %v: field %d is %q", raw, key, ids, i, s)
					}
				}
				return
			}
		}
		t.Fatalf("statusIDs(%q, %q) = %v with no such line", raw, key, ids)
	})
}
