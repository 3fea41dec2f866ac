//go:build !linux

package stream

import (
	"errors"
	"net"
)

// parker needs epoll: elsewhere there is none, and quiet directions keep
// their goroutines, blocked in Go's poller.
type parker struct{}

var errNoParker = errors.New("parking idle connections needs Linux's epoll")

func newParker() (*parker, error) { return nil, errNoParker }

func (*parker) close()                                      {}
func (*parker) newToken() int32                             { return 0 }
func (*parker) park(int32, *relay, int, *net.TCPConn) error { return errNoParker }
func (*parker) unpark(int32)                                {}
