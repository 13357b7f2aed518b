// Package deploy_test runs what deploy/compose.yaml and the Dockerfile
// describe, as processes (containers cannot run where the tests run): Redis
// with the compose file's arguments, two tokend with its environment and the
// image's, their health checks, and Prometheus with deploy/prometheus; then
// checks the alert rules with promtool and that every metric the alerts and
// the Grafana dashboard name exists.
package deploy_test

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"debug/elf"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"go.yaml.in/yaml/v3"

	"github.com/tokend/tokend/internal/tokens/session/redistest"
)

// compose is the part of deploy/compose.yaml the test runs.
type compose struct {
	Services map[string]struct {
		Image       string            `yaml:"image"`
		Command     []string          `yaml:"command"`
		Environment map[string]string `yaml:"environment"`
		Secrets     []string          `yaml:"secrets"`
		Healthcheck struct {
			Test []string `yaml:"test"`
		} `yaml:"healthcheck"`
	} `yaml:"services"`
}

func readCompose(t *testing.T) compose {
	t.Helper()
	b, err := os.ReadFile("compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var c compose
	if err := yaml.Unmarshal(b, &c); err != nil {
		t.Fatalf("compose.yaml: %v", err)
	}
	for _, s := range []string{"redis", "tokend-1", "tokend-2", "prometheus", "grafana"} {
		if _, ok := c.Services[s]; !ok {
			t.Fatalf("compose.yaml has no service %s", s)
		}
	}
	return c
}

// TestComposeImagesPinned: every image but tokend's own names a version, so
// that the stack a team starts is the one these tests ran, not whatever
// "latest" is that day.
func TestComposeImagesPinned(t *testing.T) {
	pinned := regexp.MustCompile(`^[a-z0-9./-]+:v?[0-9]+\.[0-9]+\.[0-9]+$`)
	for name, svc := range readCompose(t).Services {
		if svc.Image == "" || svc.Image == "tokend:dev" {
			continue
		}
		if !pinned.MatchString(svc.Image) {
			t.Errorf("service %s: image %q names no exact version (want name:MAJOR.MINOR.PATCH)", name, svc.Image)
		}
	}
}

// image is what the Dockerfile sets: environment and health check.
type image struct {
	env         map[string]string
	healthcheck []string
	user        string
}

func readDockerfile(t *testing.T) image {
	t.Helper()
	f, err := os.Open("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	im := image{env: map[string]string{}}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "ENV "):
			for _, kv := range strings.Fields(strings.TrimPrefix(line, "ENV ")) {
				k, v, _ := strings.Cut(kv, "=")
				im.env[k] = v
			}
		case strings.HasPrefix(line, "HEALTHCHECK "):
			_, cmd, _ := strings.Cut(line, " CMD ")
			if err := json.Unmarshal([]byte(cmd), &im.healthcheck); err != nil {
				t.Fatalf("Dockerfile HEALTHCHECK: %v", err)
			}
		case strings.HasPrefix(line, "USER "):
			im.user = strings.TrimPrefix(line, "USER ")
		}
	}
	if im.user == "" || strings.HasPrefix(im.user, "0") || im.healthcheck == nil {
		t.Fatalf("Dockerfile: user %q (must not be root), health check %q", im.user, im.healthcheck)
	}
	return im
}

// tokendBinary builds the binary once, as make rootfs does: static.
var tokendBinary = sync.OnceValues(func() (string, error) {
	var err error
	if binDir, err = os.MkdirTemp("", "tokend-deploy-test"); err != nil {
		return "", err
	}
	bin := filepath.Join(binDir, "tokend")
	cmd := exec.Command("go", "build", "-trimpath", "-o", bin, "../cmd/tokend")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
})

var binDir string // removed when the tests end

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

func buildTokend(t *testing.T) string {
	t.Helper()
	bin, err := tokendBinary()
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

func freeAddr(t *testing.T) string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(redistest.FreePort(t)))
}

