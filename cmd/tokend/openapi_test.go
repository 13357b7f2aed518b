package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/tokend/tokend/api"
)

// contract checks every request an end-to-end test sends, and every answer
// it gets, against api/openapi.yaml, so the document cannot drift from the
// code:
//
//   - a path and method the document lacks must be answered 404 or 405 (no
//     undocumented endpoint);
//   - a request the document calls invalid must not be answered 2xx (the
//     document is not stricter than the server, beyond what it says in
//     prose: aspnet's property names in any case, applied here);
//   - every answer must be one the document gives for that operation:
//     status, headers, content type and body schema.
type contract struct {
	router routers.Router
	aspnet bool
}

// newContract loads the document with its listeners' servers pointed at the
// instance's ports.
func newContract(t *testing.T, public, admin string, aspnet bool) *contract {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromData(api.OpenAPI)
	if err != nil {
		t.Fatalf("api/openapi.yaml: %v", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("api/openapi.yaml: %v", err)
	}
	point := func(s *openapi3.Server) {
		switch {
		case strings.HasSuffix(s.URL, ":8080"):
			s.URL = public
		case strings.HasSuffix(s.URL, ":8081"):
			s.URL = admin
		default:
			t.Fatalf("api/openapi.yaml: server %s is neither listener", s.URL)
		}
	}
	for _, s := range doc.Servers {
		point(s)
	}
	for _, item := range doc.Paths.Map() {
		for _, s := range item.Servers {
			point(s)
		}
	}
	r, err := gorillamux.NewRouter(doc)
	if err != nil {
		t.Fatalf("api/openapi.yaml: %v", err)
	}
	return &contract{router: r, aspnet: aspnet}
}

var apiOptions = &openapi3filter.Options{
	AuthenticationFunc:    openapi3filter.NoopAuthenticationFunc, // the tests assert the admin token themselves
	IncludeResponseStatus: true,                                  // a status the document does not list is an error
	MultiError:            true,
}

// reporter is what check needs of a *testing.T.
type reporter interface {
	Helper()
	Errorf(format string, args ...any)
}

// recorder is a reporter that only remembers a failure.
type recorder struct{ failed bool }

func (*recorder) Helper()                 {}
func (r *recorder) Errorf(string, ...any) { r.failed = true }

// check validates one exchange; Errorf, not Fatal: callers may be other
// goroutines than the test's.
func (c *contract) check(t reporter, req *http.Request, body []byte, status int, header http.Header, answer []byte) {
	t.Helper()
	req = req.Clone(context.Background())
	req.Body = io.NopCloser(bytes.NewReader(body))
	route, params, err := c.router.FindRoute(req)
	if err != nil {
		if status != http.StatusNotFound && status != http.StatusMethodNotAllowed {
			t.Errorf("openapi: %s %s is not in api/openapi.yaml (%v) but was answered %d", req.Method, req.URL.Path, err, status)
		}
		return
	}
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route, Options: apiOptions}
	if err := openapi3filter.ValidateRequest(context.Background(), in); err != nil && status/100 == 2 {
		if !c.lenient(req, body, in) {
			t.Errorf("openapi: %s %s %s: the document calls the request invalid, the server answered %d: %v",
				req.Method, req.URL.Path, body, status, err)
		}
	}
	in.Request = req.Clone(context.Background()) // the body was read
	in.Request.Body = io.NopCloser(bytes.NewReader(body))
	out := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in, Status: status, Header: header,
		Body: io.NopCloser(bytes.NewReader(answer)), Options: apiOptions,
	}
	if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
		t.Errorf("openapi: %s %s answered %d %s, which api/openapi.yaml does not give: %v",
			req.Method, req.URL.Path, status, answer, err)
	}
}

