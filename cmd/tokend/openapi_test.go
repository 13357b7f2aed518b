package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
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
//     status, headers, content type and body schema, in the instance's
//     dialect only (dialectOnly).
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
	dialect := "spring"
	if aspnet {
		dialect = "aspnet"
	}
	dialectOnly(t, doc, dialect)
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

// dialectOnly narrows doc to what an instance of dialect gives and takes:
// an anyOf of a spring and an aspnet schema becomes the dialect's own, and
// a response marked x-dialect for another dialect is dropped. Both shapes
// are documented, so without this an instance answering (or accepting) the
// other dialect's shape would pass.
func dialectOnly(t *testing.T, doc *openapi3.T, dialect string) {
	t.Helper()
	own := map[string]string{"spring": "Spring", "aspnet": "Aspnet"}[dialect]
	seen := map[*openapi3.Schema]bool{}
	var walk func(sr *openapi3.SchemaRef)
	walk = func(sr *openapi3.SchemaRef) {
		if sr == nil || sr.Value == nil || seen[sr.Value] {
			return
		}
		s := sr.Value
		seen[s] = true
		s.AnyOf = narrow(t, s.AnyOf, own)
		s.OneOf = narrow(t, s.OneOf, own)
		for _, list := range []openapi3.SchemaRefs{s.AnyOf, s.OneOf, s.AllOf} {
			for _, sub := range list {
				walk(sub)
			}
		}
		for _, sub := range s.Properties {
			walk(sub)
		}
		walk(s.Items)
		walk(s.Not)
		walk(s.AdditionalProperties.Schema)
	}
	content := func(c openapi3.Content) {
		for _, mt := range c {
			walk(mt.Schema)
		}
	}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			if op.RequestBody != nil && op.RequestBody.Value != nil {
				content(op.RequestBody.Value.Content)
			}
			for status, rr := range op.Responses.Map() {
				if d, marked := rr.Extensions["x-dialect"]; marked {
					if d != "spring" && d != "aspnet" {
						t.Fatalf("api/openapi.yaml: %s %s %s: x-dialect %v is not spring or aspnet", method, path, status, d)
					}
					if d != dialect {
						op.Responses.Delete(status)
						continue
					}
				}
				if rr.Value != nil {
					content(rr.Value.Content)
				}
			}
		}
	}
	for _, sr := range doc.Components.Schemas {
		walk(sr)
	}
}

// narrow keeps, of a list naming both dialects' schemas (SpringX, AspnetY),
// the one of the dialect whose schemas are named own; a list naming neither
// stays as it is.
func narrow(t *testing.T, list openapi3.SchemaRefs, own string) openapi3.SchemaRefs {
	t.Helper()
	var mine, theirs, others int
	var kept openapi3.SchemaRefs
	for _, sr := range list {
		name := sr.Ref[strings.LastIndex(sr.Ref, "/")+1:]
		switch {
		case sr.Ref == "":
			others++
		case name == "OAuth2Error":
			// the HTTP layer's refusals on /oauth2/*: RFC 6749's shape or
			// the dialect's, by how much of the request it read
			kept = append(kept, sr)
		case strings.HasPrefix(name, own):
			mine++
			kept = append(kept, sr)
		case strings.HasPrefix(name, "Spring"), strings.HasPrefix(name, "Aspnet"):
			theirs++
		default:
			others++
		}
	}
	if mine+theirs == 0 {
		return list
	}
	if mine != 1 || theirs == 0 || others != 0 {
		t.Fatalf("api/openapi.yaml: a choice of %d schemas of the instance's dialect, %d of the other's and %d of neither; want one of each dialect", mine, theirs, others)
	}
	return kept
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

// checked is an HTTP client whose every exchange with in goes through the
// contract check, for clients a test does not drive through do
// (golang.org/x/oauth2).
func (in *instance) checked() *http.Client {
	return &http.Client{Timeout: client.Timeout, Transport: checkingTransport{api: in.api, t: in.t}}
}

// checkingTransport sends a request, reads the whole answer, checks the
// exchange against api, and hands the caller a copy.
type checkingTransport struct {
	api *contract
	t   reporter
}

// RoundTrip implements http.RoundTripper.
func (c checkingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	var body []byte
	if req.Body != nil {
		b, err := io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, err
		}
		body = b
		req = req.Clone(req.Context())
		req.Body = io.NopCloser(bytes.NewReader(body))
	}
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	answer, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	c.api.check(c.t, req, body, resp.StatusCode, resp.Header, answer)
	resp.Body = io.NopCloser(bytes.NewReader(answer))
	return resp, nil
}

