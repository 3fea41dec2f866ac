return require("kong.plugins.pre-function._schema")("pre-function")
