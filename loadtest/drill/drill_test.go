package drill

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/tokend/tokend/internal/tokens/session"
	"github.com/tokend/tokend/internal/tokens/session/redistest"
)

var (
	full  = flag.Bool("drill.full", false, "the long form of every drill (make drills); the short form otherwise")
	table = flag.String("drill.table", "", "also write the table of figures to this file")
	bin   string // the tokend binary, built once
)

// timing is how long a drill loads before and after its fault, and how
// many chains it runs.
type timing struct {
	warmup, after time.Duration
	cut           time.Duration // how long the replica's link is cut before the primary dies
	chains        int
	headroom      int64 // bytes the maxmemory drill allows above what Redis uses
}

func timings() timing {
	if *full {
		return timing{warmup: 5 * time.Second, after: 15 * time.Second, cut: 3 * time.Second, chains: 64, headroom: 256 << 10}
	}
	// warmup over 1 s: logins are fsynced (AOF everysec) before the fault.
	// headroom: the maxmemory drill's logins must outgrow it in 3 s on a
	// busy machine (a session and its index take under 400 bytes)
	return timing{warmup: 1500 * time.Millisecond, after: 3 * time.Second, cut: time.Second, chains: 16, headroom: 32 << 10}
}

func TestMain(m *testing.M) {
	flag.Parse()
	dir, err := os.MkdirTemp("", "tokend-drill")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin = filepath.Join(dir, "tokend")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/tokend/tokend/cmd/tokend").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build tokend: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	if len(rows)+len(memoryRows) > 0 {
		report := render()
		fmt.Print(report)
		if *table != "" {
			if err := os.WriteFile(*table, []byte(report), 0o644); err != nil {
				fmt.Fprintln(os.Stderr, err)
				code = 1
			}
		}
	}
	os.Exit(code)
}

// row is one drill's line of the table.
type row struct {
	name string
	res  Result
	lost int64
	// recovery: from the fault to the last answer other than 200
	recovery time.Duration
}

var (
	rowsMu sync.Mutex
	rows   []row
)

func render() string {
	var b strings.Builder
	if len(rows) > 0 {
		b.WriteString("| drill | requests | 200 | 503 | other | recovered after | chains broken | rotations lost | unrecorded 200s |\n")
		b.WriteString("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
		for _, r := range rows {
			fmt.Fprintf(&b, "| %s | %d | %d | %d | %d | %s | %d | %d | %d |\n", r.name, r.res.Requests, r.res.OK,
				r.res.Unavailable, r.res.Other, r.recovery.Round(10*time.Millisecond), r.res.Broken, r.lost, r.res.Unrecorded)
		}
	}
	if len(memoryRows) > 0 {
		b.WriteString("\n| maxmemory-policy | logins 200 | logins 503 | active chains: 200 | 503 | broken | idle sessions | logged out by eviction |\n")
		b.WriteString("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
		for _, r := range memoryRows {
			fmt.Fprintf(&b, "| %s | %d | %d | %d | %d | %d | %d | %d |\n", r.policy, r.logins, r.loginsRefused,
				r.res.OK, r.res.Unavailable, r.res.Broken, r.idle, r.idleLoggedOut)
		}
	}
	return b.String()
}

// tokend is a tokend process of a drill.
type tokend struct {
	public, admin string
	cmd           *exec.Cmd
	logs          *os.File
}

// startTokend runs the binary with env (spring dialect, HMAC secret, free
// ports) and waits until /readyz answers 200.
func startTokend(t *testing.T, env map[string]string) *tokend {
	t.Helper()
	port := func() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(redistest.FreePort(t))) }
	p := &tokend{public: port(), admin: port()}
	logs, err := os.Create(filepath.Join(t.TempDir(), "tokend.log"))
	if err != nil {
		t.Fatal(err)
	}
	p.logs = logs
	p.cmd = exec.Command(bin)
	p.cmd.Env = append(os.Environ(), "TOKEND_ADDR="+p.public, "TOKEND_ADMIN_ADDR="+p.admin,
		"TOKEND_HMAC_SECRET=drill-secret-0123456789abcdef-0123456789", "TOKEND_STORE=redis",
		"TOKEND_PUBLIC_URL=https://tokend.drill.test") // one issuer for every instance, as behind one URL
	for k, v := range env {
		p.cmd.Env = append(p.cmd.Env, k+"="+v)
	}
	p.cmd.Stderr = logs
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if p.cmd != nil {
			_ = p.cmd.Process.Signal(syscall.SIGTERM)
			_ = p.cmd.Wait()
		}
		if t.Failed() {
			b, _ := os.ReadFile(logs.Name())
			t.Logf("tokend %s log, every message counted:\n%s\nits last 4 KiB:\n%s", p.public, summary(b), tail(b, 4096))
		}
	})
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if resp, err := http.Get("http://" + p.admin + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return p
			}
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(logs.Name())
			t.Fatalf("tokend not ready within 10s:\n%s", b)
		}
	}
}