// checkRaw checks an answer read off a raw connection, to bytes an
// http.Request cannot carry (a half-sent body, malformed HTTP), as an
// answer of method url: its status, headers and body must be documented.
func (c *contract) checkRaw(t reporter, method, url string, resp *http.Response, answer []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Errorf("openapi: %s %s: %v", method, url, err)
		return
	}
	c.check(t, req, nil, resp.StatusCode, resp.Header, answer)
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
	// an instance answering in the other dialect's shape: each shape is
	// documented, but not for this instance
	asp := newContract(t, "http://127.0.0.1:1", "http://127.0.0.1:2", true)
	aspRefresh := `{"Token":"a.b.c","RefreshToken":"` + strings.Repeat("A", 86) + `=="}`
	aspPair := `{"Token":"a.b.c","RefreshToken":"` + strings.Repeat("A", 86) + `=="}`
	springPair := `{"timestamp":"2025-01-24T15:35:12.456789+09:00","result":{"accessToken":"a.b.c","refreshToken":"d.e.f",` +
		`"tokenType":"Bearer","accessTokenExpiresIn":1800000,"refreshTokenExpiresIn":2592000000}}`
	aspErr := func(code, typ string) string {
		return `{"errors":[{"code":"` + code + `","message":"m","type":"` + typ + `"}]}`
	}
	unavailable := http.Header{"Content-Type": {"application/json"}, "Retry-After": {"1"}}
	for _, tc := range []struct {
		name   string
		c      *contract
		req    *http.Request
		body   string
		status int
		header http.Header
		answer string
	}{
		{"spring answers an aspnet pair", c, post("http://127.0.0.1:1/api/auth/refresh", refresh), refresh, 200, json, aspPair},
		{"spring answers 404 in aspnet's envelope", c, post("http://127.0.0.1:1/api/auth/refresh", refresh), refresh, 404, json,
			aspErr("invalid_refresh_token", "NotFound")},
		{"spring answers 401 in aspnet's envelope", c, post("http://127.0.0.1:1/api/auth/refresh", refresh), refresh, 401, json,
			aspErr("invalid_token", "Unauthorized")},
		{"spring answers 404 on the refresh endpoint", c, post("http://127.0.0.1:1/api/auth/refresh", refresh), refresh, 404, json,
			`{"timestamp":"2025-01-24T15:35:12.456789+09:00","status":404,"error":"Not Found","message":"Invalid JWT token"}`},
		{"spring answers 503 in aspnet's envelope", c, post("http://127.0.0.1:1/api/auth/refresh", refresh), refresh, 503, unavailable,
			aspErr("service_unavailable", "Failure")},
		{"spring login answers an aspnet pair", c, post("http://127.0.0.1:2/admin/sessions", `{"sub":"a"}`), `{"sub":"a"}`, 200, json, aspPair},
		{"spring accepts aspnet's request", c, post("http://127.0.0.1:1/api/auth/refresh", aspRefresh), aspRefresh, 200, json, springPair},
		{"aspnet answers a spring pair", asp, post("http://127.0.0.1:1/api/auth/refresh", aspRefresh), aspRefresh, 200, json, springPair},
		{"aspnet answers 401 in spring's shape", asp, post("http://127.0.0.1:1/api/auth/refresh", aspRefresh), aspRefresh, 401, json, springBody},
		{"aspnet answers 400 in spring's shape", asp, post("http://127.0.0.1:1/api/auth/revoke", `{}`), `{}`, 400, json,
			`{"timestamp":"2025-01-24T15:35:12.456789+09:00","status":400,"message":"Invalid request body"}`},
		{"aspnet accepts spring's request", asp, post("http://127.0.0.1:1/api/auth/refresh", refresh), refresh, 200, json, aspPair},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := &recorder{}
			tc.c.check(rec, tc.req, []byte(tc.body), tc.status, tc.header, []byte(tc.answer))
			if !rec.failed {
				t.Fatal("the contract check let it pass")
			}
		})
	}
	// the client x/oauth2 is given checks what it exchanges: an answer the
	// document does not give, from a stand-in for tokend, fails the test
	fake := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(400)
		io.WriteString(w, `{"error":"invalid_grant"}`) // no error_description
	}))
	defer fake.Close()
	rec := &recorder{}
	via := &http.Client{Transport: checkingTransport{api: newContract(t, fake.URL, "http://127.0.0.1:2", false), t: rec}}
	resp, err := via.PostForm(fake.URL+"/oauth2/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"r"}, "client_id": {"app"}})
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := io.ReadAll(resp.Body); resp.StatusCode != 400 || string(b) != `{"error":"invalid_grant"}` {
		t.Fatalf("the checking transport handed on %d %s", resp.StatusCode, b)
	}
	if !rec.failed {
		t.Fatal("the checking transport let an undocumented answer pass")
	}
	// and each dialect's own answers pass
	for _, tc := range []struct {
		name   string
		c      *contract
		req    *http.Request
		body   string
		status int
		header http.Header
		answer string
	}{
		{"spring pair", c, post("http://127.0.0.1:1/api/auth/refresh", refresh), refresh, 200, json, springPair},
		{"aspnet pair", asp, post("http://127.0.0.1:1/api/auth/refresh", aspRefresh), aspRefresh, 200, json, aspPair},
		{"aspnet 404", asp, post("http://127.0.0.1:1/api/auth/refresh", aspRefresh), aspRefresh, 404, json, aspErr("invalid_refresh_token", "NotFound")},
		{"aspnet 401", asp, post("http://127.0.0.1:1/api/auth/refresh", aspRefresh), aspRefresh, 401, json, aspErr("invalid_token", "Unauthorized")},
		{"aspnet 503", asp, post("http://127.0.0.1:1/api/auth/refresh", aspRefresh), aspRefresh, 503, unavailable, aspErr("service_unavailable", "Failure")},
	} {
		t.Run("documented/"+tc.name, func(t *testing.T) {
			rec := &recorder{}
			tc.c.check(rec, tc.req, []byte(tc.body), tc.status, tc.header, []byte(tc.answer))
			if rec.failed {
				t.Fatal("a documented answer of the dialect failed the check")
			}
		})
	}
	// and a documented exchange passes
	rec = &recorder{}
	c.check(rec, post("http://127.0.0.1:1/api/auth/refresh", refresh), []byte(refresh), 401, json, []byte(springBody))
	if rec.failed {
		t.Fatal("a documented answer failed the check")
	}
}
