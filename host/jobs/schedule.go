package jobs

import (
	"fmt"
	"math/bits"
	"strconv"
	"strings"
	"time"
)

// Schedule tells when a periodic job's slots are. Every process computes the
// same slots from the same spec, which is what lets them agree on who runs
// a slot.
type Schedule interface {
	// Next returns the first slot strictly after t, or the zero time when
	// there is none within five years.
	Next(t time.Time) time.Time
}

// ParseSchedule parses a periodic job's schedule:
//
//   - "@every D" with D a Go duration of at least 1s ("30s", "5m", "1h30m"):
//     slots at the multiples of D since the Unix epoch, so "@every 30s"
//     fires at :00 and :30 of every minute in every process.
//   - five cron fields "minute hour day-of-month month day-of-week", each a
//     comma list of "*", "N", "N-M", optionally followed by "/STEP"
//     ("*/15", "1-30/2", "5/10" meaning 5-max/10). Months accept jan..dec,
//     weekdays sun..sat (0 and 7 are Sunday). As in Vixie cron, when both
//     day fields are restricted (neither starts with "*"), a day matches if
//     either field does.
//   - "@yearly" (or "@annually"), "@monthly", "@weekly", "@daily" (or
//     "@midnight"), "@hourly".
//
// Cron fields are evaluated in UTC unless the spec starts with
// "TZ=Area/City " (an IANA zone from the system's zoneinfo).
func ParseSchedule(spec string) (Schedule, error) {
	s := strings.TrimSpace(spec)
	loc, zoned := time.UTC, false
	if rest, ok := strings.CutPrefix(s, "TZ="); ok {
		zone, fields, _ := strings.Cut(rest, " ")
		l, err := time.LoadLocation(zone)
		if err != nil {
			return nil, fmt.Errorf("schedule %q: time zone: %w", spec, err)
		}
		loc, s, zoned = l, strings.TrimSpace(fields), true
	}
	if d, ok := strings.CutPrefix(s, "@every "); ok {
		if zoned {
			return nil, fmt.Errorf("schedule %q: @every does not take a time zone", spec)
		}
		dur, err := time.ParseDuration(strings.TrimSpace(d))
		if err != nil {
			return nil, fmt.Errorf("schedule %q: %w", spec, err)
		}
		if dur < time.Second {
			return nil, fmt.Errorf("schedule %q: interval %v is below 1s", spec, dur)
		}
		return every(dur), nil
	}
	if alias, ok := cronAliases[s]; ok {
		s = alias
	}
	f := strings.Fields(s)
	if len(f) != 5 {
		return nil, fmt.Errorf("schedule %q: want 5 cron fields (minute hour day month weekday), @every D or an @alias; got %d fields", spec, len(f))
	}
	c := &cron{loc: loc}
	var err error
	for i, dst := range []*uint64{&c.minute, &c.hour, &c.dom, &c.month, &c.dow} {
		if *dst, err = parseField(f[i], cronFields[i]); err != nil {
			return nil, fmt.Errorf("schedule %q: %w", spec, err)
		}
	}
	if c.dow&(1<<7) != 0 { // 7 is Sunday too
		c.dow = c.dow&^(1<<7) | 1
	}
	c.domStar = strings.HasPrefix(f[2], "*")
	c.dowStar = strings.HasPrefix(f[4], "*")
	if c.Next(time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)).IsZero() {
		return nil, fmt.Errorf("schedule %q: never fires (no such day)", spec)
	}
	return c, nil
}

var cronAliases = map[string]string{
	"@yearly":   "0 0 1 1 *",
	"@annually": "0 0 1 1 *",
	"@monthly":  "0 0 1 * *",
	"@weekly":   "0 0 * * 0",
	"@daily":    "0 0 * * *",
	"@midnight": "0 0 * * *",
	"@hourly":   "0 * * * *",
}

// every is an "@every D" schedule aligned to the Unix epoch.
type every time.Duration

func (e every) Next(t time.Time) time.Time {
	d := int64(e)
	n := t.UnixNano()
	k := n / d
	if n < 0 && n%d != 0 {
		k-- // floor for instants before 1970
	}
	return time.Unix(0, (k+1)*d).UTC()
}

// String returns the spec, e.g. "@every 30s".
func (e every) String() string { return "@every " + time.Duration(e).String() }

type fieldSpec struct {
	name     string
	min, max int
	names    map[string]int
}

