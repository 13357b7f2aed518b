package main

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tokend/tokend/internal/tokens/session/redistest"
)

// readmeBlock is one ```sh block of the README and the heading above it.
type readmeBlock struct {
	heading, text string
}

// readmeBlocks returns the README's shell blocks in order.
func readmeBlocks(t *testing.T) []readmeBlock {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var blocks []readmeBlock
	heading, in := "", false
	var cur strings.Builder
	for _, line := range strings.Split(string(b), "\n") {
		switch {
		case in && strings.HasPrefix(line, "```"):
			blocks = append(blocks, readmeBlock{heading, cur.String()})
			cur.Reset()
			in = false
		case in:
			cur.WriteString(line + "\n")
		case line == "```sh":
			in = true
		case strings.HasPrefix(line, "#"):
			heading = strings.TrimSpace(strings.TrimLeft(line, "#"))
		}
	}
	return blocks
}

// serverLine matches a line that starts tokend in the foreground, with the
// settings before it: "TOKEND_X=1 make run" or "... go run ./cmd/tokend".
var serverLine = regexp.MustCompile(`^((?:TOKEND_[A-Z_]+=\S+ )*)(?:make run|go run \./cmd/tokend)\s*(?:#.*)?$`)

// serverEnv is the settings a server line gives.
func serverEnv(line string) map[string]string {
	env := map[string]string{}
	for _, kv := range strings.Fields(serverLine.FindStringSubmatch(line)[1]) {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	return env
}

// walkthrough is what one README section's client block must print: a
// substring of each line, in order, and the status curl -w printed at its
// end ("": a line that is not an answer).
type walkthrough struct {
	want, status []string
}

// walkthroughs are the README's sections whose blocks the test runs
// against a tokend process; the other shell blocks are handled by name in
// TestReadmeWalkthroughs, and a block in no section it knows fails it.
var walkthroughs = map[string]walkthrough{
	"A first session": {
		want:   []string{`"refreshToken":`, `"refreshToken":`, `"message":"Invalid JWT token"`, `"message":"Invalid JWT token"`},
		status: []string{"200", "200", "401", "401"},
	},
	"The aspnet dialect": {want: []string{`"RefreshToken":`}, status: []string{"200"}},
	"Standard OAuth 2.0 and DPoP": {
		want: []string{"", "", `"token_type":"DPoP"`, "signed by another key than the one the session is bound to",
			"a proof signed by it is required", `"token_type":"DPoP"`},
		status: []string{"", "", "200", "400", "400", "200"},
	},
	"A resource server": {want: []string{`"sub":"alice"`, `a Bearer or DPoP token is required`}, status: []string{"200", "401"}},
}

// TestReadmeWalkthroughs runs every shell block of the README as written,
// against a tokend process started as the section's own server line says
// (the README's ports replaced by free ones), and checks what each command
// prints, status codes included. A block the test does not know fails it,
// so a new block comes with its check.
func TestReadmeWalkthroughs(t *testing.T) {
	requireTool(t, "curl", "the walkthroughs use curl")
	bin := buildTokend(t)
	root, _ := filepath.Abs("../..")
	blocks := readmeBlocks(t)
	servers := map[string]map[string]string{} // a section's server line, or the first tokend's
	for _, b := range blocks {
		if lines := strings.Split(strings.TrimSpace(b.text), "\n"); len(lines) == 1 && serverLine.MatchString(lines[0]) {
			servers[b.heading] = serverEnv(lines[0])
		}
	}
	ran := map[string]bool{}
	for _, b := range blocks {
		lines := strings.Split(strings.TrimSpace(b.text), "\n")
		if len(lines) == 1 && serverLine.MatchString(lines[0]) {
			continue // started by the section's client block below
		}
		ran[b.heading] = true
		t.Run(b.heading, func(t *testing.T) {
			switch b.heading {
			case "Quick start":
				quickStart(t, root, bin, b.text)
			case "Real keys and Redis":
				realKeysAndRedis(t, root, bin, b.text)
			default:
				w, ok := walkthroughs[b.heading]
				if !ok {
					t.Fatalf("README section %q has a shell block no test runs:\n%s", b.heading, b.text)
				}
				env, ok := servers[b.heading]
				if !ok {
					env = servers["A first session"] // "with the first tokend running"
				}
				runWalkthrough(t, root, bin, b.heading, b.text, env, w)
			}
		})
	}
	for h := range walkthroughs {
		if !ran[h] {
			t.Errorf("README has no section %q with a shell block any more", h)
		}
	}
}

// runWalkthrough starts tokend with env, runs script with the README's
// ports replaced, and checks each printed line.
func runWalkthrough(t *testing.T, root, bin, heading, script string, env map[string]string, w walkthrough) {
	p := startREADMEProcess(t, bin, env)
	readme := map[string]string{"8080": "8080", "8081": "8081"}
	if a, ok := env["TOKEND_ADDR"]; ok { // the section named its own ports
		readme["8080"] = strings.TrimPrefix(a, ":")
		readme["8081"] = env["TOKEND_ADMIN_ADDR"][strings.LastIndex(env["TOKEND_ADMIN_ADDR"], ":")+1:]
	}
	_, pub, _ := strings.Cut(strings.TrimPrefix(p.public, "http://"), ":")
	_, adm, _ := strings.Cut(strings.TrimPrefix(p.admin, "http://"), ":")
	rs := strconv.Itoa(redistest.FreePort(t))
	var pairs []string
	for _, host := range []string{"localhost:", "127.0.0.1:"} {
		pairs = append(pairs, host+readme["8080"], host+pub, host+readme["8081"], host+adm, host+"9000", host+rs)
	}
	pairs = append(pairs, "go run ./cmd/tokend", bin)
	// the files a walkthrough writes go to a directory of the test's, unless
	// it works on the repository's own (the example)
	dir := t.TempDir()
	if strings.Contains(script, "examples/") {
		dir = root
	}
	out := runScript(t, dir, strings.NewReplacer(pairs...).Replace(script))
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		switch {
		case l == "" || strings.HasPrefix(l, `{"time":`): // a background server's log line
		case statusOnly.MatchString(l) && len(lines) > 0: // after a body that ended in a newline
			lines[len(lines)-1] += l
		default:
			lines = append(lines, l)
		}
	}
	if len(lines) != len(w.want) {
		t.Fatalf("%s printed %d lines; want %d:\n%s", heading, len(lines), len(w.want), out)
	}
	for i, want := range w.want {
		fields := strings.Fields(lines[i])
		if !strings.Contains(lines[i], want) || w.status[i] != "" && (len(fields) == 0 || fields[len(fields)-1] != w.status[i]) {
			t.Errorf("%s, line %d: %s\nwant it to contain %q and end in status %q", heading, i+1, lines[i], want, w.status[i])
		}
	}
}

