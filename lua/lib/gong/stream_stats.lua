-- The metrics statsd and datadog send, by metric name: the stat name and
-- the function that reads its value from a stream log record. Stream
-- records have no request or response: request.size is the bytes the
-- client sent (session.received), response.size the bytes it got
-- (session.sent), latency the session's duration; upstream_latency has
-- no stream value (nil, not sent).
return {
  request_count = { "request.count", function() return 1 end },
  latency = { "latency", function(r) return r.latencies and r.latencies.session end },
  request_size = { "request.size", function(r) return r.session and r.session.received end },
  response_size = { "response.size", function(r) return r.session and r.session.sent end },
  kong_latency = { "kong_latency", function(r) return r.latencies and r.latencies.kong end },
  upstream_latency = { "upstream_latency", function() return nil end },
}
