package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/tokend/tokend/internal/tokens/dpop/prover"
)

// dpopCommand makes a client's DPoP key and signs proofs with it, for
// trying /oauth2/token with curl:
//
//	tokend dpop-proof new [--alg ES256|EdDSA] FILE   a private key (mode 0600); prints its thumbprint
//	tokend dpop-proof thumbprint FILE                 the key's RFC 7638 thumbprint (jkt)
//	tokend dpop-proof FILE --url U [--method M] [--access-token T] [--nonce N]
//	                                                  one proof, on stdout
func dpopCommand(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("tokend dpop-proof", flag.ContinueOnError)
	fs.SetOutput(stderr)
	alg := fs.String("alg", "ES256", "new: ES256 or EdDSA")
	url := fs.String("url", "", "the URL of the request the proof is for (htu), e.g. http://localhost:8080/oauth2/token")
	method := fs.String("method", "POST", "the request's method (htm)")
	access := fs.String("access-token", "", "the access token sent with the proof, to a resource server (ath)")
	nonce := fs.String("nonce", "", "the server's nonce (DPoP-Nonce)")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	switch {
	case len(pos) == 2 && pos[0] == "new":
		k, err := prover.New(*alg)
		if err != nil {
			return err
		}
		b, err := k.MarshalPrivate()
		if err != nil {
			return err
		}
		if err := writeNew(pos[1], append(b, '\n')); err != nil {
			return err
		}
		fmt.Fprintln(stdout, k.Thumbprint())
		return nil
	case len(pos) == 2 && pos[0] == "thumbprint":
		k, err := readProver(pos[1])
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, k.Thumbprint())
		return nil
	case len(pos) == 1:
		if *url == "" {
			return errors.New("--url is required: the URL of the request the proof is for")
		}
		k, err := readProver(pos[0])
		if err != nil {
			return err
		}
		p, err := k.Proof(*method, *url, prover.Options{AccessToken: *access, Nonce: *nonce})
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, p)
		return nil
	}
	return errors.New("usage: tokend dpop-proof new [--alg A] FILE | thumbprint FILE | FILE --url U [--method M] [--access-token T] [--nonce N]")
}

func readProver(path string) (*prover.Key, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return prover.ParsePrivate(b)
}

// writeNew writes a new private file: mode 0600, never over an existing one.
func writeNew(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
