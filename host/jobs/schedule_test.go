package jobs

import (
	"strings"
	"testing"
	"time"
)

func mustTime(t testing.TB, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestScheduleNext(t *testing.T) {
	for _, tc := range []struct {
		spec, from string
		want       []string // the next slots, in order
	}{
		{"@every 30s", "2025-03-01T10:00:07Z", []string{"2025-03-01T10:00:30Z", "2025-03-01T10:01:00Z"}},
		{"@every 30s", "2025-03-01T10:00:30Z", []string{"2025-03-01T10:01:00Z"}}, // strictly after
		{"@every 1h30m", "2025-03-01T00:10:00Z", []string{"2025-03-01T01:30:00Z", "2025-03-01T03:00:00Z"}},
		{"*/15 * * * *", "2025-03-01T10:07:59Z", []string{"2025-03-01T10:15:00Z", "2025-03-01T10:30:00Z", "2025-03-01T10:45:00Z", "2025-03-01T11:00:00Z"}},
		{"0 3 * * *", "2025-03-01T03:00:00Z", []string{"2025-03-02T03:00:00Z"}},
		{"30 2 1 * *", "2025-01-15T00:00:00Z", []string{"2025-02-01T02:30:00Z", "2025-03-01T02:30:00Z"}},
		{"0 0 29 2 *", "2025-01-01T00:00:00Z", []string{"2028-02-29T00:00:00Z"}},
		{"0 9 * * mon-fri", "2025-03-07T09:00:00Z", []string{"2025-03-10T09:00:00Z", "2025-03-11T09:00:00Z"}}, // Fri -> Mon
		{"0 0 * * 7", "2025-03-01T00:00:00Z", []string{"2025-03-02T00:00:00Z"}},                               // 7 is Sunday
		{"0 0 13 * 5", "2025-06-01T00:00:00Z", []string{"2025-06-06T00:00:00Z", "2025-06-13T00:00:00Z"}},      // dom OR dow
		{"0 0 */10 * *", "2025-01-30T00:00:00Z", []string{"2025-01-31T00:00:00Z", "2025-02-01T00:00:00Z"}},    // dom 1,11,21,31
		{"5,10-12/2 * * jan,JUL *", "2025-02-01T00:00:00Z", []string{"2025-07-01T00:05:00Z", "2025-07-01T00:10:00Z", "2025-07-01T00:12:00Z", "2025-07-01T01:05:00Z"}},
		{"@hourly", "2025-12-31T23:59:00Z", []string{"2026-01-01T00:00:00Z"}},
		{"@weekly", "2025-03-01T00:00:00Z", []string{"2025-03-02T00:00:00Z"}},
		{"@yearly", "2025-03-01T00:00:00Z", []string{"2026-01-01T00:00:00Z"}},
		{"TZ=Europe/Paris 30 2 * * *", "2025-03-29T12:00:00Z", []string{"2025-03-30T01:30:00Z", "2025-03-31T00:30:00Z"}},                      // 02:30 does not exist on 30 March: 03:30 CEST
		{"TZ=Europe/Paris 30 2 * * *", "2025-10-25T12:00:00Z", []string{"2025-10-26T00:30:00Z|2025-10-26T01:30:00Z", "2025-10-27T01:30:00Z"}}, // 02:30 happens twice on 26 October: once
	} {
		t.Run(tc.spec+" from "+tc.from, func(t *testing.T) {
			if strings.HasPrefix(tc.spec, "TZ=") {
				if _, err := time.LoadLocation("Europe/Paris"); err != nil {
					t.Skip("no zoneinfo on this machine")
				}
			}
			s, err := ParseSchedule(tc.spec)
			if err != nil {
				t.Fatal(err)
			}
			at := mustTime(t, tc.from)
			for i, w := range tc.want {
				at = s.Next(at)
				ok := false
				for _, alt := range strings.Split(w, "|") { // time.Date may pick either instant of a repeated wall time
					ok = ok || at.Equal(mustTime(t, alt))
				}
				if !ok {
					t.Fatalf("slot %d: got %v, want %v", i+1, at.UTC(), w)
				}
			}
		})
	}
}

func TestParseScheduleErrors(t *testing.T) {
	for _, spec := range []string{
		"", "@every", "@every 500ms", "@every -5s", "@every banana", "@fortnightly",
		"* * * *", "* * * * * *", "60 * * * *", "* 24 * * *", "* * 0 * *", "* * 32 * *",
		"* * * 13 *", "* * * * 8", "5-1 * * * *", "*/0 * * * *", "*/x * * * *", "1-2-3 * * * *",
		"0 0 30 2 *", "0 0 31 4,6,9,11 *", "a * * * *", ", * * * *", "TZ=No/Such_Zone 0 0 * * *",
		"TZ=UTC @every 5s",
	} {
		if _, err := ParseSchedule(spec); err == nil {
			t.Errorf("ParseSchedule(%q) succeeded", spec)
		}
	}
}

func TestEveryAlignsAcrossProcesses(t *testing.T) {
	// Two processes started at different times agree on the slots.
	s, err := ParseSchedule("@every 7s")
	if err != nil {
		t.Fatal(err)
	}
	a := s.Next(time.Unix(1001, 500))
	b := s.Next(time.Unix(1004, 0))
	if !a.Equal(b) || a.Unix()%7 != 0 {
		t.Fatalf("slots %v and %v, want the same multiple of 7s", a, b)
	}
}

func TestPeriod(t *testing.T) {
	for spec, want := range map[string]time.Duration{
		"@every 30s": 30 * time.Second, "*/5 * * * *": 5 * time.Minute, "@daily": 24 * time.Hour,
	} {
		s, err := ParseSchedule(spec)
		if err != nil {
			t.Fatal(err)
		}
		if got := Period(s, mustTime(t, "2025-03-01T10:00:01Z")); got != want {
			t.Errorf("Period(%q) = %v, want %v", spec, got, want)
		}
	}
}

func TestBackoff(t *testing.T) {
	lo, hi := time.Second, time.Minute
	for _, tc := range []struct {
		attempt  int
		min, max time.Duration
	}{
		{1, 500 * time.Millisecond, time.Second},
		{2, time.Second, 2 * time.Second},
		{4, 4 * time.Second, 8 * time.Second},
		{7, 30 * time.Second, time.Minute}, // 64s capped at 1m
		{100, 30 * time.Second, time.Minute},
		{0, 30 * time.Second, time.Minute}, // nonsense attempt: the cap
	} {
		for range 200 {
			if d := Backoff(tc.attempt, lo, hi); d < tc.min || d > tc.max {
				t.Fatalf("Backoff(%d) = %v, want within [%v, %v]", tc.attempt, d, tc.min, tc.max)
			}
		}
	}
}

// FuzzParseSchedule checks that no spec panics the parser and that every
// accepted schedule returns strictly increasing slots that match it.
func FuzzParseSchedule(f *testing.F) {
	for _, s := range []string{"@every 30s", "*/15 * * * *", "0 9 * * mon-fri", "5,10-12/2 * * jan,JUL *",
		"0 0 13 * 5", "@daily", "0 0 29 2 *", "TZ=UTC 0 0 * * *", "1-59/7 */5 1,15 */3 0-7"} {
		f.Add(s, int64(1740823207))
	}
	f.Fuzz(func(t *testing.T, spec string, from int64) {
		s, err := ParseSchedule(spec)
		if err != nil {
			return
		}
		at := time.Unix(from%(1<<34), 0) // within a few centuries
		for range 5 {
			next := s.Next(at)
			if next.IsZero() {
				return
			}
			if !next.After(at) {
				t.Fatalf("%q: Next(%v) = %v, not after", spec, at, next)
			}
			if c, ok := s.(*cron); ok {
				l := next.In(c.loc)
				// A slot moved by a daylight-saving gap may not match its
				// hour; in UTC every slot must match.
				if c.loc == time.UTC && (l.Second() != 0 || !has(c.minute, l.Minute()) || !has(c.hour, l.Hour()) ||
					!has(c.month, int(l.Month())) || !c.dayMatches(l)) {
					t.Fatalf("%q: slot %v does not match the spec", spec, l)
				}
			}
			at = next
		}
	})
}

// TestFirstSlot: a schedule installed at now starts at its latest slot of
// the last minute (a restart across a slot does not lose it), else at its
// next slot.
func TestFirstSlot(t *testing.T) {
	at := func(h, m, s int) time.Time { return time.Date(2026, 12, 7, h, m, s, 0, time.UTC) }
	for _, c := range []struct {
		spec      string
		now, want time.Time
	}{
		{"@every 10s", at(10, 0, 25), at(10, 0, 20)},          // :20 passed 5 s ago; :10 and :00 are older
		{"@daily", at(0, 0, 3), at(0, 0, 0)},                  // restarted 3 s after midnight
		{"@daily", at(0, 5, 0), at(0, 0, 0).AddDate(0, 0, 1)}, // midnight passed 5 min ago: skipped
		{"@hourly", at(1, 0, 0), at(1, 0, 0)},                 // installed on the slot
		{"@hourly", at(1, 0, 59), at(1, 0, 0)},
		{"@hourly", at(1, 1, 0), at(2, 0, 0)}, // exactly a minute late: skipped
	} {
		s, err := ParseSchedule(c.spec)
		if err != nil {
			t.Fatal(err)
		}
		if got := firstSlot(s, c.now); !got.Equal(c.want) {
			t.Errorf("firstSlot(%s, %s) = %s, want %s", c.spec, c.now.Format(time.TimeOnly), got, c.want)
		}
	}
}
