package config

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Duration is a time.Duration written in TOML and in the environment as a
// Go duration string: "30s", "1m30s", "250ms". A bare integer is refused
// rather than read as nanoseconds, so `timeout = 30` is an error, not 30ns.
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// String formats d like time.Duration.String.
func (d Duration) String() string { return time.Duration(d).String() }

// UnmarshalTOML implements toml.Unmarshaler.
func (d *Duration) UnmarshalTOML(v any) error {
	s, ok := v.(string)
	if !ok {
		return fmt.Errorf("want a duration string such as \"30s\", got %T %v", v, v)
	}
	return d.UnmarshalText([]byte(s))
}

// UnmarshalText parses a Go duration string; negative durations are refused.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(strings.TrimSpace(string(b)))
	if err != nil {
		return fmt.Errorf("bad duration %q (want e.g. \"30s\", \"500ms\")", b)
	}
	if v < 0 {
		return fmt.Errorf("negative duration %q", b)
	}
	*d = Duration(v)
	return nil
}

// MarshalText formats d as a Go duration string.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// ByteSize is a size in bytes. In TOML it is an integer (bytes) or a string
// with a unit: "512", "64KiB", "4MiB", "1GiB" (powers of 1024) or "10KB",
// "10MB", "1GB" (powers of 1000). Names of ByteSize fields end in _bytes.
type ByteSize uint64

// UnmarshalTOML implements toml.Unmarshaler.
func (s *ByteSize) UnmarshalTOML(v any) error {
	switch x := v.(type) {
	case int64:
		if x < 0 {
			return fmt.Errorf("negative size %d", x)
		}
		*s = ByteSize(x)
		return nil
	case string:
		return s.UnmarshalText([]byte(x))
	}
	return fmt.Errorf("want a size in bytes (integer or a string such as \"4MiB\"), got %T %v", v, v)
}

var sizeUnits = []struct {
	suffix string
	mult   uint64
}{
	// Longest suffixes first so "KiB" is not read as "B".
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
	{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12},
	{"B", 1},
}

// UnmarshalText parses an integer with an optional unit suffix.
func (s *ByteSize) UnmarshalText(b []byte) error {
	str := strings.TrimSpace(string(b))
	mult := uint64(1)
	num := str
	for _, u := range sizeUnits {
		if strings.HasSuffix(str, u.suffix) {
			num, mult = strings.TrimSpace(strings.TrimSuffix(str, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseUint(num, 10, 64)
	if err != nil {
		return fmt.Errorf("bad size %q (want bytes, or e.g. \"64KiB\", \"4MiB\")", str)
	}
	if n > math.MaxUint64/mult {
		return fmt.Errorf("size %q overflows", str)
	}
	*s = ByteSize(n * mult)
	return nil
}

// String formats s with the largest binary unit that divides it exactly.
func (s ByteSize) String() string {
	for _, u := range []struct {
		suffix string
		mult   uint64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if uint64(s) >= u.mult && uint64(s)%u.mult == 0 {
			return strconv.FormatUint(uint64(s)/u.mult, 10) + u.suffix
		}
	}
	return strconv.FormatUint(uint64(s), 10)
}

// MarshalText formats s as String does.
func (s ByteSize) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Human formats s rounded to one decimal in the largest fitting binary
// unit, for messages: "2.3MiB", "512B".
func (s ByteSize) Human() string {
	v := float64(s)
	for _, u := range []string{"B", "KiB", "MiB", "GiB"} {
		if v < 1024 {
			if u == "B" {
				return strconv.FormatUint(uint64(s), 10) + "B"
			}
			return strconv.FormatFloat(v, 'f', 1, 64) + u
		}
		v /= 1024
	}
	return strconv.FormatFloat(v, 'f', 1, 64) + "TiB"
}
