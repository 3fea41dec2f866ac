-- kong.workspaces: gong is DB-less, so there is one workspace, "default",
-- with the id Kong gives it in declarative mode. Plugins ask for it to tag
-- their metrics.
local constants = require "kong.constants"

local DEFAULT_ID = constants.DECLARATIVE_DEFAULT_WORKSPACE_ID

local workspaces = {}

function workspaces.get_workspace_id(ctx)
  return (ctx or ngx.ctx).workspace or DEFAULT_ID
end

function workspaces.get_workspace_name()
  return "default"
end

function workspaces.get_workspace()
  return { id = workspaces.get_workspace_id(), name = "default" }
end

function workspaces.set_workspace(ws)
  ngx.ctx.workspace = ws and ws.id
end

return workspaces
