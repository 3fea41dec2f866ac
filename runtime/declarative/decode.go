package declarative

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
	"go.yaml.in/yaml/v3"
)

// decode turns a file's bytes into plain values: map[string]any, []any,
// string, float64 (numbers are Lua doubles), bool and nil (null).
func decode(data []byte, filename string) (any, error) {
	fail := func(err error) error {
		return &Error{Message: "failed parsing declarative configuration: " + err.Error()}
	}
	switch {
	case filename == "":
		// As Kong does for strings and POST /config: JSON first, then YAML.
		if v, err := decodeJSON(data); err == nil {
			if _, ok := v.(map[string]any); ok {
				return v, nil
			}
		}
		v, err := decodeYAML(data)
		if err != nil {
			return nil, fail(err)
		}
		return v, nil
	case strings.HasSuffix(filename, "json"):
		v, err := decodeJSON(data)
		if err != nil {
			return nil, fail(err)
		}
		return v, nil
	case strings.HasSuffix(filename, "yml"), strings.HasSuffix(filename, "yaml"):
		v, err := decodeYAML(data)
		if err != nil {
			return nil, fail(err)
		}
		return v, nil
	case strings.HasSuffix(filename, "toml"):
		var m map[string]any
		if _, err := toml.Decode(string(data), &m); err != nil {
			return nil, fail(err)
		}
		return fromTOML(m), nil
	}
	return nil, &Error{Message: "unknown file type: " + filename + ". (Accepted types: json, yaml, toml)"}
}

func decodeJSON(data []byte) (any, error) {
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		return nil, err
	}
	return v, nil
}

// maxYAMLNodes bounds alias expansion ("billion laughs").
const maxYAMLNodes = 1 << 20

func decodeYAML(data []byte) (any, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, err
	}
	budget := maxYAMLNodes
	return fromYAML(&doc, &budget, 0)
}

var errYAMLTooLarge = errors.New("document too large after alias expansion")

func fromYAML(n *yaml.Node, budget *int, depth int) (any, error) {
	*budget--
	if *budget < 0 || depth > 10000 {
		return nil, errYAMLTooLarge
	}
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) == 0 {
			return nil, nil
		}
		return fromYAML(n.Content[0], budget, depth+1)
	case yaml.AliasNode:
		if n.Alias == nil {
			return nil, nil
		}
		return fromYAML(n.Alias, budget, depth+1)
	case yaml.SequenceNode:
		a := make([]any, 0, len(n.Content))
		for _, c := range n.Content {
			v, err := fromYAML(c, budget, depth+1)
			if err != nil {
				return nil, err
			}
			a = append(a, v)
		}
		return a, nil
	case yaml.MappingNode:
		m := make(map[string]any, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, vn := n.Content[i], n.Content[i+1]
			v, err := fromYAML(vn, budget, depth+1)
			if err != nil {
				return nil, err
			}
			if k.Tag == "!!merge" {
				mergeYAML(m, v)
				continue
			}
			key, err := fromYAML(k, budget, depth+1)
			if err != nil {
				return nil, err
			}
			m[keyString(key)] = v
		}
		return m, nil
	case yaml.ScalarNode:
		return yamlScalar(n), nil
	}
	return nil, nil
}

// mergeYAML applies a "<<" merge key: explicit keys win over merged ones.
func mergeYAML(m map[string]any, v any) {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if _, ok := m[k]; !ok {
				m[k] = e
			}
		}
	case []any:
		for _, e := range x {
			mergeYAML(m, e)
		}
	}
}

func keyString(k any) string {
	switch x := k.(type) {
	case string:
		return x
	case nil:
		return ""
	case float64, bool:
		return luaString(x)
	}
	return fmt.Sprint(k)
}

func yamlScalar(n *yaml.Node) any {
	switch n.ShortTag() {
	case "!!null":
		return nil
	case "!!bool":
		var b bool
		if n.Decode(&b) == nil {
			return b
		}
	case "!!int":
		var i int64
		if n.Decode(&i) == nil {
			return float64(i)
		}
		var u uint64
		if n.Decode(&u) == nil {
			return float64(u)
		}
		if f, err := strconv.ParseFloat(n.Value, 64); err == nil {
			return f
		}
	case "!!float":
		var f float64
		if n.Decode(&f) == nil {
			return f
		}
	}
	return n.Value
}

func fromTOML(v any) any {
	switch x := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k] = fromTOML(e)
		}
		return m
	case []map[string]any:
		a := make([]any, len(x))
		for i, e := range x {
			a[i] = fromTOML(e)
		}
		return a
	case []any:
		a := make([]any, len(x))
		for i, e := range x {
			a[i] = fromTOML(e)
		}
		return a
	case int64:
		return float64(x)
	case float64, string, bool:
		return x
	case time.Time:
		return x.Format(time.RFC3339Nano)
	case fmt.Stringer:
		return x.String()
	}
	return fmt.Sprint(v)
}
