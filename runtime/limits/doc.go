// Package limits keeps the counters that outlive a connection: events per
// time window (rate limits) and sessions in progress (concurrency limits),
// in the process ("local"), in a Redis shared by a fleet ("redis"), or, for
// rate windows, in the PostgreSQL database of database mode ("cluster"). It
// implements pdk.Counters, which the gong.limits Lua module and the
// bundled rate-limiting and limit-conn plugins use, and the token-bucket
// shaper of the bandwidth-limit plugin.
//
// One Registry lives as long as the process, across reloads, so counts
// survive a new configuration as Kong's shared dictionaries do.
package limits
