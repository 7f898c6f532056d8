package jobs

import (
	"context"
	"fmt"
	"time"

	"github.com/wasmcorn/wasmcorn/internal/metrics"
)

// missTolerance is how late the scheduler may be for a slot and still
// submit it. Slots missed by more (the process was suspended, or busy) are
// skipped rather than submitted in a burst, like cron; another process
// sharing the backend may have submitted them.
const missTolerance = time.Minute

type periodicEntry struct {
	p     Periodic
	sched Schedule
	next  time.Time
}

// SetPeriodic replaces the set of periodic jobs. Each slot of each schedule
// is submitted once across all processes sharing the backend, by whichever
// gets there first. Of the slots before the call only the latest one less
// than a minute old is submitted (firstSlot), so a restart across a slot
// does not lose it. When any entry
// is invalid (bad name, queue, schedule; duplicate name) nothing changes.
func (r *Runner) SetPeriodic(list []Periodic) error {
	entries := make([]*periodicEntry, 0, len(list))
	seen := make(map[string]bool, len(list))
	for _, p := range list {
		if err := CheckQueueName(p.Name); err != nil {
			return fmt.Errorf("jobs: periodic job name: %w", err)
		}
		if seen[p.Name] {
			return fmt.Errorf("jobs: periodic job %q declared twice", p.Name)
		}
		seen[p.Name] = true
		if err := CheckSubmit(p.Queue, p.Payload, 0); err != nil {
			return fmt.Errorf("jobs: periodic job %q: %w", p.Name, err)
		}
		s, err := ParseSchedule(p.Schedule)
		if err != nil {
			return fmt.Errorf("jobs: periodic job %q: %w", p.Name, err)
		}
		p.Payload = append([]byte(nil), p.Payload...)
		entries = append(entries, &periodicEntry{p: p, sched: s})
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopped {
		return ErrStopped
	}
	r.periodic = entries
	select {
	case r.schedWake <- struct{}{}:
	default:
	}
	return nil
}

// firstSlot is where a schedule starts when it is installed at now: its
// latest slot missed by less than missTolerance, if any (a restart that
// spans a slot must not lose it; the backend submits each slot once across
// processes and restarts), else its next slot.
func firstSlot(s Schedule, now time.Time) time.Time {
	var last time.Time
	for t := s.Next(now.Add(-missTolerance)); !t.IsZero() && !t.After(now); t = s.Next(t) {
		last = t
	}
	if !last.IsZero() {
		return last
	}
	return s.Next(now)
}

// schedule submits periodic jobs at their slots until ctx ends.
func (r *Runner) schedule(ctx context.Context) {
	defer r.loops.Done()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var current []*periodicEntry // the set in r.periodic this loop works on
	var local []*periodicEntry   // copies with next slot times
	for {
		r.mu.Lock()
		set := r.periodic
		r.mu.Unlock()
		now := time.Now()
		if !sameEntries(set, current) {
			prev := make(map[string]*periodicEntry, len(local))
			for _, e := range local {
				prev[e.p.Name+"\x00"+e.p.Schedule] = e
			}
			local = make([]*periodicEntry, 0, len(set))
			for _, e := range set {
				c := *e
				if old, ok := prev[e.p.Name+"\x00"+e.p.Schedule]; ok {
					c.next = old.next // keep the slot in progress
				} else {
					c.next = firstSlot(c.sched, now)
				}
				local = append(local, &c)
			}
			current = set
		}

		var earliest time.Time
		for _, e := range local {
			if e.next.IsZero() {
				continue
			}
			if !e.next.After(now) {
				r.submitSlot(e, e.next)
				e.next = e.sched.Next(e.next)
				if !e.next.IsZero() && e.next.Before(now.Add(-missTolerance)) {
					e.next = e.sched.Next(now)
				}
			}
			if !e.next.IsZero() && (earliest.IsZero() || e.next.Before(earliest)) {
				earliest = e.next
			}
		}
		wait := time.Hour
		if !earliest.IsZero() {
			wait = time.Until(earliest)
		}
		timer.Reset(max(wait, 0))
		select {
		case <-timer.C:
		case <-r.schedWake:
			if !timer.Stop() {
				select {
				case <-timer.C:
				default:
				}
			}
		case <-ctx.Done():
			return
		}
	}
}

func sameEntries(a, b []*periodicEntry) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// submitSlot submits e's job for slot unless another process did.
func (r *Runner) submitSlot(e *periodicEntry, slot time.Time) {
	if slot.Before(time.Now().Add(-missTolerance)) {
		return
	}
	keep := min(max(2*Period(e.sched, slot), time.Hour), 48*time.Hour)
	ctx, cancel := r.backendCtx()
	defer cancel()
	id, ok, err := r.backend.SubmitPeriodic(ctx, e.p.Name, slot, keep, e.p.Queue, e.p.Payload)
	switch {
	case err != nil:
		metrics.JobsPeriodic.WithLabelValues(e.p.Name, "error").Inc()
		r.log.Warn("periodic job: submit failed; slot skipped", "name", e.p.Name, "slot", slot, "queue", e.p.Queue, "error", err)
	case ok:
		metrics.JobsPeriodic.WithLabelValues(e.p.Name, "submitted").Inc()
		metrics.JobsSubmitted.WithLabelValues(e.p.Queue).Inc()
		r.log.Debug("periodic job submitted", "name", e.p.Name, "slot", slot, "queue", e.p.Queue, "job", id)
	default:
		metrics.JobsPeriodic.WithLabelValues(e.p.Name, "skipped").Inc()
	}
}