// summary counts a JSON log's lines by message and error: what the last
// few lines of a long drill leave out.
func summary(b []byte) string {
	n := map[string]int{}
	for _, line := range bytes.Split(b, []byte("\n")) {
		var l struct{ Msg, Err string }
		if json.Unmarshal(line, &l) == nil {
			n[strings.TrimSpace(l.Msg+" "+l.Err)]++
		}
	}
	var out []string
	for k, v := range n {
		out = append(out, fmt.Sprintf("%6d %s", v, k))
	}
	sort.Strings(out)
	return strings.Join(out, "\n")
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// kill ends the process at once, as a crash or an OOM kill would.
func (p *tokend) kill() {
	_ = p.cmd.Process.Kill()
	_ = p.cmd.Wait()
	p.cmd = nil
}

// lost reads tokend_rotations_lost_total from the process' metrics.
func (p *tokend) lost(t *testing.T) int64 { return p.metric(t, "tokend_rotations_lost_total ") }

// metric reads one series of the process' metrics, named with its labels
// and the space after them.
func (p *tokend) metric(t *testing.T, series string) int64 {
	t.Helper()
	resp, err := http.Get("http://" + p.admin + "/metrics")
	if err != nil {
		t.Fatalf("metrics: %v", err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), series); ok {
			n, _ := strconv.ParseFloat(v, 64)
			return int64(n)
		}
	}
	t.Fatalf("no %q in /metrics", series)
	return 0
}

// logged is what tokend processes logged of lost rotations and reuse, per
// session id: read from their log files, so that an instance killed during
// the drill counts too.
type logged struct {
	lost  map[string]int64 // rotations lost and advanced past
	reuse map[string]int   // reuse detected (the session revoked)
}

func newLogged() logged { return logged{lost: map[string]int64{}, reuse: map[string]int{}} }

// into adds l to all.
func (l logged) into(all logged) {
	for k, v := range l.lost {
		all.lost[k] += v
	}
	for k, v := range l.reuse {
		all.reuse[k] += v
	}
}

func (l logged) total() (n int64) {
	for _, v := range l.lost {
		n += v
	}
	return n
}

// readLogs adds what p logged (internal/tokens/issuer.go's messages) to l.
func (p *tokend) readLogs(t *testing.T, l logged) {
	t.Helper()
	f, err := os.Open(p.logs.Name())
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var line struct {
			Msg, Sid string
			Lost     int64
		}
		if json.Unmarshal(sc.Bytes(), &line) != nil {
			continue
		}
		switch {
		case strings.HasPrefix(line.Msg, "session record was behind its refresh token"):
			l.lost[line.Sid] += line.Lost
		case strings.HasPrefix(line.Msg, "refresh token reuse detected"):
			l.reuse[line.Sid]++
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("tokend log: %v", err)
	}
}

