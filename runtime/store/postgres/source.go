package postgres

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/gong-proxy/gong/runtime/conf"
)

// Source is the database as a server's source of configuration: a Store
// whose schema was checked, watched for other nodes' changes, with its
// reachability as /status reports it.
type Source struct {
	*Store
	log       *slog.Logger
	reachable atomic.Bool
	cancel    context.CancelFunc
	watching  sync.WaitGroup
}

// OpenSource connects and checks that the schema is bootstrapped and up
// to date for the core and the enabled plugins (Kong's messages
// otherwise). log receives the outage and recovery notices.
func OpenSource(ctx context.Context, db conf.Database, nodeID string, plugins []string, log *slog.Logger) (*Source, error) {
	st, err := Open(ctx, db, nodeID)
	if err != nil {
		return nil, err
	}
	if err := st.Check(ctx, plugins); err != nil {
		st.Close()
		return nil, err
	}
	s := &Source{Store: st, log: log, cancel: func() {}}
	s.reachable.Store(true)
	return s, nil
}

// OfflineSource is the Source of a node that starts while its database
// does not answer (OpenSource failed with ErrUnreachable), from a
// configuration cached by an earlier run: it connects once the database
// answers, and is unreachable until then. Its schema is not checked: a
// database that comes back without it fails the rebuilds, and the cached
// configuration keeps serving.
func OfflineSource(db conf.Database, nodeID string, log *slog.Logger) (*Source, error) {
	st, err := open(context.Background(), db, nodeID, false)
	if err != nil {
		return nil, err
	}
	return &Source{Store: st, log: log, cancel: func() {}}, nil
}

// Watch starts polling cluster_events (see Store.Watch) until Close;
// onChange rebuilds the configuration and onHealth applies another node's
// health mark. The outage and the recovery are logged once each.
func (s *Source) Watch(onChange func(), onHealth func(data string)) {
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.watching.Add(1)
	go func() {
		defer s.watching.Done()
		s.Store.Watch(ctx, WatchOptions{OnChange: onChange, OnHealth: onHealth, Unreachable: !s.reachable.Load(), OnReachable: func(up bool) {
			s.reachable.Store(up)
			if up {
				s.log.Warn("database is reachable again: catching up with the changes made meanwhile")
			} else {
				s.log.Warn("database is unreachable: the last configuration keeps serving; retrying with backoff")
			}
		}})
	}()
}

// Reachable is false from a failed poll until the next one succeeds.
func (s *Source) Reachable() bool { return s.reachable.Load() }

// Close stops watching and closes the connections.
func (s *Source) Close() {
	s.cancel()
	s.watching.Wait()
	s.Store.Close()
}
