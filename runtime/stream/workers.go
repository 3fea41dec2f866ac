package stream

import (
	"sync/atomic"
	"time"
)

// Limits of the session goroutines kept for reuse.
const (
	// maxIdleWorkers is how many goroutines wait for work at most; one
	// more that finishes its work ends, so the grown stacks kept cost at
	// most a few MiB however many connections were open at the peak.
	maxIdleWorkers = 256
	// workerIdle is how long a goroutine waits for work before it ends.
	workerIdle = time.Second
)

// workers runs a session's goroutines (its set-up, which goes on to carry
// the relay's direction to the upstream, and the relay's other direction)
// on goroutines that outlive them. A goroutine new for every session
// starts with the smallest stack and copies it as it grows through the
// dial and the relay, several times per session; a kept goroutine has
// grown its stack already. Up to maxIdleWorkers wait for work, each for
// up to workerIdle.
type workers struct {
	tasks chan func() // unbuffered: a send succeeds only to a waiting goroutine
	idle  atomic.Int32
}

func newWorkers() *workers {
	return &workers{tasks: make(chan func())}
}

// run runs task on a waiting goroutine, or on a new one when none waits.
func (w *workers) run(task func()) {
	select {
	case w.tasks <- task:
	default:
		go w.work(task)
	}
}

// work runs task, then the tasks run hands it, until it has waited
// workerIdle for one or maxIdleWorkers others are waiting already.
func (w *workers) work(task func()) {
	var timer *time.Timer
	for {
		task()
		if w.idle.Add(1) > maxIdleWorkers {
			w.idle.Add(-1)
			return
		}
		if timer == nil {
			timer = time.NewTimer(workerIdle)
		} else {
			timer.Reset(workerIdle)
		}
		select {
		case task = <-w.tasks:
			w.idle.Add(-1)
		case <-timer.C:
			w.idle.Add(-1)
			return
		}
	}
}
