// Package testsvc starts throwaway backing services (MariaDB, Redis) for
// tests: real servers from the installed Debian packages, each on a free
// 127.0.0.1 port with its own temporary directory, stopped by t.Cleanup.
// Tests never use the machine's own services on their default ports, and
// can stop, kill and restart a throwaway server to test faults.
//
// When a server binary is missing, the starting function calls t.Skip with
// a message naming the command that installs it (`scripts/deps.sh test`;
// `make test` always runs it first).
package testsvc

import (
	"fmt"
	"net"
	"os"
	"strings"
)

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
// Another process may still take it before the caller binds it, so callers
// retry their start when the bind fails.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// tail returns the last n lines of the file at path, for error messages
// about a server that failed to start.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", path, err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
