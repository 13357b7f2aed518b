package oauth2

import (
	"errors"
	"net/url"
	"testing"

	"github.com/tokend/tokend/server"
)

func TestReadForm(t *testing.T) {
	names := []string{"grant_type", "refresh_token", "client_id", "scope"}
	for _, tc := range []struct {
		body string
		want formValues
		err  error
	}{
		{"grant_type=refresh_token&refresh_token=a.b.c&client_id=app", formValues{[]byte("refresh_token"), []byte("a.b.c"), []byte("app")}, nil},
		{"scope=openid+orders%3Aread&client_id=my%20app", formValues{nil, nil, []byte("my app"), []byte("openid orders:read")}, nil},
		{"grant%5Ftype=refresh_token", formValues{[]byte("refresh_token")}, nil}, // an escaped name is the name
		{"client_id=&client_id=app", formValues{nil, nil, []byte("app")}, nil},   // empty is not sent
		{"unknown=1&unknown=2&scope", formValues{}, nil},                         // unknown ignored, no '=' is empty
		{"&&client_id=a=b&", formValues{nil, nil, []byte("a=b")}, nil},
		{"", formValues{}, nil},
		{"client_id=a&client_id=b", formValues{}, repeated("client_id")},
		{"client_id=a&client%5Fid=b", formValues{}, repeated("client_id")},
		{"client_id=%zz", formValues{}, ErrForm},
		{"client_id=%4", formValues{}, ErrForm},
		{"%=x", formValues{}, ErrForm},
	} {
		var v formValues
		buf, err := readForm([]byte(tc.body), names, &v, nil)
		if tc.err != nil {
			if err == nil || err.Error() != tc.err.Error() || !errors.Is(err, server.ErrBadRequest) {
				t.Errorf("%q: err %v; want %v", tc.body, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.body, err)
			continue
		}
		for i := range v {
			if string(v[i]) != string(tc.want[i]) || (v[i] == nil) != (tc.want[i] == nil) {
				t.Errorf("%q: %s = %q; want %q", tc.body, names[i], v[i], tc.want[i])
			}
		}
		_ = buf
	}
}

// FuzzForm: the decoder agrees with net/url on every form both accept,
// never panics, and never lets a value alias what a later one overwrote.
func FuzzForm(f *testing.F) {
	for _, s := range []string{"grant_type=refresh_token&refresh_token=a.b.c&client_id=app&scope=openid+x",
		"client_id=%41%42&scope=a%20b", "a=b&a=c", "%", "=&=", "client_id=x&client_id=&token=%2B"} {
		f.Add(s)
	}
	names := []string{"grant_type", "refresh_token", "client_id", "scope", "token"}
	f.Fuzz(func(t *testing.T, body string) {
		var v formValues
		_, err := readForm([]byte(body), names[:4], &v, make([]byte, 0, 3))
		q, qerr := url.ParseQuery(body)
		if err != nil || qerr != nil {
			return // net/url also refuses ';' and other things this accepts; only agreement on success is checked
		}
		for i, n := range names[:4] {
			var want []string
			for _, s := range q[n] {
				if s != "" {
					want = append(want, s)
				}
			}
			switch {
			case len(want) > 1:
				t.Fatalf("%q: %s sent %d times, accepted", body, n, len(want))
			case len(want) == 1 && string(v[i]) != want[0]:
				t.Fatalf("%q: %s = %q; net/url reads %q", body, n, v[i], want[0])
			case len(want) == 0 && v[i] != nil:
				t.Fatalf("%q: %s = %q; net/url reads none", body, n, v[i])
			}
		}
	})
}
