package pluginbuild

import (
	"errors"
	"testing"
)

func TestCompileUnknown(t *testing.T) {
	for _, name := range []string{"no_such_plugin", "../hello", "Hello", ""} {
		if _, err := Compile(name); !errors.Is(err, ErrUnknownPlugin) {
			t.Errorf("Compile(%q) = %v, want ErrUnknownPlugin", name, err)
		}
	}
}