// recorded reads a session's generation from Redis as an operator would,
// through its own client of the same topology.
func recorded(t *testing.T, opt rueidis.ClientOption) Recorded {
	t.Helper()
	opt.DisableCache = true
	opt.ClientSetInfo = rueidis.DisableClientSetInfo
	c, err := rueidis.NewClient(opt)
	if err != nil {
		t.Fatalf("checker client: %v", err)
	}
	t.Cleanup(c.Close)
	return func(ctx context.Context, sid string) (int64, error) {
		v, err := c.Do(ctx, c.B().Get().Key(session.RecordKey(sid)).Build()).AsBytes()
		switch {
		case rueidis.IsRedisNil(err):
			return 0, fmt.Errorf("record of %s: %w", sid, ErrNoRecord)
		case err != nil:
			return 0, fmt.Errorf("record of %s: %w", sid, err)
		}
		return recordGen(v)
	}
}

// recordGen is the generation of a packed record (record.go's layout).
func recordGen(v []byte) (int64, error) {
	if len(v) < 4 {
		return 0, fmt.Errorf("record of %d bytes", len(v))
	}
	return int64(binary.BigEndian.Uint32(v)), nil
}

// drill is one run: instances of tokend on env, chains of refreshes, and
// fault injected after the warmup (it returns once the fault is over or
// handed to the system to heal, having checked that it had its effect).
type drill struct {
	name      string
	env       map[string]string
	instances int
	check     rueidis.ClientOption
	fault     func(t *testing.T, procs []*tokend, load *Load)
	// durable: no acknowledged rotation may be lost
	durable bool
	// dropsClients: the fault drops clients' connections (a tokend killed);
	// in any other drill an answer other than 200 or 503 is a failure
	dropsClients bool
}

func (d drill) run(t *testing.T) (row, logged) {
	t.Helper()
	tm := timings()
	procs := make([]*tokend, d.instances)
	publics := make([]string, d.instances)
	for i := range procs {
		procs[i] = startTokend(t, d.env)
		publics[i] = "http://" + procs[i].public
	}
	load := &Load{Publics: publics, Admin: "http://" + procs[len(procs)-1].admin, Chains: tm.chains, Recorded: recorded(t, d.check)}
	ctx, cancel := context.WithCancel(context.Background())
	wait, err := load.Start(ctx)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	time.Sleep(tm.warmup)
	faultAt := time.Now()
	d.fault(t, procs, load)
	time.Sleep(tm.after)
	cancel()
	wait()
	res := load.Finish(10 * time.Second)
	r := row{name: d.name, res: res}
	logs := newLogged()
	for _, p := range procs {
		own := newLogged()
		p.readLogs(t, own)
		// the log is where a killed instance's losses are read: it must agree
		// with the metric where both can be read
		if p.cmd != nil {
			if m := p.lost(t); m != own.total() {
				t.Errorf("tokend %s: tokend_rotations_lost_total %d, its log %d", p.public, m, own.total())
			}
		}
		own.into(logs)
	}
	r.lost = logs.total()
	if res.LastFailure.After(faultAt) {
		r.recovery = res.LastFailure.Sub(faultAt)
	}
	rowsMu.Lock()
	rows = append(rows, r)
	rowsMu.Unlock()
	t.Logf("%s: %+v lost=%d recovery=%v", d.name, res, r.lost, r.recovery)
	if res.Broken != 0 {
		t.Errorf("%d honest chains logged out, e.g. %v", res.Broken, res.Examples)
	}
	if res.Unchecked != 0 || res.Missing != 0 {
		t.Errorf("%d 200s the check could not compare with the store, %d whose session had no record", res.Unchecked, res.Missing)
	}
	// per chain: a fault that loses the last rotations costs a chain at most
	// the one 200 whose check saw the loss, which the chain's next refresh
	// heals (a store that saved nothing shows every 200 of every chain)
	switch {
	case d.durable && res.Unrecorded != 0:
		t.Errorf("%d tokens answered 200 that the durable store did not hold", res.Unrecorded)
	case res.MaxUnrecorded > 1 || res.Unhealed != 0 || res.Unrecorded > r.lost:
		t.Errorf("200s the store did not hold: %d in all, up to %d in one chain (at most 1), %d chains ended on one; %d rotations lost and healed",
			res.Unrecorded, res.MaxUnrecorded, res.Unhealed, r.lost)
	}
	if d.durable && r.lost != 0 {
		t.Errorf("%d acknowledged rotations lost; want 0", r.lost)
	}
	// a robbed chain's logout (the replay revoked its session) is expected
	if other := res.Other - int64(res.VictimsLoggedOut); d.dropsClients != (other != 0) {
		t.Errorf("%d answers neither 200 nor 503 (connection errors included) but the robbed chains' logouts; the fault drops clients: %v", other, d.dropsClients)
	}
	if res.OK == 0 || res.Requests-res.OK-res.Unavailable != res.Other {
		t.Errorf("inconsistent counts: %+v", res)
	}
	return r, logs
}

