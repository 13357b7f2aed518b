// Command mutants breaks tokend on purpose, one named mutation at a time,
// and runs the tests that should notice: a mutation the tests pass is a
// promise no test holds. make mutants runs it and writes bench/MUTANTS.md.
//
// Each mutation replaces one exact piece of one file (it must occur exactly
// once, so a list that no longer matches the code fails loudly as "stale")
// in a copy of the module, builds it, and runs its tests. The outcome is
// caught (a test failed), survived (every test passed), broken (the mutant
// does not build: the mutation itself is wrong) or stale.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

func main() {
	root := flag.String("root", ".", "the module to mutate (it is copied, never changed)")
	only := flag.String("run", "", "only the mutations whose name contains this")
	out := flag.String("o", "", "also write the results as a Markdown table to this file")
	timeout := flag.Duration("timeout", 15*time.Minute, "longest one mutation's tests may take")
	check := flag.Bool("check", false, "only check that every mutation still applies (not stale), run no test")
	flag.Parse()

	if *check {
		bad := 0
		for _, m := range mutations {
			if err := m.applies(*root); err != nil {
				fmt.Printf("stale  %s: %v\n", m.Name, err)
				bad++
			}
		}
		if bad > 0 {
			os.Exit(1)
		}
		fmt.Printf("%d mutations, each applies once\n", len(mutations))
		return
	}

	var rows []string
	survived := 0
	for _, m := range mutations {
		if *only != "" && !strings.Contains(m.Name, *only) {
			continue
		}
		start := time.Now()
		outcome, detail := m.run(*root, *timeout)
		if outcome == "survived" || outcome == "stale" || outcome == "broken" {
			survived++
		}
		took := time.Since(start).Round(time.Second)
		fmt.Printf("%-8s %-60s %6s  %s\n", outcome, m.Name, took, detail)
		tests := strings.ReplaceAll(strings.Join(m.testArgs(), " "), "|", `\|`) // a -run pattern's | is not a cell's end
		rows = append(rows, fmt.Sprintf("| %s | `%s` | %s | `go test %s` | **%s** | %s |", m.Name, m.File, m.Breaks, tests, outcome, detail))
	}
	if *out != "" {
		var b bytes.Buffer
		fmt.Fprintf(&b, "# Mutations\n\n`make mutants` (bench/mutants) on %s: each row breaks tokend on purpose and runs the tests named; "+
			"**caught** means a test failed, as it must.\n\n", time.Now().UTC().Format("2006-01-02"))
		b.WriteString("| mutation | file | what it breaks | tests | outcome | first failure |\n| --- | --- | --- | --- | --- | --- |\n")
		b.WriteString(strings.Join(rows, "\n") + "\n")
		if err := os.WriteFile(*out, b.Bytes(), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
	}
	if survived > 0 {
		fmt.Printf("%d mutations not caught\n", survived)
		os.Exit(1)
	}
}

// applies reports whether m's From occurs exactly once in its file.
func (m mutation) applies(root string) error {
	b, err := os.ReadFile(filepath.Join(root, m.File))
	if err != nil {
		return err
	}
	if n := bytes.Count(b, []byte(m.From)); n != 1 {
		return fmt.Errorf("%q occurs %d times in %s; want once", m.From, n, m.File)
	}
	return nil
}

func (m mutation) testArgs() []string {
	args := []string{"-count=1"}
	if m.Run != "" {
		args = append(args, "-run", m.Run)
	}
	return append(append(args, m.Args...), m.Packages...)
}

// run applies m to a copy of root and runs its tests there.
func (m mutation) run(root string, timeout time.Duration) (outcome, detail string) {
	if err := m.applies(root); err != nil {
		return "stale", err.Error()
	}
	dir, err := os.MkdirTemp("", "tokend-mutant-")
	if err != nil {
		return "broken", err.Error()
	}
	defer os.RemoveAll(dir)
	if err := copyTree(root, dir); err != nil {
		return "broken", err.Error()
	}
	path := filepath.Join(dir, m.File)
	b, _ := os.ReadFile(path)
	if err := os.WriteFile(path, bytes.Replace(b, []byte(m.From), []byte(m.To), 1), 0o644); err != nil {
		return "broken", err.Error()
	}
	if out, err := command(dir, time.Minute*5, "go", append([]string{"vet"}, m.Packages...)...).CombinedOutput(); err != nil {
		return "broken", firstLine(string(out))
	}
	cmd := command(dir, timeout, "go", append([]string{"test"}, m.testArgs()...)...)
	out, err := cmd.CombinedOutput()
	if err == nil {
		return "survived", ""
	}
	return "caught", firstFailure(string(out))
}

func command(dir string, timeout time.Duration, name string, args ...string) *exec.Cmd {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	_ = cancel // the command ends by itself or at the deadline
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOFLAGS=-buildvcs=false")
	return cmd
}

// copyTree copies the module, without .git and build outputs.
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		if d.IsDir() {
			if d.Name() == ".git" || d.Name() == "node_modules" || rel == "bin" {
				return filepath.SkipDir
			}
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		info, _ := d.Info()
		return os.WriteFile(filepath.Join(dst, rel), b, info.Mode().Perm())
	})
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return strings.ReplaceAll(s, "|", "/")
}

// testLine is a test's own message: file.go:line: text (the conformance
// suite's lines are in sessiontest's .go files, not _test.go ones).
var testLine = regexp.MustCompile(`^[\w.-]+\.go:\d+: `)

// firstFailure is the first line that says which test failed and why.
func firstFailure(out string) string {
	for _, l := range strings.Split(out, "\n") {
		l = strings.TrimSpace(l)
		if testLine.MatchString(l) || strings.HasPrefix(l, "panic:") {
			if len(l) > 160 {
				l = l[:160] + "…"
			}
			return strings.ReplaceAll(l, "|", "/")
		}
	}
	return firstLine(out)
}
