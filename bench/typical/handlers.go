package main

import (
	"encoding/json"
	"errors"
	"log"
	"net/http"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwt"
)

// maxBody is tokend's request body limit.
const maxBody = 12 << 10

// springResult is the spring dialect's success body's result.
type springResult struct {
	AccessToken           string `json:"accessToken"`
	RefreshToken          string `json:"refreshToken"`
	TokenType             string `json:"tokenType"`
	AccessTokenExpiresIn  int64  `json:"accessTokenExpiresIn"`
	RefreshTokenExpiresIn int64  `json:"refreshTokenExpiresIn"`
}

// springSuccess is the spring dialect's success body.
type springSuccess struct {
	Timestamp string       `json:"timestamp"`
	Result    springResult `json:"result"`
}

// springFailure is the spring dialect's error body.
type springFailure struct {
	Timestamp string `json:"timestamp"`
	Status    int    `json:"status"`
	Error     string `json:"error,omitempty"`
	Message   string `json:"message"`
}

// tokenResponse is RFC 6749 §5.1's success body.
type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int64  `json:"expires_in"`
	RefreshToken string `json:"refresh_token"`
}

// tokenError is RFC 6749 §5.2's error body.
type tokenError struct {
	Error       string `json:"error"`
	Description string `json:"error_description"`
}

// refused is a rotation's refusal (as opposed to a store failure).
func refused(err error) bool {
	for _, e := range outcomes[1:] {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

func (s *service) timestamp() string {
	return s.now().Format("2006-01-02T15:04:05.000000-07:00")
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	if err := json.NewEncoder(w).Encode(v); err != nil {
		log.Printf("write: %v", err)
	}
}

func (s *service) springError(w http.ResponseWriter, status int, message string) {
	writeJSON(w, status, springFailure{Timestamp: s.timestamp(), Status: status, Error: http.StatusText(status), Message: message})
}

func (s *service) springPair(w http.ResponseWriter, p pair) {
	writeJSON(w, http.StatusOK, springSuccess{Timestamp: s.timestamp(), Result: springResult{
		AccessToken: p.access, RefreshToken: p.refresh, TokenType: "Bearer",
		AccessTokenExpiresIn: s.accessTTL.Milliseconds(), RefreshTokenExpiresIn: s.refreshTTL.Milliseconds(),
	}})
}

// login starts a session, as tokend's admin API does, and answers its
// first pair in the spring shape.
func (s *service) login(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Sub      string `json:"sub"`
		ClientID string `json:"client_id"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody)).Decode(&req); err != nil || req.Sub == "" {
		s.springError(w, http.StatusBadRequest, "Invalid request body")
		return
	}
	sid := newID()
	if err := s.store.create(r.Context(), sid, req.Sub, req.ClientID, s.refreshTTL); err != nil {
		s.springError(w, http.StatusServiceUnavailable, "Service temporarily unavailable")
		return
	}
	p, err := s.issue(grant{sub: req.Sub, sid: sid})
	if err != nil {
		s.springError(w, http.StatusInternalServerError, "Internal server error")
		return
	}
	s.springPair(w, p)
}

// refreshSpring is POST /api/auth/refresh in the spring dialect.
func (s *service) refreshSpring(w http.ResponseWriter, r *http.Request) {
	var req struct {
		RefreshToken string `json:"refreshToken"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody)).Decode(&req); err != nil || strings.TrimSpace(req.RefreshToken) == "" {
		s.springError(w, http.StatusBadRequest, "Invalid request body")
		return
	}
	sub, sid, gen, err := s.parseRefresh(req.RefreshToken)
	if err != nil {
		msg := "Invalid JWT token"
		if errors.Is(err, jwt.TokenExpiredError()) {
			msg = "JWT token has expired"
		}
		s.springError(w, http.StatusUnauthorized, msg)
		return
	}
	// the dialect endpoint presents no proof: a bound session is refused
	if err := s.store.rotate(r.Context(), sid, gen, "", "", s.refreshTTL); err != nil {
		if refused(err) {
			s.springError(w, http.StatusUnauthorized, "Invalid JWT token")
		} else {
			w.Header().Set("Retry-After", "1")
			s.springError(w, http.StatusServiceUnavailable, "Service temporarily unavailable")
		}
		return
	}
	p, err := s.issue(grant{sub: sub, sid: sid, gen: gen + 1})
	if err != nil {
		s.springError(w, http.StatusInternalServerError, "Internal server error")
		return
	}
	s.springPair(w, p)
}

