package runtime

import (
	"sync"
	"sync/atomic"
	"testing"
)

// Every caller of after returns only once a reload that began after its
// call has ended, and concurrent callers share reloads.
func TestReloadGateWaitsForALaterReload(t *testing.T) {
	var gate reloadGate
	var begun, ended atomic.Int64
	release := make(chan struct{})
	reload := func() error {
		n := begun.Add(1)
		<-release
		ended.Store(n)
		return nil
	}
	const callers = 50
	var wg sync.WaitGroup
	failures := make(chan string, callers)
	for range callers {
		wg.Go(func() {
			at := begun.Load()
			if err := gate.after(reload); err != nil {
				failures <- err.Error()
			}
			if ended.Load() <= at {
				failures <- "returned before a reload begun after the call ended"
			}
		})
	}
	done := make(chan struct{})
	go func() {
		for {
			select {
			case release <- struct{}{}:
			case <-done:
				return
			}
		}
	}()
	wg.Wait()
	close(done)
	close(failures)
	for f := range failures {
		t.Error(f)
	}
	if n := begun.Load(); n < 1 || n > callers {
		t.Errorf("%d reloads for %d callers", n, callers)
	}
}
