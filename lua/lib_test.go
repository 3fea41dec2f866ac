package lua

import (
	"slices"
	"testing"
)

func TestBundledPluginsComeFromTheTree(t *testing.T) {
	got := BundledPlugins()
	for _, want := range []string{"file-log", "ip-restriction", "post-function", "pre-function", "tcp-log"} {
		if !slices.Contains(got, want) {
			t.Errorf("BundledPlugins() = %v; lacks %q", got, want)
		}
	}
	// base_plugin.lua sits in kong/plugins but is a module, not a plugin.
	if slices.Contains(got, "base_plugin") || !slices.IsSorted(got) {
		t.Errorf("BundledPlugins() = %v; want only plugin folders, sorted", got)
	}
}