// proc runs a command until the test ends (SIGTERM, then it must exit).
func proc(t *testing.T, name string, env []string, args ...string) {
	t.Helper()
	logs := &syncBuffer{}
	cmd := exec.Command(name, args...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = logs, logs
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-done
			t.Errorf("%s (pid %d) did not stop within 30s of SIGTERM", name, cmd.Process.Pid)
		}
		if t.Failed() {
			t.Logf("%s log:\n%s", filepath.Base(name), logs.String())
		}
	})
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// waitFor polls ok for up to d.
func waitFor(t *testing.T, d time.Duration, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(d); !ok(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, d)
		}
	}
}

var client = &http.Client{Timeout: 5 * time.Second}

func call(t *testing.T, method, url, token, body string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// TestCompose: the deployment of deploy/compose.yaml works, as processes.
func TestCompose(t *testing.T) {
	for _, tool := range []string{"redis-server", "promtool", "prometheus"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is not installed: run make test (it installs redis-server and prometheus with apt-get)", tool)
		}
	}
	c, im := readCompose(t), readDockerfile(t)
	bin := buildTokend(t)
	dir := t.TempDir()

	// The secrets, made as compose.yaml's header says.
	secrets := map[string]string{"keys.jwks": filepath.Join(dir, "keys.jwks"), "admin_token": filepath.Join(dir, "admin_token")}
	if out, err := exec.Command(bin, "keys", "new", "--alg", "ES256", secrets["keys.jwks"]).CombinedOutput(); err != nil {
		t.Fatalf("tokend keys new: %v\n%s", err, out)
	}
	raw := make([]byte, 32)
	rand.Read(raw)
	adminToken := base64.StdEncoding.EncodeToString(raw)
	os.WriteFile(secrets["admin_token"], []byte(adminToken+"\n"), 0o644)

	// Redis with the compose file's arguments; its directory is the test's.
	args := slices.Clone(c.Services["redis"].Command[1:])
	if i := slices.Index(args, "--dir"); i >= 0 {
		args = slices.Delete(args, i, i+2)
	}
	redis := redistest.StartWith(t, redistest.Config{Args: args})
	if got := redis.Do(t, "CONFIG", "GET", "appendonly"); !strings.Contains(got, "yes") {
		t.Fatalf("compose's Redis has no AOF: %q", got)
	}

	// Both tokend services: the image's environment, then the service's;
	// the compose network's names and secret paths mapped to this machine.
	type instance struct{ public, admin string }
	var instances []instance
	for _, name := range []string{"tokend-1", "tokend-2"} {
		svc := c.Services[name]
		vars := map[string]string{}
		for k, v := range im.env {
			vars[k] = v
		}
		for k, v := range svc.Environment {
			vars[k] = v
		}
		in := instance{public: freeAddr(t), admin: freeAddr(t)}
		if vars["TOKEND_ADDR"] != ":8080" || vars["TOKEND_ADMIN_ADDR"] != ":8081" || vars["TOKEND_REDIS_ADDR"] != "redis:6379" {
			t.Fatalf("%s: listeners %s %s, Redis %s: the test maps :8080, :8081 and redis:6379", name, vars["TOKEND_ADDR"], vars["TOKEND_ADMIN_ADDR"], vars["TOKEND_REDIS_ADDR"])
		}
		vars["TOKEND_ADDR"], vars["TOKEND_ADMIN_ADDR"], vars["TOKEND_REDIS_ADDR"] = in.public, in.admin, redis.Addr
		for k, v := range vars {
			if s, ok := strings.CutPrefix(v, "/run/secrets/"); ok {
				if secrets[s] == "" || !slices.Contains(svc.Secrets, s) {
					t.Fatalf("%s: %s names secret %s, which the service does not mount", name, k, s)
				}
				vars[k] = secrets[s]
			}
		}
		env := []string{"PATH=" + os.Getenv("PATH")}
		for k, v := range vars {
			env = append(env, k+"="+v)
		}
		proc(t, bin, env)
		// the image's and the service's health checks, as the engine runs them
		for _, hc := range [][]string{im.healthcheck, svc.Healthcheck.Test[1:]} {
			hc = slices.Clone(hc)
			hc[0] = bin
			hc[len(hc)-1] = strings.Replace(hc[len(hc)-1], "127.0.0.1:8081", in.admin, 1)
			waitFor(t, 10*time.Second, name+" health check "+strings.Join(hc[1:], " "), func() bool {
				cmd := exec.Command(hc[0], hc[1:]...)
				cmd.Env = env
				return cmd.Run() == nil
			})
		}
		instances = append(instances, in)
	}
	one, two := instances[0], instances[1]

	// A session started on one instance rotates on the other; a revocation
	// through one is refused by both.
	status, body := call(t, http.MethodPost, "http://"+one.admin+"/admin/sessions", adminToken, `{"sub":"alice"}`)
	if status != 200 {
		t.Fatalf("login: %d %s", status, body)
	}
	refresh := func(in instance, rt string) (int, string) {
		status, body := call(t, http.MethodPost, "http://"+in.public+"/api/auth/refresh", "", `{"refreshToken":"`+rt+`"}`)
		var r struct {
			Result struct{ RefreshToken string } `json:"result"`
		}
		json.Unmarshal(body, &r)
		return status, r.Result.RefreshToken
	}
	var r struct {
		Result struct{ RefreshToken string } `json:"result"`
	}
	json.Unmarshal(body, &r)
	status, rt := refresh(two, r.Result.RefreshToken)
	if status != 200 {
		t.Fatalf("refresh on the second instance: %d", status)
	}
	if status, body := call(t, http.MethodPost, "http://"+two.admin+"/admin/subjects/alice/revoke", adminToken, ""); status != 200 {
		t.Fatalf("revoke: %d %s", status, body)
	}
	if status, _ := refresh(one, rt); status != 401 {
		t.Fatalf("refresh of a revoked session: %d; want 401", status)
	}

	// Prometheus with deploy/prometheus: the targets and files mapped.
	promDir := t.TempDir()
	cfg, err := os.ReadFile("prometheus/prometheus.yml")
	if err != nil {
		t.Fatal(err)
	}
	alerts, _ := filepath.Abs("prometheus/alerts.yaml")
	mapped := strings.NewReplacer(
		`"tokend-1:8081"`, `"`+one.admin+`"`, `"tokend-2:8081"`, `"`+two.admin+`"`,
		"/run/secrets/admin_token", secrets["admin_token"], "/etc/prometheus/alerts.yaml", alerts,
		"scrape_interval: 5s", "scrape_interval: 1s", "evaluation_interval: 5s", "evaluation_interval: 1s",
	).Replace(string(cfg))
	cfgFile := filepath.Join(promDir, "prometheus.yml")
	os.WriteFile(cfgFile, []byte(mapped), 0o644)
	if out, err := exec.Command("promtool", "check", "config", cfgFile).CombinedOutput(); err != nil {
		t.Fatalf("promtool check config: %v\n%s", err, out)
	}
	promAddr := freeAddr(t)
	proc(t, "prometheus", os.Environ(), "--config.file="+cfgFile, "--storage.tsdb.path="+filepath.Join(promDir, "data"),
		"--web.listen-address="+promAddr, "--log.level=warn")
	query := func(q string) model.Vector {
		resp, err := client.Get("http://" + promAddr + "/api/v1/query?query=" + url.QueryEscape(q))
		if err != nil {
			return nil
		}
		defer resp.Body.Close()
		var r struct {
			Data struct {
				Result model.Vector `json:"result"`
			} `json:"data"`
		}
		json.NewDecoder(resp.Body).Decode(&r)
		return r.Data.Result
	}
	waitFor(t, 30*time.Second, "Prometheus scraping both instances with the admin token", func() bool {
		v := query(`sum(up{job="tokend"})`)
		return len(v) == 1 && v[0].Value == 2
	})
	waitFor(t, 10*time.Second, "tokend_build_info of both instances in Prometheus", func() bool {
		v := query(`count(tokend_build_info)`)
		return len(v) == 1 && v[0].Value == 2
	})
	waitFor(t, 10*time.Second, "tokend's alert rules loaded and evaluated", func() bool {
		resp, err := client.Get("http://" + promAddr + "/api/v1/rules?type=alert")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var r struct {
			Data struct {
				Groups []struct {
					Name  string
					Rules []struct{ Name, Health string }
				}
			}
		}
		json.NewDecoder(resp.Body).Decode(&r)
		ok := 0
		for _, g := range r.Data.Groups {
			for _, rule := range g.Rules {
				if rule.Health == "ok" {
					ok++
				}
			}
		}
		return ok == 6
	})
	if v := query(`ALERTS{alertstate="firing"}`); len(v) != 0 {
		t.Errorf("alerts firing on a healthy deployment: %v", v)
	}

	// Every metric the alerts and the dashboard name exists on tokend.
	fams := scrape(t, "http://"+one.admin+"/metrics", adminToken)
	for file, names := range namedMetrics(t) {
		for _, name := range names {
			if name == "up" || exists(fams, name) {
				continue
			}
			t.Errorf("%s names %s, which tokend does not export", file, name)
		}
	}
}