// during waits out a fault of settle+window and checks that it did what it
// is for: after settle (the answers in flight when it began have arrived),
// window without a single 200, and clients that saw the store away.
func during(t *testing.T, load *Load, settle, window time.Duration, what string) {
	t.Helper()
	time.Sleep(settle)
	a := load.Counts()
	time.Sleep(window)
	b := load.Counts()
	if b.OK != a.OK || !saw(a, b) {
		t.Errorf("%s: %d answers 200, %d 503s and %d checks unanswered from %v to %v into the fault; want no 200 and some of the others",
			what, b.OK-a.OK, b.Unavailable-a.Unavailable, b.CheckFailures-a.CheckFailures, settle, settle+window)
	}
}

// saw: between a and b the clients saw the store away, in 503s or in
// checks of their 200s that it did not answer.
func saw(a, b Counts) bool {
	return b.Unavailable > a.Unavailable || b.CheckFailures > a.CheckFailures
}

// unavailable checks that a fault whose length the system decides (a
// failover) was seen by the clients since before it.
func unavailable(t *testing.T, load *Load, before Counts, what string) {
	t.Helper()
	if !saw(before, load.Counts()) {
		t.Errorf("%s: no 503 and no check unanswered since the fault: the clients never saw it", what)
	}
}

func single(addr string) rueidis.ClientOption {
	return rueidis.ClientOption{InitAddress: []string{addr}, ForceSingleClient: true}
}

// TestRedisRestart: redis-server SIGKILLed and started again on its AOF,
// fsynced every second (rotations of the last second may be lost, and are
// healed by the client's next refresh) or at every write (none lost).
func TestRedisRestart(t *testing.T) {
	for _, fsync := range []string{"everysec", "always"} {
		t.Run(fsync, func(t *testing.T) {
			srv := redistest.StartWith(t, redistest.Config{Args: []string{"--appendonly", "yes", "--appendfsync", fsync}})
			drill{
				name: "Redis SIGKILL, restart 1 s later, AOF " + fsync, instances: 1, durable: fsync == "always",
				env:   map[string]string{"TOKEND_REDIS_ADDR": srv.Addr},
				check: single(srv.Addr),
				fault: func(t *testing.T, _ []*tokend, load *Load) {
					run := srv.Info(t, "server", "run_id")
					srv.Kill(syscall.SIGKILL)
					during(t, load, 500*time.Millisecond, 500*time.Millisecond, "Redis killed")
					srv.Start()
					if srv.Info(t, "server", "run_id") == run {
						t.Errorf("redis-server %s has its run id of before the kill: it was not restarted", srv.Addr)
					}
				},
			}.run(t)
		})
	}
}

