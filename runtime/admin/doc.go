// Package admin is gong's Admin API and Status API over HTTP: Kong's
// database-less Admin API (node information, the entities of the running
// declarative configuration with Kong's pagination and tags filter, /config
// to export and replace it, plugin and entity schemas, upstream health)
// and /status, with Kong's JSON shapes and errors. As gong extensions it
// lists and closes live sessions (/sessions) and can require a token.
//
// The package serves what a Backend gives it and knows nothing of
// listeners, generations or connections: the runtime implements Backend
// and opens the listeners.
package admin
