package config

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"sort"
	"strings"

	"github.com/BurntSushi/toml"
)

// ErrUnknownKey is wrapped by the error for a key the schema does not
// have (a typo, or a setting from another version).
var ErrUnknownKey = errors.New("unknown key")

// KeyError is a problem with one key of one file.
type KeyError struct {
	File string // the file, "" when not from a file
	Line int    // 1-based line, 0 when unknown
	Key  string // dotted key path, e.g. "server.read_timeout"
	Err  error
}

func (e *KeyError) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		if e.Line > 0 {
			fmt.Fprintf(&b, ":%d", e.Line)
		}
		b.WriteString(": ")
	}
	if e.Key != "" {
		b.WriteString(e.Key)
		b.WriteString(": ")
	}
	b.WriteString(e.Err.Error())
	return b.String()
}

func (e *KeyError) Unwrap() error { return e.Err }

// Load reads the config file at path over Default. It does not apply the
// environment and does not validate; see ApplyEnv and Validate.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	c := Default()
	if _, err := decodeStrict(path, data, c); err != nil {
		return nil, err
	}
	c.File = path
	return c, nil
}

// Parse decodes TOML config text over Default; name is used in errors.
func Parse(name string, data []byte) (*Config, error) {
	c := Default()
	if _, err := decodeStrict(name, data, c); err != nil {
		return nil, err
	}
	c.File = name
	return c, nil
}

// decodeStrict decodes data into v and fails on TOML syntax errors, type
// errors and keys v has no field for, naming file, line and key.
func decodeStrict(file string, data []byte, v any) (toml.MetaData, error) {
	md, err := toml.Decode(string(data), v)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			msg := pe.Message
			if pe.Usage != "" {
				msg += " (" + strings.TrimSpace(firstLine(pe.Usage)) + ")"
			}
			return md, &KeyError{File: file, Line: pe.Position.Line, Key: pe.LastKey, Err: errors.New(msg)}
		}
		return md, &KeyError{File: file, Err: err}
	}
	var errs []error
	var reported []string
	for _, k := range md.Undecoded() {
		ks := k.String()
		if coveredBy(ks, reported) {
			continue // a key inside an unknown table: the table is reported
		}
		reported = append(reported, ks)
		msg := ErrUnknownKey
		if s := suggest(reflect.TypeOf(v), k); s != "" {
			msg = fmt.Errorf("%w (did you mean %q?)", ErrUnknownKey, s)
		}
		errs = append(errs, &KeyError{File: file, Key: ks, Err: msg})
	}
	return md, errors.Join(errs...)
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

func coveredBy(key string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(key, p+".") {
			return true
		}
	}
	return false
}

// suggest returns the known key closest to the last component of k, within
// an edit distance of 2, among the keys allowed at k's position in t.
func suggest(t reflect.Type, k toml.Key) string {
	known := knownKeys(t, k[:len(k)-1])
	last := k[len(k)-1]
	best, bestD := "", 3
	for _, name := range known {
		if d := editDistance(last, name); d < bestD {
			best, bestD = name, d
		}
	}
	return best
}

// knownKeys lists the TOML keys a struct type accepts under path.
func knownKeys(t reflect.Type, path []string) []string {
	for _, p := range path {
		t = deref(t)
		switch t.Kind() {
		case reflect.Map:
			t = t.Elem() // p is a map key (e.g. a database name)
			continue
		case reflect.Slice:
			t = deref(t.Elem())
		}
		if t.Kind() != reflect.Struct {
			return nil
		}
		f, ok := fieldByTag(t, p)
		if !ok {
			return nil
		}
		t = f.Type
	}
	t = deref(t)
	if t.Kind() == reflect.Slice {
		t = deref(t.Elem())
	}
	if t.Kind() != reflect.Struct {
		return nil
	}
	var out []string
	for i := 0; i < t.NumField(); i++ {
		if tag := tomlTag(t.Field(i)); tag != "" {
			out = append(out, tag)
		}
	}
	sort.Strings(out)
	return out
}

func deref(t reflect.Type) reflect.Type {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t
}

func fieldByTag(t reflect.Type, tag string) (reflect.StructField, bool) {
	for i := 0; i < t.NumField(); i++ {
		if tomlTag(t.Field(i)) == tag {
			return t.Field(i), true
		}
	}
	return reflect.StructField{}, false
}

func tomlTag(f reflect.StructField) string {
	if !f.IsExported() {
		return ""
	}
	tag, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
	if tag == "-" {
		return ""
	}
	return tag
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
