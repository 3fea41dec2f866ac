// Package gong holds the files that are compiled into the gong binary.
// It has no code of its own, so every package may import it.
package gong

import _ "embed"

// DefaultConf is kong.conf.default: every property gong reads, with its
// default, in kong.conf syntax.
//
//go:embed kong.conf.default
var DefaultConf []byte