// TestRedisPause: redis-server stopped (SIGSTOP) for 3 s, as a long fork,
// a swap storm or a VM pause would; nothing is lost.
func TestRedisPause(t *testing.T) {
	srv := redistest.Start(t)
	drill{
		name: "Redis SIGSTOP 3 s, SIGCONT", instances: 1, durable: true,
		env:   map[string]string{"TOKEND_REDIS_ADDR": srv.Addr},
		check: single(srv.Addr),
		fault: func(t *testing.T, _ []*tokend, load *Load) {
			srv.Kill(syscall.SIGSTOP)
			during(t, load, time.Second, 2*time.Second, "Redis stopped")
			srv.Kill(syscall.SIGCONT)
		},
	}.run(t)
}

// TestSentinelFailover: a primary, two replicas, three sentinels; the
// primary is SIGKILLed and a replica promoted. Without WAIT the rotations
// the replicas had not received are lost (and healed); with WAIT 1 none.
func TestSentinelFailover(t *testing.T) {
	for _, wait := range []int{0, 1} {
		t.Run(fmt.Sprint("wait", wait), func(t *testing.T) {
			primary := redistest.Start(t)
			replicas := []*redistest.Server{
				redistest.StartReplica(t, primary, redistest.Config{}),
				redistest.StartReplica(t, primary, redistest.Config{}),
			}
			ss := redistest.StartSentinels(t, primary, 3)
			env := map[string]string{"TOKEND_REDIS_ADDR": strings.Join(ss.Addrs(), ","),
				"TOKEND_REDIS_SENTINEL_MASTER": ss.Master, "TOKEND_REDIS_WAIT_REPLICAS": strconv.Itoa(wait)}
			if wait > 0 {
				// a rotation in flight when the primary dies reaches the
				// promoted replica marked unacknowledged; the client's retry is
				// answered once a replica of the new primary acknowledges
				// again (up to 16 s here under the race detector), and is no
				// reuse however long that takes: a grace of 1 s, shorter
				// than any failover, proves it
				env["TOKEND_REUSE_GRACE"] = "1s"
			}
			drill{
				name: fmt.Sprintf("Sentinel failover (primary SIGKILL), WAIT %d", wait), instances: 1, durable: wait > 0,
				env:   env,
				check: rueidis.ClientOption{InitAddress: ss.Addrs(), Sentinel: rueidis.SentinelOption{MasterSet: ss.Master}},
				fault: func(t *testing.T, _ []*tokend, load *Load) {
					old, before := ss.Primary(t), load.Counts()
					primary.Kill(syscall.SIGKILL)
					promoted(t, ss.WaitFailover(t, old, 30*time.Second), replicas...)
					unavailable(t, load, before, "primary killed")
				},
			}.run(t)
		})
	}
}

// promoted checks that the server at addr, one of replicas, is a master
// now: the failover happened.
func promoted(t *testing.T, addr string, replicas ...*redistest.Server) {
	t.Helper()
	for _, r := range replicas {
		if r.Addr == addr {
			if role := r.Info(t, "replication", "role"); role != "master" {
				t.Errorf("the new primary %s is a %s", addr, role)
			}
			return
		}
	}
	t.Errorf("the new primary %s is none of the replicas", addr)
}

// TestReplicaDown: WAIT 1 with the only replica stopped for three grace
// windows: every refresh is a 503 while it is away (its rotation left
// marked unacknowledged on the primary), and nobody is logged out for
// retrying past the grace, also on a CPU-starved machine (nothing has to
// be sent after a failure for that).
func TestReplicaDown(t *testing.T) {
	primary := redistest.Start(t)
	replica := redistest.StartReplica(t, primary, redistest.Config{})
	const grace = time.Second
	drill{
		name: "the only replica SIGSTOP 3 s (3 grace windows), WAIT 1", instances: 1, durable: true,
		env: map[string]string{"TOKEND_REDIS_ADDR": primary.Addr, "TOKEND_REDIS_WAIT_REPLICAS": "1",
			"TOKEND_REUSE_GRACE": grace.String()},
		check: single(primary.Addr),
		fault: func(t *testing.T, _ []*tokend, load *Load) {
			replica.Kill(syscall.SIGSTOP)
			// a 200 while no replica can acknowledge would be a rotation a
			// failover could lose: WAIT was not sent, or not heeded
			during(t, load, grace, 2*grace, "the only replica stopped under WAIT 1")
			replica.Kill(syscall.SIGCONT)
		},
	}.run(t)
}

