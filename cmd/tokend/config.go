package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tokend/tokend/internal/tokens"
)

// config is every setting of DESIGN §7, parsed and checked.
type config struct {
	Dialect       string
	Addr          string
	AdminAddr     string
	AdminToken    string
	KeysFile      string
	SigningKID    string
	HMACSecret    string
	HMACAlg       string
	RefreshKeys   [][]byte
	Store         string
	RedisAddr     []string
	RedisUsername string
	RedisPassword string
	RedisTLS      bool
	RedisCAFile   string
	RedisCertFile string
	RedisKeyFile  string
	RedisTLSName  string
	RedisSentinel string
	WaitReplicas  int
	MaxInflight   int
	ReadTimeout   time.Duration
	StoreTimeout  time.Duration
	FlushDelay    time.Duration
	DenylistSize  int
	Issuer        string
	Accepted      []string
	Audience      []string
	DialectAud    bool
	AccessTTL     time.Duration
	RefreshTTL    time.Duration
	SessionMax    time.Duration
	ReuseGrace    time.Duration
	LegacyTokens  bool
	DrainTimeout  time.Duration
	LogLevel      string
	PublicURL     string
	Clients       []string
	DPoPAlgs      []string
	DPoPWindow    time.Duration
	DPoPNonce     bool
	DPoPJTIKeys   bool

	// publicURLDefault: TOKEND_PUBLIC_URL was not set, and the issuer is
	// made from this instance's own port.
	publicURLDefault bool
	// formerIssuer is a TOKEND_ISSUER that is not the issuer: accepted on
	// read, and warned about at startup.
	formerIssuer string

	// given are the settings set by flag or environment, secrets redacted,
	// for the start line.
	given []string
}

// setting is one environment variable with its flag and default. A secret
// may come from a file instead (TOKEND_X_FILE, --x-file), is never printed,
// and is logged as [redacted].
type setting struct {
	env, def, help string
	set            func(c *config, v string) error
	secret         bool
}

// boolean reports whether the setting is a switch: its flag may stand alone
// (--dpop-nonce means --dpop-nonce=true), as Go's flag package allows.
func (s setting) boolean() bool { return s.def == "false" || s.def == "true" }

// switchValue is a boolean setting's flag: kept as text, so that an invalid
// --x=maybe is refused by the setting's own parser with its own message.
type switchValue struct{ v *string }

func (f switchValue) String() string {
	if f.v == nil {
		return ""
	}
	return *f.v
}
func (f switchValue) Set(v string) error { *f.v = v; return nil }
func (f switchValue) IsBoolFlag() bool   { return true }

// flagName turns TOKEND_ACCESS_TTL into access-ttl.
func (s setting) flagName() string {
	return strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(s.env, "TOKEND_")), "_", "-")
}

func str(dst func(*config) *string) func(*config, string) error {
	return func(c *config, v string) error { *dst(c) = v; return nil }
}

func oneOf(dst func(*config) *string, allowed ...string) func(*config, string) error {
	return func(c *config, v string) error {
		for _, a := range allowed {
			if v == a {
				*dst(c) = v
				return nil
			}
		}
		return fmt.Errorf("%q is not one of %s", v, strings.Join(allowed, ", "))
	}
}

func boolean(dst func(*config) *bool) func(*config, string) error {
	return func(c *config, v string) error {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("%q is not true or false", v)
		}
		*dst(c) = b
		return nil
	}
}

// list reads a comma-separated list; empty is nil.
func list(dst func(*config) *[]string) func(*config, string) error {
	return func(c *config, v string) error {
		*dst(c) = nil
		for _, item := range strings.Split(v, ",") {
			if item = strings.TrimSpace(item); item != "" {
				*dst(c) = append(*dst(c), item)
			}
		}
		return nil
	}
}

func count(dst func(*config) *int, max int) func(*config, string) error {
	return func(c *config, v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > max {
			return fmt.Errorf("%q is not a count from 0 to %d", v, max)
		}
		*dst(c) = n
		return nil
	}
}

