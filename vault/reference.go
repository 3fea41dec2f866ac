package vault

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// Reference is a parsed vault reference.
type Reference struct {
	Raw      string
	Name     string // a vault name or a vaults entity's prefix
	Resource string
	Key      string // a field of the JSON object the resource holds; "" for the whole value
	Config   map[string]string
	Version  int // 0: none
}

// IsReference reports whether s is written as a vault reference.
func IsReference(s string) bool {
	return strings.HasPrefix(s, "{vault://") && strings.HasSuffix(s, "}")
}

// Parse reads a reference with Kong's error texts. The last path segment
// is the key unless the path ends with "/".
func Parse(ref string) (*Reference, error) {
	if !IsReference(ref) {
		return nil, fmt.Errorf("not a reference [%s]", ref)
	}
	u, err := url.Parse(ref[1 : len(ref)-1])
	if err != nil {
		return nil, fmt.Errorf("reference is not url (%v) [%s]", err, ref)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("reference url is missing host [%s]", ref)
	}
	resource := strings.TrimPrefix(u.Path, "/")
	if resource == "" {
		return nil, fmt.Errorf("reference url has empty path [%s]", ref)
	}
	r := &Reference{Raw: ref, Name: u.Host, Resource: resource}
	if u.Fragment != "" {
		if r.Version, err = strconv.Atoi(u.Fragment); err != nil {
			return nil, fmt.Errorf("reference url has invalid version [%s]", ref)
		}
	}
	if parts := strings.Split(resource, "/"); len(parts) > 1 && parts[len(parts)-1] != "" {
		r.Resource, r.Key = strings.Join(parts[:len(parts)-1], "/"), parts[len(parts)-1]
	} else {
		r.Resource = strings.TrimSuffix(resource, "/")
	}
	if u.RawQuery != "" {
		r.Config = map[string]string{}
		for k, v := range u.Query() {
			r.Config[k] = v[0]
		}
	}
	return r, nil
}
