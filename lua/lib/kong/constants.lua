-- kong.constants: the values of Kong's constants module that plugins
-- read. BUNDLED_PLUGINS is Kong's own list of bundled plugin names.
local bundled = {
  "jwt", "acl", "correlation-id", "cors", "oauth2", "tcp-log", "udp-log",
  "file-log", "http-log", "key-auth", "hmac-auth", "basic-auth",
  "ip-restriction", "request-transformer", "response-transformer",
  "request-size-limiting", "rate-limiting", "response-ratelimiting", "syslog",
  "loggly", "datadog", "ldap-auth", "statsd", "bot-detection", "aws-lambda",
  "request-termination", "prometheus", "proxy-cache", "session", "acme",
  "grpc-gateway", "grpc-web", "pre-function", "post-function",
  "azure-functions", "zipkin", "opentelemetry", "ai-proxy",
  "ai-prompt-decorator", "ai-prompt-template", "ai-prompt-guard",
  "ai-request-transformer", "ai-response-transformer", "standard-webhooks",
  "redirect",
}
local bundled_map = {}
for _, name in ipairs(bundled) do
  bundled_map[name] = true
end

local subsystem_of = {
  http = "http", https = "http", grpc = "http", grpcs = "http",
  tcp = "stream", tls = "stream", udp = "stream", tls_passthrough = "stream",
}
local protocols = {}
for p in pairs(subsystem_of) do
  protocols[#protocols + 1] = p
end
table.sort(protocols)

local log_levels = {
  debug = ngx.DEBUG, info = ngx.INFO, notice = ngx.NOTICE, warn = ngx.WARN,
  error = ngx.ERR, crit = ngx.CRIT, alert = ngx.ALERT, emerg = ngx.EMERG,
}
for name, level in pairs(log_levels) do
  log_levels[level] = name
end

return {
  CJSON_MAX_PRECISION = 16,
  BUNDLED_PLUGINS = bundled_map,
  DEPRECATED_PLUGINS = {},
  BUNDLED_VAULTS = { env = true },
  DEPRECATED_VAULTS = {},
  PROTOCOLS = protocols,
  PROTOCOLS_WITH_SUBSYSTEM = subsystem_of,
  HEADERS = {
    HOST_OVERRIDE = "X-Host-Override",
    PROXY_LATENCY = "X-Kong-Proxy-Latency",
    RESPONSE_LATENCY = "X-Kong-Response-Latency",
    UPSTREAM_LATENCY = "X-Kong-Upstream-Latency",
    UPSTREAM_STATUS = "X-Kong-Upstream-Status",
    CONSUMER_ID = "X-Consumer-ID",
    CONSUMER_CUSTOM_ID = "X-Consumer-Custom-ID",
    CONSUMER_USERNAME = "X-Consumer-Username",
    CREDENTIAL_IDENTIFIER = "X-Credential-Identifier",
    REQUEST_ID = "X-Kong-Request-Id",
    VIA = "Via",
    SERVER = "Server",
  },
  RATELIMIT = { PERIODS = { "second", "minute", "hour", "day", "month", "year" } },
  DICTS = {
    "kong", "kong_locks", "kong_db_cache", "kong_db_cache_miss",
    "kong_cluster_events", "kong_healthchecks", "kong_rate_limiting_counters",
    "kong_secrets",
  },
  DATABASE = { POSTGRES = { MIN = "9.5" }, DAO_MAX_TTL = 1e8 },
  DECLARATIVE_DEFAULT_WORKSPACE_ID = "0dc6f45b-8f8d-40d2-a504-473544ee190b",
  LOG_LEVELS = log_levels,
  RESPONSE_SOURCE = {
    TYPES = { ERROR = "error", EXIT = "exit", SERVICE = "service" },
    NAMES = { error = "kong", exit = "kong", service = "upstream" },
  },
}
