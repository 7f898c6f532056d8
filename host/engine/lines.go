package engine

import (
	"bytes"
	"sync"
)

// LineSplitter turns a guest's stdout or stderr writes into lines for a
// LineWriter. Safe for concurrent use (wasmtime writes from its own
// threads).
type LineSplitter struct {
	w   LineWriter
	mu  sync.Mutex
	buf []byte
}

// NewLineSplitter returns a LineSplitter writing to w.
func NewLineSplitter(w LineWriter) *LineSplitter { return &LineSplitter{w: w} }

// maxLine is where a line without a newline is passed on in pieces.
const maxLine = 64 << 10

// Write passes on every complete line of p and keeps the rest for the next
// write. It never fails.
func (l *LineSplitter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			l.buf = append(l.buf, p...)
			if len(l.buf) > maxLine { // flush very long lines in pieces
				l.w.WriteLine(l.buf)
				l.buf = l.buf[:0]
			}
			break
		}
		if len(l.buf) > 0 {
			l.buf = append(l.buf, p[:i]...)
			l.w.WriteLine(l.buf)
			l.buf = l.buf[:0]
		} else {
			l.w.WriteLine(p[:i])
		}
		p = p[i+1:]
	}
	return n, nil
}

// Flush passes on a final unterminated line.
func (l *LineSplitter) Flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.buf) > 0 {
		l.w.WriteLine(l.buf)
		l.buf = l.buf[:0]
	}
}
