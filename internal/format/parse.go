package format

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/fsnotifyd/fsnotifyd/engine"
	"github.com/fsnotifyd/fsnotifyd/fsevent"
)

// ParseJSON reads back a JSON object written by JSON.Append (fields it does not know are
// ignored, so a fleet record, which adds its own, parses too): the inverse of JSON.Append.
// A KEY_raw byte array gives the field's bytes. An unknown event name is an error.
func ParseJSON(data []byte) (Record, error) {
	var v struct {
		Time    string   `json:"time"`
		Path    *string  `json:"path"`
		Events  []string `json:"events"`
		IsDir   bool     `json:"isdir"`
		Pid     int      `json:"pid"`
		Comm    *string  `json:"comm"`
		OldPath *string  `json:"old_path"`
		Raw     struct {
			Path    fsevent.Bytes `json:"path_raw"`
			Comm    fsevent.Bytes `json:"comm_raw"`
			OldPath fsevent.Bytes `json:"old_path_raw"`
		}
	}
	var r Record
	if err := json.Unmarshal(data, &v); err != nil {
		return r, err
	}
	if err := json.Unmarshal(data, &v.Raw); err != nil {
		return r, err
	}
	if v.Time != "" {
		t, err := time.Parse(time.RFC3339Nano, v.Time)
		if err != nil {
			return r, fmt.Errorf("time %q: %w", v.Time, err)
		}
		r.Time = t
	}
	str := func(s *string, raw fsevent.Bytes) string {
		if raw != nil || s == nil { // an audit line has "path":"" beside its path_raw
			return string(raw)
		}
		return *s
	}
	r.Path, r.Comm, r.OldPath = str(v.Path, v.Raw.Path), str(v.Comm, v.Raw.Comm), str(v.OldPath, v.Raw.OldPath)
	for _, name := range v.Events {
		m, ok := jsonMask(name)
		if !ok {
			return r, fmt.Errorf("unknown event %q", name)
		}
		r.Mask |= m
	}
	r.IsDir, r.Pid = v.IsDir, v.Pid
	return r, nil
}

// jsonMask is the bit of one name of JSON's "events" (a name, or 0x... for a bit without one).
func jsonMask(name string) (engine.Mask, bool) {
	// The kernel's names as JSON writes them: one event bit each, in upper case (never the
	// groups CLOSE and MOVE, nor the flags).
	if m, ok := fsevent.MaskByName(name); ok && m&(m-1) == 0 && m&fsevent.EventFlags == 0 && fsevent.Name(m) == name {
		return m, true
	}
	if h, ok := strings.CutPrefix(name, "0x"); ok {
		var v uint64
		if _, err := fmt.Sscanf(h, "%x", &v); err == nil && v != 0 && v&(v-1) == 0 {
			return engine.Mask(v), true
		}
	}
	return 0, false
}
