//go:build linux

package main

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fsnotifyd/fsnotifyd/internal/fleet"
)

// FuzzParseDuration: a duration flag's value is refused (with the accepted forms) or read
// as what it says: never negative, 0 only for a zero, what time.ParseDuration reads for a Go
// duration, whole seconds for digits; and the flag's String parses back into the value.
func FuzzParseDuration(f *testing.F) {
	for _, s := range []string{"0", "5", "0.5", ".25", "1e3", "300ms", "1h30m", "1h30", "2,5", "-0", "-1",
		"1e-10", "0.5ns", "1e-400", "1e400", "inf", "nan", "0x1p4", "+5s", "9223372036", "9223372037",
		"2562047h47m16.854775807s", "1_000", "5µs", "0e5", "00000", "0.0000000001s", "1.5ns"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := parseDuration(s)
		if err != nil {
			if v != 0 || !strings.Contains(err.Error(), durationForms) {
				t.Fatalf("parseDuration(%q) = %v, %v", s, v, err)
			}
			return
		}
		if v < 0 {
			t.Fatalf("parseDuration(%q) = %v: negative", s, v)
		}
		mantissa := s
		if i := strings.IndexAny(s, "eE"); i >= 0 {
			mantissa = s[:i]
		}
		if (v == 0) != !strings.ContainsAny(mantissa, "123456789") {
			t.Fatalf("parseDuration(%q) = %v", s, v)
		}
		if d, err := time.ParseDuration(s); err == nil && d != v {
			t.Fatalf("parseDuration(%q) = %v; time.ParseDuration reads %v", s, v, d)
		}
		if n, err := strconv.ParseUint(s, 10, 63); err == nil && time.Duration(n)*time.Second/time.Second == time.Duration(n) && v != time.Duration(n)*time.Second {
			t.Fatalf("parseDuration(%q) = %v, want %d s", s, v, n)
		}
		d := durationValue(v)
		if back, err := parseDuration(d.String()); err != nil || back != v {
			t.Fatalf("parseDuration(%q) = %v; its String %q gives %v, %v", s, v, d.String(), back, err)
		}
	})
}

// FuzzPidList: trace --pid takes a comma list of positive process ids that fit a pid; any
// other entry is an error, not a wrong pid (a truncated or negative one).
func FuzzPidList(f *testing.F) {
	for _, s := range []string{"1", "1,2, 3", "0", "-1", "4294967297", "2147483648", "1,", ",", "", " 7 ", "+5", "0x10", "1e3"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p := pidList{}
		if err := p.Set(s); err != nil {
			return
		}
		parts := strings.Split(s, ",")
		for _, part := range parts {
			n, err := strconv.ParseInt(strings.TrimSpace(part), 10, 32)
			if err != nil || n <= 0 || !p[int32(n)] {
				t.Fatalf("pidList.Set(%q) = %v: took %q", s, map[int32]bool(p), part)
			}
		}
		if len(p) > len(parts) {
			t.Fatalf("pidList.Set(%q) = %v: more pids than entries", s, map[int32]bool(p))
		}
	})
}

// FuzzTailLine: a record from another host (which writes what it likes in it) prints as one
// line: with --json one JSON object, the record's own with stream_seq added; else a line with
// no control character. A record that CheckHeader refuses is never printed.
func FuzzTailLine(f *testing.F) {
	for _, s := range []string{
		`{"host":"web-1","boot_id":"b","seq":5,"kind":"event","path":"/x","mask":"OPEN","pid":1,"comm":"c"}`,
		"{\"host\":\"web-1\",\"seq\":1,\"kind\":\"event\",\"a\":\n{\"host\":\"web-2\",\"seq\":7,\"kind\":\"event\",\"path\":\"/etc/shadow\"}}",
		"{\"host\":\"web-1\",\n\"seq\":1,\"kind\":\"decision\",\"comm\":\"x\\n\\u001b[2J\",\"path\":\"/a\\nb\",\"verdict\":\"deny\"}",
		`{"host":"web-1","seq":1,"kind":"gap","reason":"x\u001b","first":1,"last":2,"count":2,"detail":"\n"}`,
		"{\"host\":\"web-1\",\"seq\":1,\"kind\":\"event\"} ",
		`{"host":"web-1","seq":1,"kind":"event","stream_seq":1}`,
	} {
		f.Add(s, true)
		f.Add(s, false)
	}
	f.Fuzz(func(t *testing.T, data string, jsonOut bool) {
		r := &fleet.Received{StreamSeq: 42, Subject: "fsnotifyd.events.web-1", Data: []byte(data)}
		h, err := fleet.CheckHeader(r.Subject, r.Data)
		if err != nil {
			return
		}
		line, ok := tailLine(nil, r, &h, jsonOut, nil)
		if !ok {
			return
		}
		if i := strings.IndexByte(string(line), '\n'); i != len(line)-1 {
			t.Fatalf("record %q (json %v) printed as more than one line: %q", data, jsonOut, line)
		}
		if jsonOut {
			var obj map[string]any
			if err := json.Unmarshal(line, &obj); err != nil || obj["stream_seq"] != float64(42) {
				t.Fatalf("record %q printed as %q: %v, stream_seq %v", data, line, err, obj["stream_seq"])
			}
			return
		}
		for _, c := range line[:len(line)-1] {
			if c < 0x20 || c == 0x7f {
				t.Fatalf("record %q printed with control character %q: %q", data, c, line)
			}
		}
	})
}
