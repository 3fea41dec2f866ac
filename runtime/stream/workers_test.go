package stream

import (
	"sync"
	"testing"
	"time"
)

// eventuallyTrue polls cond until it holds or 10 s have passed.
func eventuallyTrue(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10 s", what)
		}
		time.Sleep(5 * time.Millisecond) // polling a condition, not synchronising
	}
}

// TestWorkersKeepABoundedFew: goroutines that finished a task wait for
// the next one, at most maxIdleWorkers of them, and a waiting one takes
// the next task; all end once idle for workerIdle.
func TestWorkersKeepABoundedFew(t *testing.T) {
	w := newWorkers()
	release := make(chan struct{})
	var started sync.WaitGroup
	const busy = maxIdleWorkers + 44
	started.Add(busy)
	for range busy {
		w.run(func() { started.Done(); <-release })
	}
	started.Wait()
	close(release)
	eventuallyTrue(t, "finished goroutines waiting for work", func() bool { return w.idle.Load() == maxIdleWorkers })

	// A goroutine counts itself idle just before it waits, so a task run
	// at that moment goes to a new goroutine, which ends after it (one
	// more would exceed the bound); the next task finds it waiting.
	eventuallyTrue(t, "a waiting goroutine taking one more task", func() bool {
		running, done := make(chan struct{}), make(chan struct{})
		defer close(done)
		w.run(func() { close(running); <-done })
		<-running
		return w.idle.Load() == maxIdleWorkers-1
	})
	eventuallyTrue(t, "idle goroutines ending after workerIdle", func() bool { return w.idle.Load() == 0 })
}