// statusOnly is a line curl -w ' %{http_code}\n' printed alone.
var statusOnly = regexp.MustCompile(`^ [1-5][0-9][0-9]$`)

// startREADMEProcess starts the tokend binary as a README line does: its
// settings and nothing else (no test secret: make run's ephemeral key).
func startREADMEProcess(t *testing.T, bin string, env map[string]string) *process {
	t.Helper()
	e := map[string]string{"TOKEND_HMAC_SECRET": ""}
	for k, v := range env {
		if k != "TOKEND_ADDR" && k != "TOKEND_ADMIN_ADDR" { // free ports instead
			e[k] = v
		}
	}
	return startProcess(t, bin, e)
}

// runScript runs a README block with bash -eu in dir, in a process group
// of its own that is killed at the end (a background server it started
// included), within two minutes.
func runScript(t *testing.T, dir, script string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-c", "set -eu\n"+script)
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	out, err := cmd.CombinedOutput()
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // anything it left running
	if err != nil {
		t.Fatalf("the block failed: %v\n%s\nscript:\n%s", err, out, script)
	}
	return string(out)
}

// quickStart: make knows both commands (make test itself is what CI runs:
// not again from inside it), and the install block builds a binary that
// prints the release CHANGELOG.md names.
func quickStart(t *testing.T, root, bin, block string) {
	lines := strings.Split(strings.TrimSpace(block), "\n")
	if strings.HasPrefix(lines[0], "make run") {
		for _, target := range []string{"run", "test"} {
			if out, err := exec.Command("make", "-C", root, "-n", target).CombinedOutput(); err != nil {
				t.Fatalf("make -n %s: %v\n%s", target, err, out)
			}
		}
		return
	}
	gobin := t.TempDir()
	script := strings.ReplaceAll(block, "make build", "make build GO="+goCmd(t))
	cmd := exec.Command("bash", "-c", "set -eu\n"+script)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "GOBIN="+gobin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the install block failed: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "tokend "+release) {
		t.Fatalf("bin/tokend version printed %q; want tokend %s", out, release)
	}
	if _, err := os.Stat(filepath.Join(gobin, "tokend")); err != nil {
		t.Fatalf("go install ./cmd/tokend installed nothing: %v", err)
	}
}

// goCmd is the go command running this test.
func goCmd(t *testing.T) string {
	p, err := exec.LookPath("go")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// realKeysAndRedis runs the block up to its server line in a directory of
// the test's (Redis on a free port instead of 6380), starts tokend as that
// line says, refreshes through it, and stops Redis by its pid file.
func realKeysAndRedis(t *testing.T, root, bin, block string) {
	requireTool(t, "redis-server", "the walkthrough starts a redis-server")
	dir := t.TempDir()
	port := strconv.Itoa(redistest.FreePort(t))
	lines := strings.Split(strings.TrimSpace(block), "\n")
	last := lines[len(lines)-1]
	if !serverLine.MatchString(last) {
		t.Fatalf("the block's last line does not start tokend: %q", last)
	}
	t.Cleanup(func() {
		if b, err := os.ReadFile(filepath.Join(dir, "redis.pid")); err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
				_ = syscall.Kill(pid, syscall.SIGTERM)
			}
		}
	})
	script := strings.NewReplacer("6380", port, "go run ./cmd/tokend", bin).Replace(strings.Join(lines[:len(lines)-1], "\n"))
	out := runScript(t, dir, script)
	if !regexp.MustCompile(`"kty":\s*"EC"`).MatchString(out) || regexp.MustCompile(`"d"\s*:`).MatchString(out) {
		t.Fatalf("keys public printed %q; want the public EC key only", out)
	}
	env := serverEnv(strings.ReplaceAll(last, "6380", port))
	env["TOKEND_KEYS_FILE"] = filepath.Join(dir, env["TOKEND_KEYS_FILE"])
	p := startREADMEProcess(t, bin, env)
	access, refresh := p.login("alice")
	if access == "" || refresh == "" {
		t.Fatal("no pair from the session tokend started on Redis")
	}
	if r := p.refresh(refresh); r.status != 200 {
		t.Fatalf("refresh through Redis: %d %s", r.status, r.raw)
	}
	if c, err := net.Dial("tcp", "127.0.0.1:"+port); err != nil {
		t.Fatalf("the README's Redis is not on its port: %v", err)
	} else {
		c.Close()
	}
}
