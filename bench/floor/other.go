//go:build !linux

package main

import (
	"errors"
	"net/netip"
)

func epollProxy(netip.AddrPort, netip.AddrPort) error {
	return errors.New("the epoll proxy needs Linux")
}

func hybridProxy(string, string) error {
	return errors.New("the hybrid proxy needs Linux")
}
