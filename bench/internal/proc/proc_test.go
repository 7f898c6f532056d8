package proc

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestParseStat(t *testing.T) {
	tests := []struct {
		name, line string
		ppid       int
		cpu        int64
		wantErr    bool
	}{
		{"plain", "42 (nginx) S 1 42 42 0 -1 4194560 100 0 0 0 7 3 2 1 20 0 1 0 100 1000 10", 1, 13, false},
		{"comm with spaces and parens", "7 (a (b) c) R 5 7 7 0 -1 0 0 0 0 0 10 20 30 40 20 0 1 0", 5, 100, false},
		{"short", "7 (x) R 5 7", 0, 0, true},
		{"no paren", "garbage", 0, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, err := parseStat(tt.line)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if err == nil && (st.ppid != tt.ppid || st.cpu != tt.cpu) {
				t.Errorf("got ppid %d cpu %d, want %d %d", st.ppid, st.cpu, tt.ppid, tt.cpu)
			}
		})
	}
}

func TestStatusKB(t *testing.T) {
	s := "Name:\tx\nVmHWM:\t  2048 kB\nVmRSS:\t1024 kB\n"
	if got := statusKB(s, "VmHWM:"); got != 2048*1024 {
		t.Errorf("VmHWM = %d", got)
	}
	if got := statusKB(s, "VmRSS:"); got != 1024*1024 {
		t.Errorf("VmRSS = %d", got)
	}
	if got := statusKB(s, "VmSwap:"); got != 0 {
		t.Errorf("absent key = %d", got)
	}
	if got := statusKB("Pss:  12 kB\n", "Pss:"); got != 12*1024 {
		t.Errorf("first-line key = %d", got)
	}
}

// TestTreeUsage: a shell that forks a CPU-burning child; the tree's usage
// includes both processes and grows.
func TestTreeUsage(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command("/bin/sh", "-c", "while :; do :; done & wait")
	p, err := Start("burner", cmd, filepath.Join(dir, "log"))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop(time.Second)
	var u Usage
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if u, err = TreeUsage(p.Pid()); err != nil {
			t.Fatal(err)
		}
		if u.Procs == 2 && u.CPU > 0 {
			break
		}
	}
	if u.Procs != 2 || u.CPU <= 0 || u.PeakRSS <= 0 || u.RSS <= 0 {
		t.Fatalf("usage %+v: want 2 processes with CPU and memory", u)
	}
	if err := p.Stop(time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := TreeUsage(p.Pid()); err == nil {
		t.Error("TreeUsage of a stopped process must fail")
	}
}

func TestWaitTCPReportsExit(t *testing.T) {
	dir := t.TempDir()
	p, err := Start("quitter", exec.Command("/bin/sh", "-c", "echo bye-bye; exit 3"), filepath.Join(dir, "log"))
	if err != nil {
		t.Fatal(err)
	}
	port, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	err = WaitTCP(context.Background(), "127.0.0.1:"+strconv.Itoa(port), p, 10*time.Second)
	if err == nil || !strings.Contains(err.Error(), "bye-bye") {
		t.Fatalf("err = %v, want the exit and the log tail", err)
	}
	if _, err := os.Stat(p.LogPath); err != nil {
		t.Fatal(err)
	}
}
