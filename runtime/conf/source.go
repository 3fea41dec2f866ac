package conf

import (
	"fmt"
	"strings"
)

// SourceKind says which layer a value came from.
type SourceKind int

// The layers, lowest precedence first.
const (
	FromDefaults SourceKind = iota
	FromFile
	FromEnv
	FromCommandLine
)

// Source is where one property value was read.
type Source struct {
	Kind SourceKind
	File string // FromDefaults, FromFile
	Line int    // FromDefaults, FromFile
	Env  string // FromEnv: the variable's name
}

func (s Source) String() string {
	switch s.Kind {
	case FromFile:
		return fmt.Sprintf("%s:%d", s.File, s.Line)
	case FromEnv:
		return s.Env
	case FromCommandLine:
		return "command line"
	}
	return "kong.conf.default:" + fmt.Sprint(s.Line)
}

// Problem is one invalid or suspicious property. Msg is in Kong's words
// where Kong has them, and names the property.
type Problem struct {
	Key    string
	Value  string
	Source Source
	Msg    string
}

func (p Problem) Error() string { return p.Source.String() + ": " + p.Msg }

// Errors is every problem that made a configuration invalid.
type Errors []Problem

func (e Errors) Error() string {
	lines := make([]string, len(e))
	for i, p := range e {
		lines[i] = p.Error()
	}
	return strings.Join(lines, "\n")
}