// TestAlertRules: promtool's checks and the rules' unit tests.
func TestAlertRules(t *testing.T) {
	if _, err := exec.LookPath("promtool"); err != nil {
		t.Fatal("promtool is not installed: run make test (it installs prometheus with apt-get)")
	}
	for _, args := range [][]string{{"check", "rules", "alerts.yaml"}, {"test", "rules", "alerts_test.yaml"}} {
		cmd := exec.Command("promtool", args...)
		cmd.Dir = "prometheus"
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

func scrape(t *testing.T, url, token string) map[string]*dto.MetricFamily {
	t.Helper()
	status, body := call(t, http.MethodGet, url, token, "")
	if status != 200 {
		t.Fatalf("GET %s: %d", url, status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	return fams
}

// exists reports whether name is a family, or a histogram's series.
func exists(fams map[string]*dto.MetricFamily, name string) bool {
	if _, ok := fams[name]; ok {
		return true
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, suffix); ok {
			if f, ok := fams[base]; ok && f.GetType() == dto.MetricType_HISTOGRAM {
				return true
			}
		}
	}
	return false
}

var metricName = regexp.MustCompile(`\b(tokend_[a-z0-9_]+|process_[a-z0-9_]+|go_[a-z0-9_]+|up)\b`)

// namedMetrics returns the metric names in the PromQL of the alert rules
// and of the dashboard's panels, by file.
func namedMetrics(t *testing.T) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	var rules struct {
		Groups []struct {
			Rules []struct{ Expr string }
		}
	}
	b, _ := os.ReadFile("prometheus/alerts.yaml")
	if err := yaml.Unmarshal(b, &rules); err != nil {
		t.Fatal(err)
	}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			out["alerts.yaml"] = append(out["alerts.yaml"], metricName.FindAllString(r.Expr, -1)...)
		}
	}
	var dash struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	b, _ = os.ReadFile("grafana/tokend.json")
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("grafana/tokend.json: %v", err)
	}
	panels := 0
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			out["tokend.json"] = append(out["tokend.json"], metricName.FindAllString(tg.Expr, -1)...)
			panels++
		}
	}
	if len(out["alerts.yaml"]) < 6 || panels < 10 {
		t.Fatalf("found %d metric names in the alerts and %d queries in the dashboard: the files were not read", len(out["alerts.yaml"]), panels)
	}
	return out
}

// TestStaticBinary: the image's binary, built as make rootfs builds it,
// has no ELF interpreter (it runs FROM scratch) and says its version.
func TestStaticBinary(t *testing.T) {
	bin := buildTokend(t)
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Fatalf("the binary is dynamically linked (program header %v)", p.Type)
		}
	}
	out, err := exec.Command(bin, "version").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "tokend ") {
		t.Fatalf("tokend version: %v %s", err, out)
	}
}