// TestReplicaLinkCut: the only replica's replication link is cut (a proxy
// on it hangs up), the chains go on rotating on the primary alone, then the
// primary is SIGKILLed and the sentinel promotes the replica, which missed
// every rotation since the cut. Each honest chain's next refresh presents a
// token ahead of its record and advances past the lost rotations: nobody is
// logged out. Thieves then replay tokens copied before the cut and during
// it (of rotations the new primary never saw): reuse, refused, and the
// session revoked.
func TestReplicaLinkCut(t *testing.T) {
	tm := timings()
	primary := redistest.Start(t)
	replica, link := redistest.StartReplicaThrough(t, primary, redistest.Config{})
	// one sentinel (no split vote, retried only after twice the failover
	// timeout), whose failover timeout outlasts the drill: after it the
	// sentinel would point the replica at the primary, around the proxy
	ss := redistest.StartSentinelsWith(t, primary, redistest.SentinelConfig{N: 1, Quorum: 1, FailoverTimeout: 10 * time.Minute})
	victims := max(2, tm.chains/8) // the first half robbed before the cut, the rest during it
	type theft struct {
		chain int
		token string
		gen   int64
	}
	var thefts []theft
	sids := make([]string, tm.chains)
	r, logs := drill{
		name: fmt.Sprintf("the only replica's link cut %v, then primary SIGKILL (Sentinel), WAIT 0; %d replays", tm.cut, victims), instances: 1,
		env:   map[string]string{"TOKEND_REDIS_ADDR": strings.Join(ss.Addrs(), ","), "TOKEND_REDIS_SENTINEL_MASTER": ss.Master},
		check: rueidis.ClientOption{InitAddress: ss.Addrs(), Sentinel: rueidis.SentinelOption{MasterSet: ss.Master}},
		fault: func(t *testing.T, _ []*tokend, load *Load) {
			steal := func(from, to int) {
				for i := from; i < to; i++ {
					tok, gen := load.Steal(i)
					thefts = append(thefts, theft{i, tok, gen})
				}
			}
			// copies of tokens that are two rotations old when the link is cut
			steal(0, victims/2)
			waitRotations(t, load, 0, victims/2, 2)
			link.Cut()
			time.Sleep(tm.cut / 2)
			// copies of tokens of rotations the replica misses, one rotation
			// old before the primary dies
			steal(victims/2, victims)
			waitRotations(t, load, victims/2, victims, 1)
			time.Sleep(tm.cut / 2)
			// the fault's effect: the replica holds every chain behind where
			// the chain is
			for i := range tm.chains {
				gen, _ := load.Gen(i)
				sids[i] = load.Sid(i)
				if g, err := recordGen([]byte(replica.Do(t, "GET", session.RecordKey(sids[i])))); err != nil || g >= gen {
					t.Errorf("chain %d is at %d, the replica at %d (%v): the cut link did not make it miss rotations", i, gen, g, err)
				}
			}
			old, before := ss.Primary(t), load.Counts()
			primary.Kill(syscall.SIGKILL)
			promoted(t, ss.WaitFailover(t, old, 30*time.Second), replica)
			unavailable(t, load, before, "primary killed")
			// the victims' honest clients refresh on the new primary (past
			// the lost rotations), then the thieves replay their copies
			waitRotations(t, load, 0, victims, 1)
			for _, th := range thefts {
				if status, body, err := load.Present(th.token); err != nil || status != 401 {
					t.Errorf("replay of chain %d's token of generation %d: %d %s %v; want 401", th.chain, th.gen, status, body, err)
				}
			}
		},
	}.run(t)
	if r.res.Victims != victims || r.res.VictimsLoggedOut != victims {
		t.Errorf("%d of %d robbed sessions ended (%d robbed): a replay must revoke its session", r.res.VictimsLoggedOut, victims, r.res.Victims)
	}
	for i, sid := range sids {
		switch {
		case i < victims && logs.reuse[sid] == 0:
			t.Errorf("chain %d: no reuse logged for its replayed token", i)
		case i >= victims && logs.reuse[sid] != 0:
			t.Errorf("chain %d: an honest chain taken for reuse", i)
		case i >= victims && logs.lost[sid] == 0:
			t.Errorf("chain %d: no lost rotation logged: the failover lost none of its rotations", i)
		}
	}
}

