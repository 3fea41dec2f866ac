-- Every type and validator, in Kong's style.
local Schema = require "kong.db.schema"
local typedefs = require "kong.db.schema.typedefs"

local metric = Schema.define {
  type = "record",
  fields = {
    { name = { type = "string", required = true, one_of = { "a", "b" } } },
    { stat_type = { type = "string", required = true, one_of = { "counter", "gauge", "timer" } } },
    { sample_rate = { type = "number", gt = 0 } },
  },
  entity_checks = {
    { conditional = {
        if_field = "stat_type", if_match = { one_of = { "counter", "gauge" } },
        then_field = "sample_rate", then_match = { required = true },
    } },
  },
}

return {
  name = "kitchen",
  fields = {
    { protocols = typedefs.protocols { default = { "tcp", "tls" } } },
    { route = typedefs.no_route },
    { service = typedefs.no_service },
    { config = {
        type = "record",
        shorthand_fields = {
          { old_name = { type = "string", func = function(v) return { str = v } end } },
          { old_nested = { type = "string", func = function(v) return { rec = { inner = v } } end } },
        },
        fields = {
          { str = { type = "string" } },
          { num = { type = "number", between = { 1, 10 } } },
          { int = { type = "integer" } },
          { bool = { type = "boolean", default = true } },
          { arr = { type = "array", elements = { type = "string", len_max = 3 }, len_min = 1 } },
          { set = { type = "set", elements = { type = "string" }, default = { "x" } } },
          { map = { type = "map", keys = { type = "string" }, values = { type = "integer" } } },
          { rec = { type = "record", fields = {
              { inner = { type = "string", default = "in" } },
              { deep = { type = "record", fields = { { d = { type = "integer", default = 7 } } } } },
          } } },
          { optrec = { type = "record", required = false, fields = { { x = { type = "string" } } } } },
          { one = { type = "string", one_of = { "a", "b" } } },
          { notone = { type = "string", not_one_of = { "x", "y" } } },
          { gt = { type = "number", gt = 5 } },
          { leneq = { type = "string", len_eq = 2 } },
          { match = { type = "string", match = "^%d+$" } },
          { notmatch = { type = "string", not_match = "%s" } },
          { matchall = { type = "string", match_all = { { pattern = "^a", err = "must start with a" }, { pattern = "z$", err = "must end with z" } } } },
          { matchany = { type = "string", match_any = { patterns = { "^x", "^y" }, err = "x or y" } } },
          { matchnone = { type = "string", match_none = { { pattern = "bad", err = "no bad" } } } },
          { starts = { type = "string", starts_with = "/" } },
          { re = { type = "string", is_regex = true } },
          { id = { type = "string", uuid = true } },
          { eq = { type = "string", eq = "fixed", default = "fixed" } },
          { ne = { type = "string", ne = "no" } },
          { custom = { type = "string", custom_validator = function(v)
              if v == "ok" then return true end
              return nil, "custom says no: " .. v
          end } },
          { override = { type = "integer", between = { 1, 2 }, err = "pick one or two" } },
          { contains = { type = "array", elements = { type = "string" }, contains = "must" } },
          { metrics = { type = "array", elements = metric } },
          { a = { type = "string" } },
          { b = { type = "string" } },
          { c = { type = "string" } },
          { d = { type = "string" } },
          { port = typedefs.port { default = 514 } },
          { host = typedefs.host },
          { url = typedefs.url },
          { header = typedefs.header_name },
          { path = typedefs.path },
          { version = typedefs.semantic_version },
          { ip = typedefs.ip },
          { sni = typedefs.sni },
          { whost = typedefs.wildcard_host },
          { pname = typedefs.name },
          { tags = typedefs.tags },
          { cidr4 = typedefs.cidr_v4 },
          { timeout = typedefs.timeout },
        },
        entity_checks = {
          { mutually_required = { "c", "d" } },
          { mutually_exclusive = { "str", "one" } },
          { distinct = { "a", "c" } },
          { mutually_exclusive_sets = { set1 = { "gt" }, set2 = { "leneq" } } },
          { custom_entity_check = {
              field_sources = { "int" },
              fn = function(e)
                if e.int == 13 then return nil, "unlucky" end
                return true
              end,
          } },
        },
      },
    },
  },
}