func duration(dst func(*config) *time.Duration, min time.Duration) func(*config, string) error {
	return func(c *config, v string) error {
		d, err := time.ParseDuration(v)
		if err != nil {
			return fmt.Errorf("%q is not a duration (like 30m or 720h)", v)
		}
		if d < min {
			return fmt.Errorf("%s is below the minimum %s", d, min)
		}
		*dst(c) = d
		return nil
	}
}

var settings = []setting{
	{"TOKEND_DIALECT", "spring", "wire contract: spring or aspnet", oneOf(func(c *config) *string { return &c.Dialect }, "spring", "aspnet"), false},
	{"TOKEND_ADDR", ":8080", "public listener", str(func(c *config) *string { return &c.Addr }), false},
	{"TOKEND_ADMIN_ADDR", "127.0.0.1:8081", "admin listener", str(func(c *config) *string { return &c.AdminAddr }), false},
	{"TOKEND_ADMIN_TOKEN", "", "Bearer token the admin listener demands (required off loopback)", str(func(c *config) *string { return &c.AdminToken }), true},
	{"TOKEND_KEYS_FILE", "", "JWKS file of private signing keys", str(func(c *config) *string { return &c.KeysFile }), false},
	{"TOKEND_SIGNING_KID", "", "kid of the key that signs (default: the first)", str(func(c *config) *string { return &c.SigningKID }), false},
	{"TOKEND_HMAC_SECRET", "", "one shared HMAC secret instead of a keys file", str(func(c *config) *string { return &c.HMACSecret }), true},
	{"TOKEND_HMAC_ALG", "HS256", "algorithm of the HMAC secret", oneOf(func(c *config) *string { return &c.HMACAlg }, "HS256", "HS384", "HS512"), false},
	{"TOKEND_REFRESH_KEY", "", "aspnet: MAC keys of opaque refresh tokens, comma-separated, 32+ bytes each, the first makes new tokens (default: derived from the signing keys)", func(c *config, v string) error {
		c.RefreshKeys = nil
		if v == "" {
			return nil
		}
		for _, k := range strings.Split(v, ",") {
			c.RefreshKeys = append(c.RefreshKeys, []byte(k))
		}
		_, err := tokens.NewMACKeys(c.RefreshKeys...)
		return err
	}, true},
	{"TOKEND_STORE", "memory", "session store: memory or redis", oneOf(func(c *config) *string { return &c.Store }, "memory", "redis"), false},
	{"TOKEND_REDIS_ADDR", "127.0.0.1:6379", "Redis addresses, comma-separated (standalone, Cluster seeds, or the sentinels)", func(c *config, v string) error {
		c.RedisAddr = nil
		for _, a := range strings.Split(v, ",") {
			a = strings.TrimSpace(a)
			if _, _, err := net.SplitHostPort(a); err != nil {
				return fmt.Errorf("%q is not host:port", a)
			}
			c.RedisAddr = append(c.RedisAddr, a)
		}
		return nil
	}, false},
	{"TOKEND_REDIS_USERNAME", "", "Redis ACL user (empty: the default user)", str(func(c *config) *string { return &c.RedisUsername }), false},
	{"TOKEND_REDIS_PASSWORD", "", "Redis password (of the ACL user, or requirepass)", str(func(c *config) *string { return &c.RedisPassword }), true},
	{"TOKEND_REDIS_TLS", "false", "TLS to Redis, verified against the system roots (implied by the other TLS settings)", boolean(func(c *config) *bool { return &c.RedisTLS }), false},
	{"TOKEND_REDIS_TLS_CA_FILE", "", "PEM CA certificates that verify Redis instead of the system roots", str(func(c *config) *string { return &c.RedisCAFile }), false},
	{"TOKEND_REDIS_TLS_CERT_FILE", "", "PEM client certificate for mutual TLS (with TOKEND_REDIS_TLS_KEY_FILE)", str(func(c *config) *string { return &c.RedisCertFile }), false},
	{"TOKEND_REDIS_TLS_KEY_FILE", "", "PEM private key of the client certificate", str(func(c *config) *string { return &c.RedisKeyFile }), false},
	{"TOKEND_REDIS_TLS_SERVER_NAME", "", "name Redis' certificate must carry (default: the host of the address)", str(func(c *config) *string { return &c.RedisTLSName }), false},
	{"TOKEND_REDIS_SENTINEL_MASTER", "", "name of the master the sentinels at TOKEND_REDIS_ADDR monitor (empty: no Sentinel)", str(func(c *config) *string { return &c.RedisSentinel }), false},
	{"TOKEND_REDIS_WAIT_REPLICAS", "0", "replicas that must acknowledge each write (WAIT) before it is answered; fewer in time is a 503", count(func(c *config) *int { return &c.WaitReplicas }, 16), false},
	{"TOKEND_MAX_INFLIGHT", "512", "refresh and revoke requests served at once; beyond it the dialect's 503 with Retry-After at once (0: no bound)", count(func(c *config) *int { return &c.MaxInflight }, 1_000_000), false},
	{"TOKEND_READ_TIMEOUT", "10s", "longest a request may take to arrive (headers and body); slower clients are disconnected", duration(func(c *config) *time.Duration { return &c.ReadTimeout }, time.Millisecond), false},
	{"TOKEND_STORE_TIMEOUT", "200ms", "longest wait for the store before answering 503", duration(func(c *config) *time.Duration { return &c.StoreTimeout }, time.Millisecond), false},
	{"TOKEND_REDIS_FLUSH_DELAY", "20us", "how long a write to Redis may wait for concurrent refreshes' commands to go with it (0: at once)", duration(func(c *config) *time.Duration { return &c.FlushDelay }, 0), false},
	{"TOKEND_DENYLIST_SIZE", "1000000", "revocations the local denylist holds per access-token lifetime at a 0.1% false-positive rate (0: no denylist)", count(func(c *config) *int { return &c.DenylistSize }, 1_000_000_000), false},
	{"TOKEND_ISSUER", "", "the issuer: iss of every token and the metadata's issuer, one string (RFC 9068 §2.2); default and only value TOKEND_PUBLIC_URL without a trailing /; a former value set here is accepted on read, with a warning", str(func(c *config) *string { return &c.Issuer }), false},
	{"TOKEND_ACCEPTED_ISSUERS", "tokend", "iss values of tokens issued before an upgrade or a change of issuer, comma-separated: accepted until they expire, never written (tokend wrote \"tokend\" before)", list(func(c *config) *[]string { return &c.Accepted }), false},
	{"TOKEND_AUDIENCE", "", "the resource servers' identifiers, comma-separated: aud of /oauth2/token's access tokens, the first unless the request's resource parameter names another (RFC 8707); empty: the issuer", list(func(c *config) *[]string { return &c.Audience }), false},
	{"TOKEND_DIALECT_AUDIENCE", "false", "the dialect endpoints' access tokens carry aud too (TOKEND_AUDIENCE's first); false keeps them byte-compatible with the old backends'", boolean(func(c *config) *bool { return &c.DialectAud }), false},
	{"TOKEND_ACCESS_TTL", "30m", "access token lifetime", duration(func(c *config) *time.Duration { return &c.AccessTTL }, time.Second), false},
	{"TOKEND_REFRESH_TTL", "720h", "refresh token lifetime", duration(func(c *config) *time.Duration { return &c.RefreshTTL }, time.Second), false},
	{"TOKEND_SESSION_MAX", "2160h", "absolute session lifetime", duration(func(c *config) *time.Duration { return &c.SessionMax }, time.Second), false},
	{"TOKEND_REUSE_GRACE", "10s", "window in which the previous refresh token may be retried", duration(func(c *config) *time.Duration { return &c.ReuseGrace }, 0), false},
	{"TOKEND_LEGACY_TOKENS", "false", "accept the old backend's refresh tokens once", boolean(func(c *config) *bool { return &c.LegacyTokens }), false},
	{"TOKEND_DRAIN_TIMEOUT", "25s", "how long SIGTERM waits for requests in flight", duration(func(c *config) *time.Duration { return &c.DrainTimeout }, 0), false},
	{"TOKEND_PUBLIC_URL", "", "URL clients reach tokend at, behind any load balancer: the OAuth 2.0 issuer and what DPoP proofs name (default: http://localhost and the port of TOKEND_ADDR)", str(func(c *config) *string { return &c.PublicURL }), false},
	{"TOKEND_CLIENTS", "", "OAuth 2.0 public client ids accepted at /oauth2/token, comma-separated (empty: any client_id)", list(func(c *config) *[]string { return &c.Clients }), false},
	{"TOKEND_DPOP_ALGS", "ES256,EdDSA", "DPoP proof algorithms accepted, comma-separated (asymmetric only)", list(func(c *config) *[]string { return &c.DPoPAlgs }), false},
	{"TOKEND_DPOP_WINDOW", "60s", "how far a DPoP proof's iat may be from now, either way; its jti is remembered twice that", duration(func(c *config) *time.Duration { return &c.DPoPWindow }, time.Second), false},
	{"TOKEND_DPOP_JTI_KEYS", "false", "Redis: a key per DPoP proof and session records tokend 0.1.0 reads, as 0.1.0 does: true while any 0.1.0 instance runs (a rolling upgrade), false once none does", boolean(func(c *config) *bool { return &c.DPoPJTIKeys }), false},
	{"TOKEND_DPOP_NONCE", "false", "demand server nonces in DPoP proofs (DPoP-Nonce header, use_dpop_nonce)", boolean(func(c *config) *bool { return &c.DPoPNonce }), false},
	{"TOKEND_LOG_LEVEL", "info", "debug, info, warn or error", oneOf(func(c *config) *string { return &c.LogLevel }, "debug", "info", "warn", "error"), false},
}

