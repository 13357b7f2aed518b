package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime/debug"
	"strings"
	"time"
)

// usage is what `tokend help` prints.
const usage = `tokend serves refresh-token rotation (settings: tokend --help).

Commands:
  tokend                           serve, configured by TOKEND_* variables or flags
  tokend keys new [--alg A] [--kid K] [--bits N] FILE
                                   write a new private JWKS to FILE (mode 0600; - for stdout)
  tokend keys add FILE [--alg A] [--kid K] [--bits N] [--sign]
                                   add a new key to FILE; --sign makes it the signer
  tokend keys sign FILE --kid K    make key K the signer (it moves first)
  tokend keys remove FILE --kid K [--refresh-ttl D] [--force]
                                   drop key K (not the signer, nor one that stopped
                                   signing less than D, TOKEND_REFRESH_TTL, ago)
  tokend keys public FILE          print the public JWKS of FILE
  tokend dpop-proof new [--alg A] FILE
                                   a client's DPoP key (ES256 or EdDSA) for trying
                                   /oauth2/token; prints its thumbprint (jkt)
  tokend dpop-proof thumbprint FILE
  tokend dpop-proof FILE --url U [--method M] [--access-token T] [--nonce N]
                                   print one DPoP proof signed by FILE's key
  tokend version                   module version, VCS revision, Go version
  tokend healthcheck [--timeout D] [URL]
                                   exit 0 when URL (default http://127.0.0.1:8081/readyz)
                                   answers 2xx, else 1; sends TOKEND_ADMIN_TOKEN(_FILE)
`

// command runs a subcommand when args name one; ok is false when they are
// the server's settings instead.
func command(args []string, getenv func(string) string, stdout, stderr io.Writer) (code int, ok bool) {
	if len(args) == 0 {
		return 0, false
	}
	var err error
	switch args[0] {
	case "keys":
		err = keysCommand(args[1:], getenv, time.Now, stdout, stderr)
	case "dpop-proof":
		err = dpopCommand(args[1:], stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, buildVersion().String())
	case "healthcheck":
		err = healthcheck(args[1:], getenv, stdout, stderr)
	case "help":
		fmt.Fprint(stdout, usage)
	default:
		return 0, false
	}
	switch {
	case err == nil:
		return 0, true
	case errors.Is(err, flag.ErrHelp):
		return 0, true
	case errors.Is(err, errUnhealthy):
		fmt.Fprintf(stderr, "tokend %s: %v\n", args[0], err)
		return 1, true
	}
	fmt.Fprintf(stderr, "tokend %s: %v\n", args[0], err)
	return 2, true
}

// parseInterspersed parses flags that may follow positional arguments
// (`keys add FILE --sign`), which flag.Parse alone stops at.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// release is the newest version CHANGELOG.md names (TestChangelogNamesRelease
// holds them equal). A build from a clean tree reports it; one from a tree
// with changes reports it as release+dirty.
const release = "v0.2.0"

// version is what the build info says of this binary.
type version struct {
	Module, Version, Revision, Time, Go string
	Modified                            bool
}

// buildVersion reads the module version (set by go install m@v) and the VCS
// stamp (set by go build in a checkout) from the binary.
func buildVersion() version {
	v := version{Module: "github.com/tokend/tokend", Version: release, Revision: "unknown"}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return v
	}
	v.Go = bi.GoVersion
	if bi.Main.Path != "" {
		v.Module = bi.Main.Path
	}
	// go install m@vX.Y.Z stamps the tag; a checkout without tags stamps a
	// pseudo-version (v0.0.0-date-hash) or (devel), which say less than release.
	if tagged(bi.Main.Version) {
		v.Version = bi.Main.Version
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			v.Revision = s.Value
		case "vcs.time":
			v.Time = s.Value
		case "vcs.modified":
			v.Modified = s.Value == "true"
		}
	}
	if v.Modified && !tagged(bi.Main.Version) {
		v.Version += "+dirty" // built from a tree with uncommitted changes
	}
	return v
}

// tagged reports whether a module version is a release tag (vX.Y.Z, with
// an optional pre-release), not a pseudo-version or a +dirty build.
func tagged(mv string) bool {
	return strings.HasPrefix(mv, "v") && !strings.Contains(mv, "+") && !pseudo(mv)
}

// pseudo reports whether mv has the form of a Go pseudo-version.
func pseudo(mv string) bool {
	i := strings.LastIndex(mv, "-")
	if i < 0 || len(mv)-i-1 != 12 {
		return false
	}
	rest := mv[:i]
	j := max(strings.LastIndex(rest, "-"), strings.LastIndex(rest, "."))
	return j >= 0 && len(rest)-j-1 == 14
}

func (v version) String() string {
	s := "tokend " + v.Version + " (" + v.Module + ", revision " + v.Revision
	if v.Time != "" {
		s += " of " + v.Time
	}
	return s + ", " + v.Go + ")"
}

var errUnhealthy = errors.New("unhealthy")

// healthcheck probes URL: for a container's HEALTHCHECK, which has no shell
// or curl in a scratch image.
func healthcheck(args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("tokend healthcheck", flag.ContinueOnError)
	fs.SetOutput(stderr)
	timeout := fs.Duration("timeout", 2*time.Second, "how long to wait for the answer")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	url := "http://127.0.0.1:8081/readyz"
	switch len(pos) {
	case 0:
	case 1:
		url = pos[0]
	default:
		return fmt.Errorf("one URL, got %q", pos)
	}
	token := getenv("TOKEND_ADMIN_TOKEN")
	if f := getenv("TOKEND_ADMIN_TOKEN_FILE"); token == "" && f != "" {
		b, err := os.ReadFile(f)
		if err != nil {
			return fmt.Errorf("TOKEND_ADMIN_TOKEN_FILE: %w", err)
		}
		token = trimNewline(string(b))
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("%w: %v", errUnhealthy, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%w: %s answered %d %s", errUnhealthy, url, resp.StatusCode, strings.TrimSpace(string(body)))
	}
	fmt.Fprintf(stdout, "%s: %d %s\n", url, resp.StatusCode, strings.TrimSpace(string(body)))
	return nil
}
