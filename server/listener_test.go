package server

import (
	"errors"
	"io"
	"net"
	"syscall"
	"testing"
	"time"
)

// TestLingeringClose checks the mechanism behind the 413/431 answers: a
// connection closed with unread input sends a reset (which can destroy a
// response still in flight on a real network), while a marked one
// half-closes, so the client reads a clean end of stream, and drains what
// the client still sends.
func TestLingeringClose(t *testing.T) {
	for _, linger := range []bool{false, true} {
		t.Run(map[bool]string{false: "plain", true: "lingering"}[linger], func(t *testing.T) {
			inner, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer inner.Close()
			ln := &lingerListener{Listener: inner}
			client, err := net.Dial("tcp", inner.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer client.Close()
			server, err := ln.Accept()
			if err != nil {
				t.Fatal(err)
			}
			// Unread input on the server side, then the response.
			if _, err := client.Write(make([]byte, 64<<10)); err != nil {
				t.Fatal(err)
			}
			time.Sleep(50 * time.Millisecond)
			if _, err := server.Write([]byte("HTTP/1.1 431 Request Header Fields Too Large\r\n\r\n")); err != nil {
				t.Fatal(err)
			}
			if linger {
				markLinger(server)
			}
			closed := make(chan error, 1)
			go func() { closed <- server.Close() }()

			_ = client.SetReadDeadline(time.Now().Add(5 * time.Second))
			b, rerr := io.ReadAll(client)
			if string(b) != "HTTP/1.1 431 Request Header Fields Too Large\r\n\r\n" {
				t.Fatalf("response %q (%v)", b, rerr)
			}
			if linger {
				if rerr != nil {
					t.Fatalf("lingering close: read error %v, want a clean EOF", rerr)
				}
				// The client may keep sending; the server drains it.
				if _, err := client.Write(make([]byte, 32<<10)); err != nil {
					t.Fatalf("write during the drain: %v", err)
				}
				client.Close()
			} else if !errors.Is(rerr, syscall.ECONNRESET) {
				// Documents why lingering exists: a plain close with unread
				// input resets the connection.
				t.Fatalf("plain close: read ended with %v, want a connection reset", rerr)
			}
			select {
			case <-closed:
			case <-time.After(10 * time.Second):
				t.Fatal("Close did not return")
			}
		})
	}
}
