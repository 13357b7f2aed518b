package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// docs are the documents a user reads, relative to this package.
var docs = []string{"../../README.md", "../../docs/README.md", "../../docs/operations.md", "../../docs/design.md",
	"../../docs/contract-spring.md", "../../docs/contract-aspnet.md"}

var mdLink = regexp.MustCompile(`\]\(([^)#\s]+)(#[^)\s]*)?\)`)

// TestDocs: the documentation stands on its own and follows the code: every
// relative link resolves inside the repository, every setting is in the
// README and in docs/operations.md, every tokend metric a running instance
// exports is in docs/operations.md.
func TestDocs(t *testing.T) {
	text := map[string]string{}
	for _, d := range docs {
		b, err := os.ReadFile(d)
		if err != nil {
			t.Fatal(err)
		}
		text[d] = string(b)
		for _, m := range mdLink.FindAllStringSubmatch(string(b), -1) {
			target := m[1]
			if strings.HasPrefix(target, "http://") || strings.HasPrefix(target, "https://") {
				continue
			}
			path := filepath.Join(filepath.Dir(d), target)
			if rel, _ := filepath.Rel("../..", path); strings.HasPrefix(rel, "..") {
				t.Errorf("%s links %s, outside the repository", d, target)
				continue
			}
			if _, err := os.Stat(path); err != nil {
				t.Errorf("%s links %s, which does not exist", d, target)
			}
		}
		if strings.Contains(string(b), "shared/") {
			t.Errorf("%s refers to shared/, which users do not have", d)
		}
	}
	for _, s := range settings {
		for _, d := range []string{"../../README.md", "../../docs/operations.md"} {
			if !strings.Contains(text[d], "`"+s.env+"`") {
				t.Errorf("%s does not document %s", d, s.env)
			}
		}
	}
	in := start(t, "memory", nil)
	for name := range scrape(t, in) {
		if strings.HasPrefix(name, "tokend_") && !strings.Contains(text["../../docs/operations.md"], "`"+name+"`") {
			t.Errorf("docs/operations.md does not document the metric %s", name)
		}
	}
}
