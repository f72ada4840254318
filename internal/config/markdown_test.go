package config

import (
	"bytes"
	"os"
	"strings"
	"testing"
)

// TestConfigurationReferenceIsCurrent fails when docs/configuration.md no longer
// matches the Config struct: regenerate it with `go generate ./internal/config`.
func TestConfigurationReferenceIsCurrent(t *testing.T) {
	t.Parallel()
	var want bytes.Buffer
	if err := Markdown(&want); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile("../../docs/configuration.md")
	if err != nil {
		t.Fatalf("read the committed reference: %v", err)
	}
	if !bytes.Equal(got, want.Bytes()) {
		t.Fatalf("docs/configuration.md is stale: run `go generate ./internal/config` and commit it")
	}
	for _, v := range Variables() {
		if !strings.Contains(want.String(), "| `"+v.Name+"`") {
			t.Errorf("%s missing from the reference", v.Name)
		}
		if v.Doc == "" {
			t.Errorf("%s has no doc tag: the reference would not say what it means", v.Name)
		}
	}
}
