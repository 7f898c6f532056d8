package server

import (
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
// (when compress is set) cached gzip copies; nothing touches Wasm.
type staticMount struct {
	prefix       []byte
	h            fasthttp.RequestHandler
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
			if base := cfg.Plugins.CompileCacheDir(); base != "" {
				sum := sha256.Sum256([]byte(root))
				dir := filepath.Join(base, "static-gzip", hex.EncodeToString(sum[:8]))
				if err := os.MkdirAll(dir, 0o755); err != nil {
					return nil, fmt.Errorf("static[%d]: compressed copies directory: %w", i, err)
				}
				fs.Compress, fs.CompressRoot = true, dir
			}
		}
		m := staticMount{prefix: []byte(st.Prefix), h: fs.NewRequestHandler()}
		if st.MaxAge > 0 {
			m.cacheControl = "public, max-age=" + strconv.FormatInt(int64(st.MaxAge.D().Seconds()), 10)
		}
		out = append(out, m)
	}
	return out, nil
}

func (m *staticMount) serve(ctx *fasthttp.RequestCtx) {
	m.h(ctx)
	if m.cacheControl != "" && ctx.Response.StatusCode() == fasthttp.StatusOK {
		ctx.Response.Header.Set("Cache-Control", m.cacheControl)
	}
}
