//go:build !linux

package stream

import (
	"errors"
	"sync/atomic"
)

// Without epoll there are no event loops: every session has goroutines.

type loopSet struct{}

type loopConn struct{ sent, received atomic.Int64 }

func startLoops(*Engine, int) (*loopSet, error) { return nil, errors.ErrUnsupported }

func (*loopSet) stop()                   {}
func (*loopSet) toLoops(*socket) error   { return errors.ErrUnsupported }
func (*loopSet) fromLoops(*socket) error { return errors.ErrUnsupported }
func (*loopSet) closeLoopFD(*socket)     {}
func (*loopConn) post()                  {}
func (*loopConn) closeSockets() bool     { return false }
func (*loopConn) leave() error           { return errors.ErrUnsupported }
func (*loopConn) onLoop() bool           { return false }
