package server

import (
	"crypto/tls"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Lingering close: when the server rejects a request before reading all
// of it (431, 413, 408), closing the socket with unread input makes the
// kernel send a TCP reset, and a reset can destroy the error response
// before the client reads it. A connection marked by markLinger instead
// half-closes (FIN after the response), then reads and discards what the
// client still sends, bounded in time and bytes, before closing.
const (
	lingerTimeout  = 2 * time.Second
	lingerMaxBytes = 4 << 20
)

// lingerListener also implements the handoff pause: once paused it
// accepts nothing more (connections wait in the kernel's queue for
// another process sharing the socket) until it is closed.
type lingerListener struct {
	net.Listener
	paused    atomic.Bool
	initOnce  sync.Once
	closeOnce sync.Once
	closed    chan struct{}
}

func (l *lingerListener) done() chan struct{} {
	l.initOnce.Do(func() { l.closed = make(chan struct{}) })
	return l.closed
}

func (l *lingerListener) pause() { l.paused.Store(true) }

func (l *lingerListener) Close() error {
	l.closeOnce.Do(func() { close(l.done()) })
	return l.Listener.Close()
}

func (l *lingerListener) Accept() (net.Conn, error) {
	if l.paused.Load() {
		<-l.done()
		return nil, net.ErrClosed
	}
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &lingerConn{Conn: c}, nil
}

type lingerConn struct {
	net.Conn
	linger atomic.Bool
}

type closeWriter interface{ CloseWrite() error }

func (c *lingerConn) Close() error {
	if c.linger.Load() {
		if cw, ok := c.Conn.(closeWriter); ok && cw.CloseWrite() == nil {
			_ = c.Conn.SetReadDeadline(time.Now().Add(lingerTimeout))
			_, _ = io.CopyN(io.Discard, c.Conn, lingerMaxBytes)
		}
	}
	return c.Conn.Close()
}

// markLinger asks for a lingering close of c (a *lingerConn, possibly
// under TLS); other connections are left alone.
func markLinger(c net.Conn) {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	if lc, ok := c.(*lingerConn); ok {
		lc.linger.Store(true)
	}
}