var cronFields = [5]fieldSpec{
	{name: "minute", min: 0, max: 59},
	{name: "hour", min: 0, max: 23},
	{name: "day of month", min: 1, max: 31},
	{name: "month", min: 1, max: 12, names: map[string]int{
		"jan": 1, "feb": 2, "mar": 3, "apr": 4, "may": 5, "jun": 6,
		"jul": 7, "aug": 8, "sep": 9, "oct": 10, "nov": 11, "dec": 12}},
	{name: "day of week", min: 0, max: 7, names: map[string]int{
		"sun": 0, "mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6}},
}

// parseField returns the bit set of the values field selects.
func parseField(field string, fs fieldSpec) (uint64, error) {
	var set uint64
	for _, item := range strings.Split(field, ",") {
		rng, stepText, hasStep := strings.Cut(item, "/")
		step := 1
		if hasStep {
			n, err := strconv.Atoi(stepText)
			if err != nil || n < 1 || n > fs.max {
				return 0, fmt.Errorf("%s: bad step %q in %q", fs.name, stepText, item)
			}
			step = n
		}
		lo, hi := fs.min, fs.max
		switch {
		case rng == "*":
		default:
			a, b, isRange := strings.Cut(rng, "-")
			var err error
			if lo, err = fieldValue(a, fs); err != nil {
				return 0, err
			}
			switch {
			case isRange:
				if hi, err = fieldValue(b, fs); err != nil {
					return 0, err
				}
				if hi < lo {
					return 0, fmt.Errorf("%s: range %q runs backwards", fs.name, rng)
				}
			case !hasStep:
				hi = lo
			}
		}
		for v := lo; v <= hi; v += step {
			set |= 1 << uint(v)
		}
	}
	return set, nil
}

func fieldValue(s string, fs fieldSpec) (int, error) {
	if v, ok := fs.names[strings.ToLower(s)]; ok {
		return v, nil
	}
	v, err := strconv.Atoi(s)
	if err != nil || v < fs.min || v > fs.max {
		return 0, fmt.Errorf("%s: %q is not a value in %d..%d", fs.name, s, fs.min, fs.max)
	}
	return v, nil
}

// cron is a five-field schedule; each field is a bit set of allowed values.
type cron struct {
	minute, hour, dom, month, dow uint64
	domStar, dowStar              bool
	loc                           *time.Location
}

func has(set uint64, v int) bool { return set&(1<<uint(v)) != 0 }

func (c *cron) dayMatches(t time.Time) bool {
	dom, dow := has(c.dom, t.Day()), has(c.dow, int(t.Weekday()))
	if c.domStar || c.dowStar {
		return dom && dow
	}
	return dom || dow
}

// Next finds the next matching wall-clock minute in the schedule's zone by
// skipping whole months, days and hours that cannot match, then minutes.
// The search runs on civil time (a UTC calendar with no daylight saving);
// the result is then placed in the zone. A slot inside a daylight-saving
// gap (02:30 on a spring-forward night) fires when the gap ends, shifted by
// its length; a slot in a repeated hour fires once.
func (c *cron) Next(t time.Time) time.Time {
	lt := t.In(c.loc)
	// Civil time of the next whole minute after t.
	w := time.Date(lt.Year(), lt.Month(), lt.Day(), lt.Hour(), lt.Minute(), 0, 0, time.UTC).Add(time.Minute)
	for {
		w = c.nextCivil(w)
		if w.IsZero() {
			return time.Time{}
		}
		real := time.Date(w.Year(), w.Month(), w.Day(), w.Hour(), w.Minute(), 0, 0, c.loc)
		if real.After(t) {
			return real
		}
		w = w.Add(time.Minute) // a wall time repeated by a clock going back
	}
}

// nextCivil returns the first matching civil minute at or after w (a UTC
// time standing for wall-clock fields), or zero after five years.
func (c *cron) nextCivil(w time.Time) time.Time {
	limit := w.Year() + 5
	for w.Year() <= limit {
		if !has(c.month, int(w.Month())) {
			w = time.Date(w.Year(), w.Month()+1, 1, 0, 0, 0, 0, time.UTC)
			continue
		}
		if !c.dayMatches(w) {
			w = time.Date(w.Year(), w.Month(), w.Day()+1, 0, 0, 0, 0, time.UTC)
			continue
		}
		if !has(c.hour, w.Hour()) {
			w = w.Truncate(time.Hour).Add(time.Hour)
			continue
		}
		if !has(c.minute, w.Minute()) {
			// Jump to the next allowed minute of this hour, if any.
			rest := c.minute >> uint(w.Minute()+1) << uint(w.Minute()+1)
			if rest == 0 {
				w = w.Truncate(time.Hour).Add(time.Hour)
			} else {
				w = w.Add(time.Duration(bits.TrailingZeros64(rest)-w.Minute()) * time.Minute)
			}
			continue
		}
		return w
	}
	return time.Time{}
}

// Period estimates the spacing of s's slots after t: the gap between the
// two slots that follow t. Used to size how long a claimed slot is kept.
func Period(s Schedule, t time.Time) time.Duration {
	a := s.Next(t)
	if a.IsZero() {
		return 0
	}
	b := s.Next(a)
	if b.IsZero() {
		return 0
	}
	return b.Sub(a)
}
