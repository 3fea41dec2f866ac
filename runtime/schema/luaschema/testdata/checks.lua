-- Entity checks that fail unless the config chooses.
return {
  name = "checks",
  fields = {
    { config = {
        type = "record",
        fields = {
          { a = { type = "string" } },
          { b = { type = "string" } },
          { mode = { type = "string", default = "x" } },
          { x = { type = "string" } },
          { y = { type = "string" } },
        },
        entity_checks = {
          { only_one_of = { "a", "b" } },
          { conditional_at_least_one_of = {
              if_field = "mode", if_match = { one_of = { "x" } },
              then_at_least_one_of = { "x", "y" },
          } },
        },
      },
    },
  },
}
