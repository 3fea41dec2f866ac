package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/gong-proxy/gong/runtime/conf"
	"github.com/gong-proxy/gong/runtime/declarative"
)

// Store is a connection to the database, with a separate pool for reads
// when a read-only replica is configured (pg_ro_*). Its methods are safe
// for concurrent use.
type Store struct {
	write  *pgxpool.Pool
	read   *pgxpool.Pool // == write without a replica
	db     conf.Database
	nodeID string
	// slots bounds the queries in flight (pg_max_concurrent_queries);
	// nil is no bound.
	slots chan struct{}
	// mirror is the node's copy of the entities (Config, Modify).
	mirror *mirror
}

// ErrUnreachable is wrapped by Open's error when the server did not
// answer at all (rather than refusing the node: a wrong password, a
// missing database).
var ErrUnreachable = errors.New("the database did not answer")

// unreachableError is a failed connection to a server that did not
// answer.
type unreachableError struct{ msg string }

func (e *unreachableError) Error() string        { return e.msg }
func (e *unreachableError) Is(target error) bool { return target == ErrUnreachable }

// Open connects to the database conf describes; it fails when the server
// cannot be reached. nodeID is what the node writes into cluster_events,
// so it can skip its own events; "" draws one.
func Open(ctx context.Context, db conf.Database, nodeID string) (*Store, error) {
	return open(ctx, db, nodeID, true)
}

// open is Open; without ping the pools connect on first use, so the
// server need not answer now.
func open(ctx context.Context, db conf.Database, nodeID string, ping bool) (*Store, error) {
	if nodeID == "" {
		nodeID = uuid.NewString() // a CLI run, without node_id
	}
	s := &Store{db: db, nodeID: nodeID, mirror: &mirror{}}
	var err error
	if s.write, err = openPool(ctx, db.Postgres, ping); err != nil {
		return nil, err
	}
	s.read = s.write
	if db.ReadOnly != nil {
		if s.read, err = openPool(ctx, *db.ReadOnly, ping); err != nil {
			s.write.Close()
			return nil, err
		}
	}
	if n := db.Postgres.MaxConcurrentQueries; n > 0 {
		s.slots = make(chan struct{}, n)
	}
	return s, nil
}

func openPool(ctx context.Context, p conf.Postgres, ping bool) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(p.ConnString())
	if err != nil {
		return nil, fmt.Errorf("[postgres error] %w", err)
	}
	// Kong stamps cluster events with the UTC time as a timestamp without
	// zone: read back in UTC, they are the real time.
	cfg.ConnConfig.RuntimeParams["timezone"] = "UTC"
	if p.Schema != "" {
		cfg.ConnConfig.RuntimeParams["search_path"] = p.Schema
	}
	if p.PoolSize > 0 {
		cfg.MaxConns = int32(p.PoolSize)
	}
	if p.KeepaliveTimeout > 0 {
		cfg.MaxConnIdleTime = p.KeepaliveTimeout
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("[postgres error] %w", err)
	}
	if !ping {
		return pool, nil
	}
	pctx, cancel := context.WithTimeout(ctx, timeoutOr(p.Timeout))
	defer cancel()
	if err := pool.Ping(pctx); err != nil {
		pool.Close()
		msg := "[postgres error] " + describe(err)
		var pe *pgconn.PgError
		if errors.As(err, &pe) {
			return nil, errors.New(msg)
		}
		return nil, &unreachableError{msg}
	}
	return pool, nil
}

func timeoutOr(d time.Duration) time.Duration {
	if d <= 0 {
		return 5 * time.Second
	}
	return d
}

// Close closes every connection.
func (s *Store) Close() {
	if s.read != s.write {
		s.read.Close()
	}
	s.write.Close()
}

// Ping reports whether the database answers, as Kong's /status
// database.reachable does.
func (s *Store) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, timeoutOr(s.db.Postgres.Timeout))
	defer cancel()
	return s.write.Ping(ctx)
}

// acquire waits for a query slot (pg_max_concurrent_queries) for at most
// pg_semaphore_timeout; release gives it back.
func (s *Store) acquire(ctx context.Context) (release func(), err error) {
	if s.slots == nil {
		return func() {}, nil
	}
	wait := s.db.Postgres.SemaphoreTimeout
	if wait <= 0 {
		wait = time.Minute
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case s.slots <- struct{}{}:
		return func() { <-s.slots }, nil
	case <-t.C:
		return nil, errors.New("[postgres error] timeout acquiring the query semaphore (pg_semaphore_timeout)")
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// queryCtx bounds one query by pg_timeout.
func (s *Store) queryCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, timeoutOr(s.db.Postgres.Timeout))
}

// inTx runs fn in one transaction on the primary, committed when fn
// returns nil. pg_timeout bounds each statement, not the transaction.
func (s *Store) inTx(ctx context.Context, fn func(pgx.Tx) error) error {
	release, err := s.acquire(ctx)
	if err != nil {
		return err
	}
	defer release()
	return pgx.BeginFunc(ctx, s.write, func(tx pgx.Tx) error {
		if err := setStatementTimeout(ctx, tx, s.db.Postgres.Timeout); err != nil {
			return err
		}
		return fn(tx)
	})
}

// inReadTx runs fn in one read-only snapshot on the replica (the primary
// without one). pg_timeout bounds each statement, not the transaction.
func (s *Store) inReadTx(ctx context.Context, fn func(pgx.Tx) error) error {
	release, err := s.acquire(ctx)
	if err != nil {
		return err
	}
	defer release()
	return pgx.BeginTxFunc(ctx, s.read, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		if err := setStatementTimeout(ctx, tx, s.db.Postgres.Timeout); err != nil {
			return err
		}
		return fn(tx)
	})
}

func setStatementTimeout(ctx context.Context, tx pgx.Tx, d time.Duration) error {
	_, err := tx.Exec(ctx, fmt.Sprintf("SET LOCAL statement_timeout = %d", timeoutOr(d).Milliseconds()))
	return err
}

// describeDB is a failed read's error: a validation error as it is, a
// database error shortened to its message.
func describeDB(err error) error {
	var de *declarative.Error
	if errors.As(err, &de) {
		return err
	}
	return fmt.Errorf("[postgres error] %s", describe(err))
}

// describe shortens a driver error to the server's message, or the
// network error, without the driver's wrapping.
func describe(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Message
	}
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) {
		return ce.Unwrap().Error()
	}
	return err.Error()
}
