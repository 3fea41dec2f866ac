package lua

import (
	"context"
	"errors"
	"strings"
)

// Kind classifies a failure at the Go/Lua boundary so callers can react
// (log and continue, end the session, discard the VM) without parsing text.
type Kind int

const (
	// Syntax: a chunk or module did not parse or compile.
	Syntax Kind = iota + 1
	// Runtime: Lua raised an error (error(), a type error, stack overflow...).
	Runtime
	// Timeout: the call's context deadline passed.
	Timeout
	// Canceled: the call's context was cancelled.
	Canceled
	// Panic: a Go function called from Lua panicked; the VM is not trusted.
	Panic
	// Memory: a MemoryGuard stopped the call ("not enough memory").
	Memory
)

func (k Kind) String() string {
	switch k {
	case Syntax:
		return "syntax"
	case Runtime:
		return "runtime"
	case Timeout:
		return "timeout"
	case Canceled:
		return "canceled"
	case Panic:
		return "panic"
	case Memory:
		return "memory"
	}
	return "unknown"
}

// Error is the Go-facing form of every Lua failure this package reports.
type Error struct {
	Kind      Kind
	Msg       string // the Lua error value as text, with its chunk:line prefix when Lua added one
	Traceback string // "stack traceback:" lines, empty when none was available
	Err       error  // the cause: *glua.ApiError, *parse.Error, context.DeadlineExceeded...
}

func (e *Error) Error() string { return e.Msg }

func (e *Error) Unwrap() error { return e.Err }

// Untrusted reports whether a VM that produced e must be discarded: its Lua
// code stopped at an arbitrary instruction, or Go code broke mid-way.
func (e *Error) Untrusted() bool {
	switch e.Kind {
	case Timeout, Canceled, Panic, Memory:
		return true
	}
	return strings.Contains(e.Msg, "registry overflow")
}

// contextError classifies a failure of a call that c stopped; the VM
// checks the context between instructions and raises its text.
func contextError(c *callCtx, msg, tb string, cause error) *Error {
	err, why := c.stopped()
	if errors.Is(why, ErrMemory) {
		return &Error{Kind: Memory, Msg: ErrMemory.Error(), Traceback: tb, Err: errors.Join(ErrMemory, cause)}
	}
	kind := Canceled
	if errors.Is(err, context.DeadlineExceeded) {
		kind = Timeout
	}
	return &Error{Kind: kind, Msg: msg, Traceback: tb, Err: errors.Join(err, cause)}
}
