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

// TestExited: a process that dies by itself is reported with its exit
// status and the start of its Go crash report (not just the goroutine dump
// below it); one that is running, or was stopped, is not.
func TestExited(t *testing.T) {
	dir := t.TempDir()
	script := `echo starting; echo "panic: assignment to entry in nil map"; echo; ` +
		`for i in $(seq 100); do echo "goroutine $i [running]:"; done; exit 2`
	p, err := Start("crasher", exec.Command("/bin/sh", "-c", script), filepath.Join(dir, "crash.log"))
	if err != nil {
		t.Fatal(err)
	}
	<-p.Done()
	err = p.Exited()
	if err == nil {
		t.Fatal("Exited() = nil for a process that exited by itself")
	}
	for _, want := range []string{"crasher (pid", "exit status 2", "panic: assignment to entry in nil map", "goroutine 1 [running]"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Exited() = %q, lacks %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "goroutine 100 ") {
		t.Errorf("Exited() quotes the whole dump: %q", err)
	}

	q, err := Start("quitter", exec.Command("/bin/sh", "-c", "echo bye; kill -9 $$"), filepath.Join(dir, "quit.log"))
	if err != nil {
		t.Fatal(err)
	}
	<-q.Done()
	if err := q.Exited(); err == nil || !strings.Contains(err.Error(), "signal: killed") || !strings.Contains(err.Error(), "log tail:\nbye") {
		t.Errorf("Exited() = %v, want the signal and the log tail", err)
	}

	s, err := Start("sleeper", exec.Command("sleep", "60"), filepath.Join(dir, "sleep.log"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Exited(); err != nil {
		t.Errorf("running: Exited() = %v", err)
	}
	if err := s.Stop(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	if err := s.Exited(); err != nil {
		t.Errorf("stopped: Exited() = %v", err)
	}
}
