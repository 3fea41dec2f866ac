package luaschema

import (
	"errors"
	"strings"
	"testing"
)

func TestDereference(t *testing.T) {
	_, s := loadSource(t, "refs", []byte(`return { name = "refs", fields = { { config = { type = "record", fields = {
		{ http_endpoint = { type = "string", referenceable = true } },
		{ content_type = { type = "string" } },
		{ headers = { type = "map", keys = { type = "string" }, values = { type = "string", referenceable = true } } },
	} } } } }`))
	secrets := map[string]string{"{vault://env/ep}": "http://127.0.0.1:9/log", "{vault://env/auth}": "Bearer t"}
	get := func(ref string) (string, error) {
		if v, ok := secrets[ref]; ok {
			return v, nil
		}
		return "", errors.New("no value found [" + ref + "]")
	}
	config := map[string]any{"http_endpoint": "{vault://env/ep}", "content_type": "{vault://env/ep}",
		"headers": map[string]any{"Authorization": "{vault://env/auth}", "X-Plain": "v"}}
	out, err := s.Dereference(config, get)
	if err != nil {
		t.Fatal(err)
	}
	if out["http_endpoint"] != "http://127.0.0.1:9/log" || out["headers"].(map[string]any)["Authorization"] != "Bearer t" ||
		out["headers"].(map[string]any)["X-Plain"] != "v" {
		t.Errorf("dereferenced config = %v", out)
	}
	if out["content_type"] != "{vault://env/ep}" {
		t.Errorf("content_type, not referenceable, = %v; want the text kept", out["content_type"])
	}
	if config["http_endpoint"] != "{vault://env/ep}" || config["headers"].(map[string]any)["Authorization"] != "{vault://env/auth}" {
		t.Errorf("the input was modified: %v", config)
	}
	plain := map[string]any{"http_endpoint": "http://x/"}
	if got, _ := s.Dereference(plain, get); got["http_endpoint"] != "http://x/" || len(got) != 1 {
		t.Errorf("config without references = %v", got)
	}
	config["headers"].(map[string]any)["Authorization"] = "{vault://env/missing}"
	_, err = s.Dereference(config, get)
	if err == nil || !strings.Contains(err.Error(), "failed to dereference '{vault://env/missing}'") ||
		!strings.Contains(err.Error(), "for field 'config.headers.Authorization'") {
		t.Errorf("error = %v; want the reference and the field named", err)
	}
}
