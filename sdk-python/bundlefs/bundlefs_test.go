package bundlefs

import (
	"archive/zip"
	"bytes"
	"errors"
	"io"
	"io/fs"
	"testing"
	"testing/fstest"
)

func makeZip(t testing.TB, method uint16, files map[string]string, order []string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, name := range order {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: name, Method: method})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(w, files[name]); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func uleb(n int) []byte {
	var out []byte
	for {
		b := byte(n & 0x7f)
		n >>= 7
		if n != 0 {
			out = append(out, b|0x80)
			continue
		}
		return append(out, b)
	}
}

func custom(name string, data []byte) []byte {
	body := append(uleb(len(name)), name...)
	body = append(body, data...)
	return append(append([]byte{0}, uleb(len(body))...), body...)
}

var header = []byte("\x00asm\x01\x00\x00\x00")

func TestSection(t *testing.T) {
	typeSection := []byte{1, 4, 1, 0x60, 0, 0} // one func type () -> ()
	payload := []byte("PK-payload")
	tests := []struct {
		name    string
		wasm    []byte
		want    []byte
		wantErr bool
	}{
		{"none", append(append([]byte{}, header...), typeSection...), nil, false},
		{"found", concat(header, typeSection, custom("other", []byte("x")), custom(SectionName, payload)), payload, false},
		{"empty payload", concat(header, custom(SectionName, nil)), []byte{}, false},
		{"not wasm", []byte("hello world!"), nil, true},
		{"short", []byte("\x00as"), nil, true},
		{"bad version", []byte("\x00asm\x02\x00\x00\x00"), nil, true},
		{"section past end", concat(header, []byte{0, 100, 1, 'a'}), nil, true},
		{"name past end", concat(header, []byte{0, 2, 9, 'a'}), nil, true},
		{"bad leb", concat(header, []byte{0, 0xff, 0xff, 0xff, 0xff, 0x7f}), nil, true},
		{"twice", concat(header, custom(SectionName, payload), custom(SectionName, payload)), nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Section(tt.wasm)
			if tt.wantErr {
				if !errors.Is(err, ErrMalformed) {
					t.Fatalf("Section: err = %v, want ErrMalformed", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Section: %v", err)
			}
			if !bytes.Equal(got, tt.want) || (got == nil) != (tt.want == nil) {
				t.Fatalf("Section = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestSplit(t *testing.T) {
	typeSection := []byte{1, 4, 1, 0x60, 0, 0}
	name := custom("name", []byte{0})
	plain := concat(header, typeSection, name)
	with := concat(header, typeSection, custom(SectionName, []byte("PK")), name)
	module, files, err := Split(with)
	if err != nil || string(files) != "PK" || !bytes.Equal(module, plain) {
		t.Fatalf("Split = %x, %q, %v; want %x", module, files, err, plain)
	}
	module, files, err = Split(plain)
	if err != nil || files != nil || !bytes.Equal(module, plain) {
		t.Fatalf("Split without a section = %x, %q, %v", module, files, err)
	}
	if _, _, err := Split([]byte("nope")); !errors.Is(err, ErrMalformed) {
		t.Fatalf("Split(garbage): %v", err)
	}
}

func concat(parts ...[]byte) []byte {
	var out []byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func TestFS(t *testing.T) {
	files := map[string]string{
		"lib/json/__init__.pyc": "json-init",
		"lib/os.pyc":            "os",
		"app/app.py":            "print('hi')\n",
		"app/templates/a.html":  "<p>a</p>",
		"empty/":                "",
	}
	order := []string{"lib/json/__init__.pyc", "lib/os.pyc", "app/app.py", "app/templates/a.html", "empty/"}
	for _, method := range []uint16{zip.Store, zip.Deflate} {
		z := makeZip(t, method, files, order)
		f, err := New(z)
		if err != nil {
			t.Fatalf("method %d: New: %v", method, err)
		}
		if err := fstest.TestFS(f, "lib/json/__init__.pyc", "lib/os.pyc", "app/app.py", "app/templates/a.html", "empty"); err != nil {
			t.Fatalf("method %d: %v", method, err)
		}
		got, err := fs.ReadFile(f, "app/app.py")
		if err != nil || string(got) != files["app/app.py"] {
			t.Fatalf("method %d: ReadFile = %q, %v", method, got, err)
		}
		if want := int64(len("json-init") + len("os") + len(files["app/app.py"]) + len("<p>a</p>")); f.Size() != want {
			t.Fatalf("Size = %d, want %d", f.Size(), want)
		}
		// ReadAt and Seek, which wazero's pread and lseek use.
		fh, _ := f.Open("lib/json/__init__.pyc")
		buf := make([]byte, 4)
		if n, err := fh.(io.ReaderAt).ReadAt(buf, 5); n != 4 || err != nil || string(buf) != "init" {
			t.Fatalf("ReadAt = %d %v %q", n, err, buf)
		}
		if off, err := fh.(io.Seeker).Seek(-2, io.SeekEnd); off != 7 || err != nil {
			t.Fatalf("Seek = %d %v", off, err)
		}
	}
}

func TestStoredAliases(t *testing.T) {
	z := makeZip(t, zip.Store, map[string]string{"a": "abcdef"}, []string{"a"})
	f, err := New(z)
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(z, []byte("abcdef"))
	z[i] = 'X' // visible through the FS only if the entry aliases z
	if got := string(f.entries["a"].data); got != "Xbcdef" {
		t.Fatalf("entry = %q: a stored entry should alias the archive, not copy it", got)
	}
}

func TestNewErrors(t *testing.T) {
	good := makeZip(t, zip.Store, map[string]string{"a": "abcdef"}, []string{"a"})
	corrupt := bytes.Clone(good)
	i := bytes.Index(corrupt, []byte("abcdef"))
	corrupt[i] = 'X'
	tests := []struct {
		name string
		z    []byte
	}{
		{"not a zip", []byte("nope")},
		{"crc", corrupt},
		{"absolute name", makeZip(t, zip.Store, map[string]string{"/etc/x": "x"}, []string{"/etc/x"})},
		{"dotdot", makeZip(t, zip.Store, map[string]string{"../x": "x"}, []string{"../x"})},
		{"duplicate", makeZip(t, zip.Store, map[string]string{"a": "x"}, []string{"a", "a"})},
		{"file and dir", makeZip(t, zip.Store, map[string]string{"a": "x", "a/b": "y"}, []string{"a", "a/b"})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := New(tt.z); !errors.Is(err, ErrMalformed) {
				t.Fatalf("New: err = %v, want ErrMalformed", err)
			}
		})
	}
}

func FuzzSection(f *testing.F) {
	f.Add(concat(header, custom(SectionName, []byte("x"))))
	f.Add(concat(header, []byte{0, 2, 9, 'a'}))
	f.Fuzz(func(t *testing.T, b []byte) {
		module, got, err := Split(b)
		if err != nil {
			return
		}
		if got != nil && len(module)+len(got) > len(b) {
			t.Fatal("module and section longer than their input")
		}
		if again, files, err := Split(module); err != nil || files != nil || !bytes.Equal(again, module) {
			t.Fatalf("the split module still has a section: %v", err)
		}
	})
}

func FuzzNew(f *testing.F) {
	f.Add(makeZip(f, zip.Store, map[string]string{"a/b": "c"}, []string{"a/b"}))
	f.Add(makeZip(f, zip.Deflate, map[string]string{"x": "yyyy"}, []string{"x"}))
	f.Fuzz(func(t *testing.T, z []byte) {
		fsys, err := New(z)
		if err != nil {
			return
		}
		_ = fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				_, _ = fs.ReadFile(fsys, p)
			}
			return nil
		})
	})
}
