module github.com/gong-proxy/gong

go 1.26

require (
	github.com/BurntSushi/toml v1.6.0
	github.com/google/uuid v1.6.0
	github.com/hashicorp/golang-lru/v2 v2.0.7
	github.com/pires/go-proxyproto v0.15.0
	go.yaml.in/yaml/v3 v3.0.6
)

require github.com/yuin/gopher-lua v1.1.2

require (
	github.com/OneOfOne/xxhash v1.2.8
	github.com/kong/go-kong v0.66.0
)

require (
	github.com/google/go-querystring v1.1.0 // indirect
	github.com/imdario/mergo v0.3.12 // indirect
	github.com/kong/semver/v4 v4.0.1 // indirect
	github.com/mitchellh/mapstructure v1.5.0 // indirect
	github.com/tidwall/gjson v1.18.0 // indirect
	github.com/tidwall/match v1.1.1 // indirect
	github.com/tidwall/pretty v1.2.0 // indirect
)
