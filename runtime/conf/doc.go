// Package conf reads kong.conf: gong's embedded defaults, a kong.conf file,
// KONG_<NAME> environment variables and command-line overrides, merged in
// that order of precedence into one validated Config.
//
// The file syntax and the value rules are Kong's (Penlight's config reader
// plus Kong's post-processing): comment lines, inline comments with \#
// escapes, backslash continuation, an empty value unsets a property, NONE
// means no value. Every problem is reported at once, each naming the
// property, the value and where it came from.
//
// conf imports only the standard library and the root package (for the
// embedded defaults).
package conf
