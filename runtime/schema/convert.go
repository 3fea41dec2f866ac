package schema

import (
	"strconv"

	"github.com/gong-proxy/gong/luanum"
)

// normalize deep-copies a decoded config into the value domain: every Go
// number becomes float64, maps with non-string keys are rejected later as
// they cannot occur in JSON.
func normalize(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = normalize(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = normalize(e)
		}
		return out
	case []string:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = e
		}
		return out
	case int:
		return float64(x)
	case int64:
		return float64(x)
	case int32:
		return float64(x)
	case uint:
		return float64(x)
	case uint64:
		return float64(x)
	case uint32:
		return float64(x)
	case float32:
		return float64(x)
	}
	return v
}

// deepCopy copies maps and slices of the value domain.
func deepCopy(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = deepCopy(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = deepCopy(e)
		}
		return out
	}
	return v
}

// Tostring renders a decoded value as Lua's tostring does for messages;
// nil, which a schema only meets as JSON's null (ngx.null), is "null".
func Tostring(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case string:
		return x
	case float64:
		return luanum.Format(x)
	case bool:
		return strconv.FormatBool(x)
	}
	return "table"
}
