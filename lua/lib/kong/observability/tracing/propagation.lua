-- kong.observability.tracing.propagation in stream: tracing context
-- travels in HTTP headers, which a stream session has none of. extract
-- finds no incoming context, so a tracing plugin starts a new trace;
-- propagate has nowhere to inject and does nothing; get_plugin_params
-- returns the plugin's propagation settings (typedefs.propagation).
local propagation = {}

function propagation.get_plugin_params(config)
  return config.propagation or {}
end

function propagation.extract()
  return nil
end

function propagation.propagate()
end

return propagation
