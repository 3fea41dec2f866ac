package runtime

import "sync"

// reloadGate coalesces reloads: a caller needs a reload that began after
// its call (one that reads the database after its write committed), so
// callers arriving while a reload runs share the next one. Under many
// concurrent Admin writes a node then rebuilds about once per rebuild
// time, rather than once per write.
type reloadGate struct {
	mu       sync.Mutex
	cond     sync.Cond
	started  uint64 // reloads begun
	finished uint64 // reloads ended
	running  bool
	err      error // of the last reload ended
}

// after waits for a reload begun after the call, running reload itself
// when none is running, and returns that reload's error.
func (r *reloadGate) after(reload func() error) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cond.L == nil {
		r.cond.L = &r.mu
	}
	need := r.started + 1
	for r.finished < need {
		if r.running {
			r.cond.Wait()
			continue
		}
		r.running = true
		r.started++
		r.mu.Unlock()
		err := reload()
		r.mu.Lock()
		r.running, r.finished, r.err = false, r.started, err
		r.cond.Broadcast()
	}
	return r.err
}
