package format

import (
	"strings"
	"testing"
	"time"
)

var cest = time.FixedZone("CEST", 2*3600)

// The expected strings come from glibc's strftime (C locale) for the same instants.
const allVerbs = "%a|%A|%b|%B|%c|%C|%d|%D|%e|%F|%g|%G|%h|%H|%I|%j|%k|%l|%m|%M|%p|%P|%r|%R|%S|%T|%u|%U|%V|%w|%W|%x|%X|%y|%Y|%z|%Z"

func TestStrftimeAgainstGlibc(t *testing.T) {
	f, err := CompileTime(allVerbs)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		t    time.Time
		want string
	}{
		{time.Date(2024, 1, 7, 9, 5, 3, 123456000, cest), "Sun|Sunday|Jan|January|Sun Jan  7 09:05:03 2024|20|07|01/07/24| 7|2024-01-07|24|2024|Jan|09|09|007| 9| 9|01|05|AM|am|09:05:03 AM|09:05|03|09:05:03|7|01|01|0|01|01/07/24|09:05:03|24|2024|+0200|CEST"},
		{time.Date(2021, 1, 1, 0, 0, 0, 0, cest), "Fri|Friday|Jan|January|Fri Jan  1 00:00:00 2021|20|01|01/01/21| 1|2021-01-01|20|2020|Jan|00|12|001| 0|12|01|00|AM|am|12:00:00 AM|00:00|00|00:00:00|5|00|53|5|00|01/01/21|00:00:00|21|2021|+0200|CEST"},
		{time.Date(2020, 12, 31, 23, 59, 59, 999999000, cest), "Thu|Thursday|Dec|December|Thu Dec 31 23:59:59 2020|20|31|12/31/20|31|2020-12-31|20|2020|Dec|23|11|366|23|11|12|59|PM|pm|11:59:59 PM|23:59|59|23:59:59|4|52|53|4|52|12/31/20|23:59:59|20|2020|+0200|CEST"},
		{time.Date(2024, 12, 30, 13, 7, 9, 0, cest), "Mon|Monday|Dec|December|Mon Dec 30 13:07:09 2024|20|30|12/30/24|30|2024-12-30|25|2025|Dec|13|01|365|13| 1|12|07|PM|pm|01:07:09 PM|13:07|09|13:07:09|1|52|01|1|53|12/30/24|13:07:09|24|2024|+0200|CEST"},
		{time.Date(2005, 1, 2, 12, 0, 0, 0, cest), "Sun|Sunday|Jan|January|Sun Jan  2 12:00:00 2005|20|02|01/02/05| 2|2005-01-02|04|2004|Jan|12|12|002|12|12|01|00|PM|pm|12:00:00 PM|12:00|00|12:00:00|7|01|53|0|00|01/02/05|12:00:00|05|2005|+0200|CEST"},
	} {
		if got := f.Format(tt.t); got != tt.want {
			t.Errorf("%v:\n got %s\nwant %s", tt.t, got, tt.want)
		}
	}
}

func TestStrftime(t *testing.T) {
	tm := time.Date(2024, 1, 7, 9, 5, 3, 123456789, cest)
	west := time.Date(2024, 1, 7, 9, 5, 3, 0, time.FixedZone("", -(3*3600+30*60)))
	tests := []struct {
		format string
		t      time.Time
		want   string
	}{
		{"%s", tm, "1704611103"},
		{"%N", tm, "123456789"},
		{"%3N", tm, "123"},
		{"%6N", tm, "123456"},
		{"%1N", tm, "1"},
		{"%9N", tm, "123456789"},
		{"%N", time.Date(2024, 1, 1, 0, 0, 0, 5, time.UTC), "000000005"},
		{"%T.%3N", time.Date(2024, 1, 1, 0, 0, 0, 7e6, time.UTC), "00:00:00.007"},
		{"%n%t%%", tm, "\n\t%"},
		{"100%% at %H", tm, "100% at 09"},
		{"plain text", tm, "plain text"},
		{"", tm, ""},
		{"%-d/%-m %-H:%-M", tm, "7/1 9:5"},
		{"%_d|%_H|%_j", tm, " 7| 9|  7"},
		{"%0e|%0k", tm, "07|09"},
		{"%-e|%-j", tm, "7|7"},
		{"%Ey %Od", tm, "24 07"},
		{"%z %Z", west, "-0330 "},
		{"%z", time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC), "+0000"},
		{"%Y|%G|%C|%y|%g", time.Date(999, 1, 1, 0, 0, 0, 0, time.UTC), "999|999|9|99|99"},
		{"%C%y", time.Date(1999, 1, 1, 0, 0, 0, 0, time.UTC), "1999"},
		{"%F %T", time.Date(2024, 1, 7, 9, 5, 3, 0, time.UTC), "2024-01-07 09:05:03"},
		{"é%H→", tm, "é09→"},
	}
	for _, tt := range tests {
		f, err := CompileTime(tt.format)
		if err != nil {
			t.Errorf("CompileTime(%q): %v", tt.format, err)
			continue
		}
		if got := f.Format(tt.t); got != tt.want {
			t.Errorf("%q: got %q, want %q", tt.format, got, tt.want)
		}
		if f.String() != tt.format {
			t.Errorf("String() = %q", f.String())
		}
	}
}

func TestStrftimeErrors(t *testing.T) {
	tests := []struct{ format, want string }{
		{"%", `time format "%" ends with a lone % (write %% for a literal %)`},
		{"%H:%", `time format "%H:%" ends with a lone %`},
		{"%Q", `time format "%Q": unknown directive "%Q" (see strftime(3); %% is a literal %)`},
		{"%H %i", `time format "%H %i": unknown directive "%i"`},
		{"%-a", `time format "%-a": directive "%-a": flags apply to numeric directives only`},
		{"%_T", `time format "%_T": directive "%_T": flags apply to numeric directives only`},
		{"%3d", `time format "%3d": directive "%3d": a width is supported only for %N (as in %3N)`},
		{"%-N", `time format "%-N": directive "%-N": %N takes a width (1-9), not a flag`},
		{"%-", `time format "%-": incomplete directive "%-" at the end`},
		{"%E", `time format "%E": incomplete directive "%E" at the end`},
		{"%0", `time format "%0": incomplete directive "%0" at the end`},
	}
	for _, tt := range tests {
		_, err := CompileTime(tt.format)
		if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
			t.Errorf("CompileTime(%q) = %v, want %s", tt.format, err, tt.want)
		}
	}
}

func TestStrftimeDoesNotAllocate(t *testing.T) {
	f, err := CompileTime(allVerbs + "|%s|%N|%3N|%-d")
	if err != nil {
		t.Fatal(err)
	}
	tm := time.Date(2024, 1, 7, 9, 5, 3, 123456789, cest)
	buf := make([]byte, 0, 512)
	if n := testing.AllocsPerRun(100, func() { buf = f.Append(buf[:0], tm) }); n != 0 {
		t.Fatalf("Append allocates %v times", n)
	}
}
