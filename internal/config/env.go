package config

import (
	"encoding"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"
)

// EnvPrefix starts every environment variable the config reads.
const EnvPrefix = "WASMCORN_"

// EnvConfigFile names the config file when no -config flag is given. It is
// read by the CLI, not by ApplyEnv.
const EnvConfigFile = "WASMCORN_CONFIG"

// ApplyEnv overrides c from WASMCORN_* variables in environ (os.Environ()
// form). A variable's name is the key path in upper case with "." and the
// key's own underscores both written "_": server.listen is
// WASMCORN_SERVER_LISTEN, server.tls.cert_file is
// WASMCORN_SERVER_TLS_CERT_FILE, databases.main.dsn is
// WASMCORN_DATABASES_MAIN_DSN (which creates database "main" if the file
// did not). Lists are comma-separated. Durations and sizes use the same
// syntax as the file. Arrays of tables ([[static]]) and free-form maps
// (security_headers) cannot be set from the environment.
//
// It returns the WASMCORN_* names that match no key; the caller logs
// them (they are not errors, because the environment is shared with other
// tools). Values that do not parse are errors naming the variable.
func ApplyEnv(c *Config, environ []string) (unknown []string, err error) {
	var errs []error
	for _, kv := range environ {
		name, val, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(name, EnvPrefix) || name == EnvConfigFile {
			continue
		}
		found, err := setEnv(reflect.ValueOf(c).Elem(), strings.TrimPrefix(name, EnvPrefix), val)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("environment %s: %w", name, err))
		case !found:
			unknown = append(unknown, name)
		}
	}
	sort.Strings(unknown)
	return unknown, errors.Join(errs...)
}

// setEnv finds the field named by rest (upper case, "_" separated) under
// the struct v and sets it from val.
func setEnv(v reflect.Value, rest, val string) (bool, error) {
	t := v.Type()
	// Exact leaf matches win over a prefix match into a nested table.
	for i := 0; i < t.NumField(); i++ {
		tag := tomlTag(t.Field(i))
		if tag != "" && strings.ToUpper(tag) == rest && isLeaf(t.Field(i).Type) {
			return true, setLeaf(v.Field(i), val)
		}
	}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := tomlTag(f)
		up := strings.ToUpper(tag) + "_"
		if tag == "" || !strings.HasPrefix(rest, up) {
			continue
		}
		sub := rest[len(up):]
		switch {
		case f.Type.Kind() == reflect.Struct && !isLeaf(f.Type):
			if found, err := setEnv(v.Field(i), sub, val); found || err != nil {
				return found, err
			}
		case f.Type.Kind() == reflect.Map && f.Type.Key().Kind() == reflect.String && f.Type.Elem().Kind() == reflect.Struct:
			if found, err := setEnvMap(v.Field(i), sub, val); found || err != nil {
				return found, err
			}
		}
	}
	return false, nil
}

// setEnvMap handles NAME_FIELD under a map of structs: the longest field
// name that ends sub wins, the rest (lower-cased) is the map key.
func setEnvMap(m reflect.Value, sub, val string) (bool, error) {
	et := m.Type().Elem()
	bestField := ""
	for i := 0; i < et.NumField(); i++ {
		tag := tomlTag(et.Field(i))
		if tag == "" || !isLeaf(et.Field(i).Type) {
			continue
		}
		up := "_" + strings.ToUpper(tag)
		if strings.HasSuffix(sub, up) && len(sub) > len(up) && len(tag) > len(bestField) {
			bestField = tag
		}
	}
	if bestField == "" {
		return false, nil
	}
	key := strings.ToLower(sub[:len(sub)-len(bestField)-1])
	if m.IsNil() {
		m.Set(reflect.MakeMap(m.Type()))
	}
	elem := reflect.New(et).Elem()
	if old := m.MapIndex(reflect.ValueOf(key)); old.IsValid() {
		elem.Set(old)
	}
	f, _ := fieldByTag(et, bestField)
	if err := setLeaf(elem.FieldByIndex(f.Index), val); err != nil {
		return true, err
	}
	m.SetMapIndex(reflect.ValueOf(key), elem)
	return true, nil
}

var textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()

func isLeaf(t reflect.Type) bool {
	if reflect.PointerTo(t).Implements(textUnmarshaler) {
		return true
	}
	switch t.Kind() {
	case reflect.String, reflect.Bool, reflect.Int, reflect.Int64, reflect.Uint32, reflect.Float64:
		return true
	case reflect.Slice:
		return t.Elem().Kind() == reflect.String
	}
	return false
}

func setLeaf(f reflect.Value, val string) error {
	if tu, ok := f.Addr().Interface().(encoding.TextUnmarshaler); ok {
		return tu.UnmarshalText([]byte(val))
	}
	switch f.Kind() {
	case reflect.String:
		f.SetString(val)
	case reflect.Bool:
		b, err := strconv.ParseBool(strings.TrimSpace(val))
		if err != nil {
			return fmt.Errorf("bad boolean %q (want true or false)", val)
		}
		f.SetBool(b)
	case reflect.Int, reflect.Int64:
		n, err := strconv.ParseInt(strings.TrimSpace(val), 10, 64)
		if err != nil {
			return fmt.Errorf("bad integer %q", val)
		}
		f.SetInt(n)
	case reflect.Uint32:
		n, err := strconv.ParseUint(strings.TrimSpace(val), 10, 32)
		if err != nil {
			return fmt.Errorf("bad unsigned integer %q", val)
		}
		f.SetUint(n)
	case reflect.Float64:
		n, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
		if err != nil {
			return fmt.Errorf("bad number %q", val)
		}
		f.SetFloat(n)
	case reflect.Slice:
		var list []string
		for _, s := range strings.Split(val, ",") {
			if s = strings.TrimSpace(s); s != "" {
				list = append(list, s)
			}
		}
		f.Set(reflect.ValueOf(list))
	default:
		return fmt.Errorf("cannot be set from the environment")
	}
	return nil
}
