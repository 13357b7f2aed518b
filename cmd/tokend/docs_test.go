package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// docs are the documents a user reads, relative to this package.
var docs = []string{"../../README.md", "../../docs/README.md", "../../docs/operations.md", "../../docs/design.md",
	"../../docs/contract-spring.md", "../../docs/contract-aspnet.md", "../../docs/contract-oauth2.md"}

var mdLink = regexp.MustCompile(`\]\(([^)#\s]+)(#[^)\s]*)?\)`)

// TestDocs: the documentation stands on its own and follows the code: every
// relative link resolves inside the repository, every setting is a row of
// docs/operations.md's settings table with the code's default, every
// tokend metric a running instance exports is in docs/operations.md.
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
	// one settings table, in docs/operations.md, with every setting the code
	// reads and the code's default; the README links to it
	ops := text["../../docs/operations.md"]
	for _, s := range settings {
		row := settingRow(ops, s.env)
		if row == nil {
			t.Errorf("%s: not a row of the settings table in docs/operations.md", s.env)
			continue
		}
		if s.def != "" && row[1] != "`"+s.def+"`" {
			t.Errorf("%s: the settings table gives the default %s; the code's is %q", s.env, row[1], s.def)
		}
		if settingRow(text["../../README.md"], s.env) != nil {
			t.Errorf("README.md has a settings row for %s: the one table is docs/operations.md's", s.env)
		}
	}
	in := start(t, "memory", nil)
	for name := range scrape(t, in) {
		if strings.HasPrefix(name, "tokend_") && !strings.Contains(text["../../docs/operations.md"], "`"+name+"`") {
			t.Errorf("docs/operations.md does not document the metric %s", name)
		}
	}
}

// settingRow finds env's row in a settings table (a row may name a few
// settings): the whole line and its default cell, or nil.
func settingRow(doc, env string) []string {
	return regexp.MustCompile("(?m)^\\| (?:`[A-Z0-9_]+`, )*`" + regexp.QuoteMeta(env) + "`(?:, `[A-Z0-9_]+`)* \\| ?([^|]*?) ?\\|.*$").FindStringSubmatch(doc)
}

// skipper is what requireTool needs of a *testing.T.
type skipper interface {
	Helper()
	Fatalf(format string, args ...any)
	Skipf(format string, args ...any)
}

// requireTool skips the test when tool is not on PATH, except in CI (CI set,
// and not to false or 0), where a missing tool fails it: a suite that skips
// there passes without having run. make test installs the tools.
func requireTool(t skipper, tool, why string) {
	t.Helper()
	if _, err := exec.LookPath(tool); err == nil {
		return
	}
	if ci := os.Getenv("CI"); ci != "" && ci != "false" && ci != "0" {
		t.Fatalf("%s, which is not installed, and CI=%s: install it (make test does)", why, ci)
		return
	}
	t.Skipf("%s, which is not installed", why)
}

// toolT records what requireTool did.
type toolT struct{ fatal, skipped bool }

func (*toolT) Helper()                 {}
func (r *toolT) Fatalf(string, ...any) { r.fatal = true }
func (r *toolT) Skipf(string, ...any)  { r.skipped = true }

// TestRequireTool: a missing tool fails the test under CI and skips it
// elsewhere; a tool on PATH does neither.
func TestRequireTool(t *testing.T) {
	for _, c := range []struct {
		ci, path       string
		fatal, skipped bool
	}{
		{"true", t.TempDir(), true, false},
		{"1", t.TempDir(), true, false},
		{"", t.TempDir(), false, true},
		{"false", t.TempDir(), false, true},
		{"true", os.Getenv("PATH"), false, false},
	} {
		t.Setenv("CI", c.ci)
		t.Setenv("PATH", c.path)
		var r toolT
		requireTool(&r, "sh", "the test uses sh")
		if r.fatal != c.fatal || r.skipped != c.skipped {
			t.Errorf("CI=%q, PATH %s: failed %v, skipped %v; want %v, %v", c.ci, c.path, r.fatal, r.skipped, c.fatal, c.skipped)
		}
	}
}