func oauth2Error(w http.ResponseWriter, status int, code, description string) {
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, status, tokenError{code, description})
}

const invalidGrant = "the refresh token is invalid, expired or revoked"

// token is POST /oauth2/token, grant_type=refresh_token, with an optional
// DPoP proof.
func (s *service) token(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	if err := r.ParseForm(); err != nil {
		oauth2Error(w, http.StatusBadRequest, "invalid_request", "the body is not a valid form")
		return
	}
	f := r.PostForm
	if f.Get("grant_type") != "refresh_token" {
		oauth2Error(w, http.StatusBadRequest, "unsupported_grant_type", "only grant_type=refresh_token is supported")
		return
	}
	client, raw := f.Get("client_id"), f.Get("refresh_token")
	if client == "" || raw == "" {
		oauth2Error(w, http.StatusBadRequest, "invalid_request", "client_id and refresh_token are required")
		return
	}
	if !s.clients[client] {
		w.Header().Set("WWW-Authenticate", `Basic realm="typical"`)
		oauth2Error(w, http.StatusUnauthorized, "invalid_client", "unknown client_id")
		return
	}
	sub, sid, gen, err := s.parseRefresh(raw)
	if err != nil {
		oauth2Error(w, http.StatusBadRequest, "invalid_grant", invalidGrant)
		return
	}
	jkt := ""
	if proofs := r.Header.Values("DPoP"); len(proofs) > 0 {
		if len(proofs) > 1 {
			oauth2Error(w, http.StatusBadRequest, "invalid_dpop_proof", "DPoP proof: more than one DPoP header")
			return
		}
		var jti string
		if jkt, jti, err = s.checkProof(proofs[0], r.Method); err != nil {
			oauth2Error(w, http.StatusBadRequest, "invalid_dpop_proof", "DPoP proof: invalid")
			return
		}
		// jti once, scoped to the key, for twice the iat window either way
		if err := s.store.once(r.Context(), jkt+":"+jti, 2*s.dpopWindow); err != nil {
			if errors.Is(err, errProofJTI) {
				oauth2Error(w, http.StatusBadRequest, "invalid_dpop_proof", "the DPoP proof was used already (jti)")
			} else {
				s.unavailable(w)
			}
			return
		}
	}
	if err := s.store.rotate(r.Context(), sid, gen, client, jkt, s.refreshTTL); err != nil {
		switch {
		case errors.Is(err, errBinding):
			oauth2Error(w, http.StatusBadRequest, "invalid_dpop_proof", "the session is bound to a DPoP key: a proof signed by it is required")
		case refused(err):
			oauth2Error(w, http.StatusBadRequest, "invalid_grant", invalidGrant)
		default:
			s.unavailable(w)
		}
		return
	}
	p, err := s.issue(grant{sub: sub, sid: sid, gen: gen + 1, client: client, jkt: jkt, oauth2: true})
	if err != nil {
		oauth2Error(w, http.StatusInternalServerError, "server_error", "internal error")
		return
	}
	typ := "Bearer"
	if jkt != "" {
		typ = "DPoP"
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	writeJSON(w, http.StatusOK, tokenResponse{AccessToken: p.access, TokenType: typ, ExpiresIn: int64(s.accessTTL / time.Second), RefreshToken: p.refresh})
}

func (s *service) unavailable(w http.ResponseWriter) {
	w.Header().Set("Retry-After", "1")
	oauth2Error(w, http.StatusServiceUnavailable, "temporarily_unavailable", "the token service is temporarily unavailable; retry")
}