// errHelp is returned for --help: usage was printed, nothing is wrong.
var errHelp = flag.ErrHelp

// parseConfig reads settings from flags, then the environment, then the
// defaults; a secret also from the file its _FILE variant names. The error
// names the setting and what is wrong, in one line.
func parseConfig(args []string, getenv func(string) string, usage io.Writer) (config, error) {
	fs := flag.NewFlagSet("tokend", flag.ContinueOnError)
	fs.SetOutput(usage)
	values := make([]*string, len(settings))
	files := make([]*string, len(settings))
	for i, s := range settings {
		if s.boolean() {
			v := orDefault(getenv(s.env), s.def)
			values[i] = &v
			fs.Var(switchValue{&v}, s.flagName(), s.help+" ("+s.env+")")
		} else {
			values[i] = fs.String(s.flagName(), orDefault(getenv(s.env), s.def), s.help+" ("+s.env+")")
		}
		if s.secret {
			files[i] = fs.String(s.flagName()+"-file", getenv(s.env+"_FILE"), "file holding "+s.env+"; one trailing newline is trimmed ("+s.env+"_FILE)")
		}
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return config{}, errHelp
		}
		return config{}, err
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	flagged := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { flagged[f.Name] = true })
	var c config
	for i, s := range settings {
		v := *values[i]
		given := flagged[s.flagName()] || getenv(s.env) != ""
		if files[i] != nil && *files[i] != "" {
			if given {
				return config{}, fmt.Errorf("%s_FILE (--%s-file): set %s or %s_FILE, not both", s.env, s.flagName(), s.env, s.env)
			}
			b, err := os.ReadFile(*files[i])
			if err != nil {
				return config{}, fmt.Errorf("%s_FILE (--%s-file): %w", s.env, s.flagName(), err)
			}
			v, given = trimNewline(string(b)), true
		}
		if err := s.set(&c, v); err != nil {
			return config{}, fmt.Errorf("%s (--%s): %w", s.env, s.flagName(), err)
		}
		if given {
			if s.secret {
				v = "[redacted]"
			}
			c.given = append(c.given, s.env+"="+v)
		}
	}
	if c.PublicURL == "" && validPublicURL(c.Issuer) {
		c.PublicURL = c.Issuer
	}
	if c.PublicURL == "" {
		_, port, _ := net.SplitHostPort(c.Addr)
		c.PublicURL = "http://localhost:" + port
		c.publicURLDefault = true
	}
	// one issuer identifier for the tokens and the metadata (RFC 9068 §2.2,
	// RFC 8414 §3.3); another TOKEND_ISSUER is a former one, still read
	iss := strings.TrimSuffix(c.PublicURL, "/")
	if c.Issuer != "" && c.Issuer != iss && !slices.Contains(c.Accepted, c.Issuer) {
		c.Accepted = append(c.Accepted, c.Issuer)
		c.formerIssuer = c.Issuer
	}
	c.Issuer = iss
	return c, c.check()
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// trimNewline drops the one line ending an editor or `echo` leaves.
func trimNewline(v string) string {
	v = strings.TrimSuffix(v, "\n")
	return strings.TrimSuffix(v, "\r")
}