// waitRotations waits until chains [from, to) have each been answered n
// more 200s (or were logged out, which the drill then reports).
func waitRotations(t *testing.T, load *Load, from, to int, n int64) {
	t.Helper()
	want := make([]int64, to)
	for i := from; i < to; i++ {
		_, oks := load.Gen(i)
		want[i] = oks + n
	}
	deadline := time.Now().Add(30 * time.Second)
	for i := from; i < to; i++ {
		for {
			if _, oks := load.Gen(i); oks >= want[i] {
				break
			}
			if load.Out(i) {
				t.Errorf("chain %d logged out while waiting for its next 200", i)
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("chain %d not answered %d more 200s within 30s", i, n)
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// TestClusterFailover: a Cluster of 3 masters with a replica each; one
// master is SIGKILLed and its replica takes its slots.
func TestClusterFailover(t *testing.T) {
	c := redistest.StartClusterWith(t, 3, 1, redistest.Config{})
	drill{
		name: "Cluster 3+3, one master SIGKILL", instances: 1,
		env:   map[string]string{"TOKEND_REDIS_ADDR": strings.Join(c.Addrs(), ",")},
		check: rueidis.ClientOption{InitAddress: c.Addrs()},
		fault: func(t *testing.T, _ []*tokend, load *Load) {
			m, before := c.Master(t), load.Counts()
			r := c.ReplicaOf(t, m)
			m.Kill(syscall.SIGKILL)
			c.WaitOK(t, 30*time.Second)
			promoted(t, r.Addr, r)
			unavailable(t, load, before, "master killed")
		},
	}.run(t)
}

// TestTokendKilled: two tokend instances share Redis; one is SIGKILLed and
// its clients move to the other (as a load balancer would send them).
func TestTokendKilled(t *testing.T) {
	srv := redistest.Start(t)
	drill{
		name: "one of two tokend SIGKILL", instances: 2, durable: true, dropsClients: true,
		env:   map[string]string{"TOKEND_REDIS_ADDR": srv.Addr},
		check: single(srv.Addr),
		fault: func(t *testing.T, procs []*tokend, _ *Load) {
			if n := procs[0].metric(t, `tokend_refresh_outcomes_total{outcome="advanced"} `); n == 0 {
				t.Errorf("the instance to kill advanced no session: it had no clients")
			}
			procs[0].kill()
		},
	}.run(t)
}

// memoryRow is one eviction policy's line of the maxmemory table.
type memoryRow struct {
	policy                       string
	res                          Result
	logins, loginsRefused        int64
	idle, idleLoggedOut, idle503 int
}

var memoryRows []memoryRow

// TestRedisMaxmemory: Redis reaches maxmemory while chains refresh and new
// users log in, under each eviction policy; then the operator raises the
// limit. noeviction refuses writes (503: logins and refreshes wait, nobody
// is logged out); an evicting policy keeps answering by dropping sessions,
// which logs their users out (and can drop a subject's index, which a
// later revocation of that subject then misses).
func TestRedisMaxmemory(t *testing.T) {
	tm := timings()
	for _, policy := range []string{"noeviction", "allkeys-lru", "volatile-ttl"} {
		t.Run(policy, func(t *testing.T) {
			srv := redistest.Start(t)
			p := startTokend(t, map[string]string{"TOKEND_REDIS_ADDR": srv.Addr})
			load := &Load{Publics: []string{"http://" + p.public}, Admin: "http://" + p.admin, Chains: tm.chains, Recorded: recorded(t, single(srv.Addr))}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			wait, err := load.Start(ctx)
			if err != nil {
				t.Fatal(err)
			}
			time.Sleep(tm.warmup)
			used := infoField(t, srv, "memory", "used_memory")
			srv.Do(t, "CONFIG", "SET", "maxmemory-policy", policy)
			srv.Do(t, "CONFIG", "SET", "maxmemory", strconv.FormatInt(used+tm.headroom, 10))

			// new users log in until the run ends: more than the headroom holds
			idle := &Load{Publics: load.Publics, Admin: load.Admin, Client: load.Client}
			var logins, refused int64
			var tokens []*chain
			for end := time.Now().Add(tm.after); time.Now().Before(end); {
				c := &chain{sub: fmt.Sprintf("idle-%d", logins+refused)}
				status, body, err := idle.post(idle.Admin+"/admin/sessions", `{"sub":"`+c.sub+`"}`)
				switch {
				case err == nil && status == 200 && c.take(body) == nil:
					logins++
					tokens = append(tokens, c)
				case status == 503:
					refused++
					time.Sleep(time.Millisecond)
				default:
					t.Fatalf("login: %d %s %v", status, body, err)
				}
			}
			cancel()
			wait()
			srv.Do(t, "CONFIG", "SET", "maxmemory", "0") // the operator raises the limit
			res := load.Finish(10 * time.Second)
			r := memoryRow{policy: policy, res: res, logins: logins, loginsRefused: refused, idle: len(tokens)}
			for _, c := range tokens {
				switch status, _, _ := idle.post(idle.Publics[0]+"/api/auth/refresh", `{"refreshToken":"`+c.token+`"}`); status {
				case 200:
				case 503:
					r.idle503++
				default:
					r.idleLoggedOut++
				}
			}
			rowsMu.Lock()
			memoryRows = append(memoryRows, r)
			rowsMu.Unlock()
			t.Logf("%+v", r)
			if res.Unrecorded != 0 || res.Unchecked != 0 {
				t.Errorf("%d tokens answered 200 that the store did not hold, %d the check could not compare", res.Unrecorded, res.Unchecked)
			}
			// an evicting policy may drop a record right after its 200
			if policy == "noeviction" && res.Missing != 0 {
				t.Errorf("%d tokens answered 200 whose session had no record under noeviction", res.Missing)
			}
			if policy == "noeviction" && (res.Broken != 0 || r.idleLoggedOut != 0) {
				t.Errorf("noeviction logged users out: %d chains (%v), %d idle sessions", res.Broken, res.Examples, r.idleLoggedOut)
			}
			if policy == "noeviction" && refused == 0 {
				t.Errorf("no login was refused: the drill never filled Redis")
			}
			// the fault happened when Redis evicted keys: idle sessions, or
			// (when memory not held by keys, such as a starved machine's
			// client buffers, made Redis refuse the logins) active ones
			if evicted := infoField(t, srv, "stats", "evicted_keys"); policy != "noeviction" && evicted == 0 {
				t.Errorf("%s evicted no key: the drill never filled Redis", policy)
			}
		})
	}
}

// infoField reads an integer field of an INFO section.
func infoField(t *testing.T, s *redistest.Server, section, name string) int64 {
	t.Helper()
	for _, line := range strings.Split(s.Do(t, "INFO", section), "\r\n") {
		if v, ok := strings.CutPrefix(line, name+":"); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				t.Fatalf("INFO %s: %q", section, line)
			}
			return n
		}
	}
	t.Fatalf("INFO %s has no %s", section, name)
	return 0
}
