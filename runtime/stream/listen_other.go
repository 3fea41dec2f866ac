//go:build !unix

package stream

import "errors"

var errNoReusePort = errors.New("reuseport is not supported on this system")

func setReusePort(uintptr) error { return errNoReusePort }

// setIPv6Only leaves the system's default: ipv6only needs a Unix socket
// option here.
func setIPv6Only(uintptr, bool) error { return nil }

// setBacklog keeps Go's backlog: the system has no way to change it.
func setBacklog(uintptr, int) {}