// check applies the rules that span settings.
func (c config) check() error {
	switch {
	case c.KeysFile != "" && c.HMACSecret != "":
		return errors.New("TOKEND_HMAC_SECRET: set either TOKEND_KEYS_FILE or TOKEND_HMAC_SECRET, not both")
	case c.SigningKID != "" && c.KeysFile == "":
		return errors.New("TOKEND_SIGNING_KID: names a key of TOKEND_KEYS_FILE, which is not set")
	case c.AccessTTL >= c.RefreshTTL:
		return fmt.Errorf("TOKEND_ACCESS_TTL: %s must be shorter than TOKEND_REFRESH_TTL (%s)", c.AccessTTL, c.RefreshTTL)
	case c.ReuseGrace+time.Second > c.AccessTTL:
		// a retry hands back the rotation's access token, whose exp is in
		// whole seconds: it must outlive the grace window
		return fmt.Errorf("TOKEND_REUSE_GRACE: %s must be at least 1s shorter than TOKEND_ACCESS_TTL (%s): a retry hands back the access token of the rotation it retries", c.ReuseGrace, c.AccessTTL)
	case c.ReuseGrace >= c.RefreshTTL:
		return fmt.Errorf("TOKEND_REUSE_GRACE: %s must be shorter than TOKEND_REFRESH_TTL (%s)", c.ReuseGrace, c.RefreshTTL)
	case c.RefreshKeys != nil && c.Dialect != "aspnet":
		return errors.New("TOKEND_REFRESH_KEY: only the aspnet dialect has opaque refresh tokens; unset it or set TOKEND_DIALECT=aspnet")
	case c.LegacyTokens && c.Dialect != "spring":
		return errors.New("TOKEND_LEGACY_TOKENS: only the spring backend's refresh tokens can be verified; the aspnet backend's were rows of its database")
	case c.WaitReplicas > 0 && c.ReuseGrace == 0:
		return errors.New("TOKEND_REDIS_WAIT_REPLICAS: needs TOKEND_REUSE_GRACE above 0: a refresh whose answer was lost is retried with the same token, which only the grace window answers")
	case c.RedisCertFile != "" && c.RedisKeyFile == "" || c.RedisCertFile == "" && c.RedisKeyFile != "":
		return errors.New("TOKEND_REDIS_TLS_CERT_FILE: mutual TLS needs both TOKEND_REDIS_TLS_CERT_FILE and TOKEND_REDIS_TLS_KEY_FILE")
	case !validPublicURL(c.PublicURL):
		return fmt.Errorf("TOKEND_PUBLIC_URL: %q is not an absolute http or https URL without user, query or fragment", c.PublicURL)
	case slices.ContainsFunc(c.Clients, func(id string) bool { return len(id) > 255 }):
		return errors.New("TOKEND_CLIENTS: a client id is over 255 bytes")
	case c.AdminToken == "" && !loopback(c.AdminAddr):
		return fmt.Errorf("TOKEND_ADMIN_ADDR: %q is not a loopback address; set TOKEND_ADMIN_TOKEN to expose the admin listener", c.AdminAddr)
	}
	return nil
}

// validPublicURL reports whether u can be the base of tokend's OAuth 2.0 URLs.
func validPublicURL(u string) bool {
	p, err := url.Parse(u)
	return err == nil && (p.Scheme == "http" || p.Scheme == "https") && p.Host != "" && p.User == nil &&
		p.RawQuery == "" && p.Fragment == "" && !p.ForceQuery
}

// loopback reports whether addr binds only 127.0.0.0/8, ::1 or localhost.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
