package server

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/valyala/fasthttp"

	"github.com/wasmcorn/wasmcorn/internal/config"
)

// staticMount serves one [[static]] entry with fasthttp.FS: files are
// sent with sendfile where possible, with Range, If-Modified-Since and
// (when compress is set) cached gzip copies; nothing touches Wasm. Hidden
// files and directories (a path segment starting with ".", such as .env or
// .git/config) are answered 404, except .well-known (RFC 8615).
type staticMount struct {
	prefix       []byte
	h            fasthttp.RequestHandler
	notFound     fasthttp.RequestHandler
	cacheControl string
}

func newStaticMounts(cfg *config.Config, notFound fasthttp.RequestHandler) ([]staticMount, error) {
	var out []staticMount
	for i, st := range cfg.Static {
		root, err := filepath.Abs(st.Dir)
		if err != nil {
			return nil, fmt.Errorf("static[%d].dir: %w", i, err)
		}
		index := st.IndexNames
		if len(index) == 0 {
			index = []string{"index.html"}
		}
		fs := &fasthttp.FS{
			Root:               root,
			IndexNames:         index,
			GenerateIndexPages: st.Browse,
			AcceptByteRange:    true,
			PathRewrite:        fasthttp.NewPathPrefixStripper(len(st.Prefix) - 1),
			PathNotFound:       notFound,
		}
		if st.Compress {
			// The compressed copies live with the compilation cache, or
			// in the temporary directory when there is none (compile_cache
			// off, or no user cache directory, as for a service without
			// HOME).
			base := cfg.Plugins.CompileCacheDir()
			if base == "" {
				base = filepath.Join(os.TempDir(), "wasmcorn")
			}
			sum := sha256.Sum256([]byte(root))
			dir := filepath.Join(base, "static-gzip", hex.EncodeToString(sum[:8]))
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return nil, fmt.Errorf("static[%d]: compressed copies directory: %w", i, err)
			}
			fs.Compress, fs.CompressRoot = true, dir
		}
		m := staticMount{prefix: []byte(st.Prefix), h: fs.NewRequestHandler(), notFound: notFound}
		if st.MaxAge > 0 {
			m.cacheControl = "public, max-age=" + strconv.FormatInt(int64(st.MaxAge.D().Seconds()), 10)
		}
		out = append(out, m)
	}
	return out, nil
}

func (m *staticMount) serve(ctx *fasthttp.RequestCtx) {
	if hiddenSegment(ctx.Path()[len(m.prefix)-1:]) {
		ctx.SetStatusCode(fasthttp.StatusNotFound)
		m.notFound(ctx)
		return
	}
	m.h(ctx)
	if m.cacheControl != "" && ctx.Response.StatusCode() == fasthttp.StatusOK {
		ctx.Response.Header.Set("Cache-Control", m.cacheControl)
	}
}

var wellKnown = []byte(".well-known")

// hiddenSegment reports whether the (decoded, normalized) path has a
// segment that starts with "." other than .well-known.
func hiddenSegment(path []byte) bool {
	for len(path) > 0 {
		seg := path
		if i := bytes.IndexByte(path, '/'); i >= 0 {
			seg, path = path[:i], path[i+1:]
		} else {
			path = nil
		}
		if len(seg) > 0 && seg[0] == '.' && !bytes.Equal(seg, wellKnown) {
			return true
		}
	}
	return false
}