// lenient applies what the document says in prose: aspnet matches property
// names in any ASCII case. The request is valid if it is once they are
// spelled as the schema does.
func (c *contract) lenient(req *http.Request, body []byte, in *openapi3filter.RequestValidationInput) bool {
	if !c.aspnet {
		return false
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(body, &m) != nil {
		return false
	}
	canon := map[string]json.RawMessage{}
	for k, v := range m {
		switch {
		case strings.EqualFold(k, "Token"):
			k = "Token"
		case strings.EqualFold(k, "RefreshToken"):
			k = "RefreshToken"
		}
		canon[k] = v
	}
	b, _ := json.Marshal(canon)
	retry := *in
	retry.Request = req.Clone(context.Background())
	retry.Request.Body = io.NopCloser(bytes.NewReader(b))
	retry.Request.ContentLength = int64(len(b))
	return openapi3filter.ValidateRequest(context.Background(), &retry) == nil
}

// TestOpenAPIServed: the admin listener serves the embedded document.
func TestOpenAPIServed(t *testing.T) {
	in := start(t, "memory", nil)
	r := in.do(http.MethodGet, in.admin+"/openapi.yaml", "", nil)
	if r.status != 200 || !bytes.Equal(r.raw, api.OpenAPI) || r.header.Get("Content-Type") != "application/yaml" {
		t.Fatalf("GET /openapi.yaml = %d %q, %d bytes", r.status, r.header.Get("Content-Type"), len(r.raw))
	}
	doc, err := openapi3.NewLoader().LoadFromData(r.raw)
	if err != nil || doc.OpenAPIMajorMinor() != "3.1" {
		t.Fatalf("not an OpenAPI 3.1 document: %v", err)
	}
}

// TestOpenAPICatchesDrift: the checks fail for answers the document does
// not give, so a passing suite means something.
func TestOpenAPICatchesDrift(t *testing.T) {
	c := newContract(t, "http://127.0.0.1:1", "http://127.0.0.1:2", false)
	post := func(url, body string) *http.Request {
		req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		return req
	}
	refresh := `{"refreshToken":"a.b.c"}`
	json := http.Header{"Content-Type": {"application/json"}}
	springBody := `{"timestamp":"2025-01-24T15:35:12.456789+09:00","status":401,"error":"Unauthorized","message":"Invalid JWT token"}`
	for _, tc := range []struct {
		name   string
		req    *http.Request
		body   string
		status int
		header http.Header
		answer string
	}{
		{"undocumented status", post("http://127.0.0.1:1/api/auth/refresh", refresh), refresh, 418, json, springBody},
		{"undocumented field", post("http://127.0.0.1:1/api/auth/refresh", refresh), refresh, 401, json,
			strings.Replace(springBody, `"message"`, `"path":"/x","message"`, 1)},
		{"unknown message", post("http://127.0.0.1:1/api/auth/refresh", refresh), refresh, 401, json,
			strings.Replace(springBody, "Invalid JWT token", "Token invalid", 1)},
		{"timestamp without offset", post("http://127.0.0.1:1/api/auth/refresh", refresh), refresh, 401, json,
			strings.Replace(springBody, "+09:00", "Z", 1)},
		{"503 without Retry-After", post("http://127.0.0.1:1/api/auth/refresh", refresh), refresh, 503, json,
			`{"timestamp":"2025-01-24T15:35:12.456789+09:00","status":503,"error":"Service Unavailable","message":"Service temporarily unavailable"}`},
		{"accepted an invalid request", post("http://127.0.0.1:1/api/auth/refresh", `{}`), `{}`, 200, json,
			`{"Token":"a.b.c","RefreshToken":"` + strings.Repeat("A", 86) + `=="}`},
		{"undocumented endpoint", post("http://127.0.0.1:1/api/auth/login", refresh), refresh, 200, json, `{}`},
		{"private key published", func() *http.Request {
			r, _ := http.NewRequest(http.MethodGet, "http://127.0.0.1:1/.well-known/jwks.json", nil)
			return r
		}(), "", 200, json,
			`{"keys":[{"kty":"EC","kid":"k","alg":"ES256","d":"secret"}]}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := &recorder{}
			c.check(rec, tc.req, []byte(tc.body), tc.status, tc.header, []byte(tc.answer))
			if !rec.failed {
				t.Fatal("the contract check let it pass")
			}
		})
	}
	// and a documented exchange passes
	rec := &recorder{}
	c.check(rec, post("http://127.0.0.1:1/api/auth/refresh", refresh), []byte(refresh), 401, json, []byte(springBody))
	if rec.failed {
		t.Fatal("a documented answer failed the check")
	}
}
