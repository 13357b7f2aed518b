// oauth2.js — standard OAuth 2.0 clients on POST /oauth2/token: one
// scenario refreshes Bearer sessions, the other DPoP-bound ones, each
// virtual user with an ES256 key of its own (k6's WebCrypto) signing a new
// proof for every refresh (RFC 9449 §4.2). Each refresh token is used once
// (a chain); nothing may fail, and every DPoP answer must be token_type DPoP.
//
//   PUBLIC=http://127.0.0.1:8080 ADMIN=http://127.0.0.1:8081 PUBLIC_URL=http://127.0.0.1:8080 k6 run loadtest/oauth2.js
//
// PUBLIC_URL is tokend's TOKEND_PUBLIC_URL: what a proof's htu names.
import http from 'k6/http';
import { check, fail } from 'k6';
import { Counter } from 'k6/metrics';
import encoding from 'k6/encoding';
import { PUBLIC, ADMIN } from './lib.js';

const PUBLIC_URL = __ENV.PUBLIC_URL || PUBLIC;
const TOKEN_URL = `${PUBLIC_URL}/oauth2/token`;
const unexpected = new Counter('unexpected_status');
const DURATION = __ENV.DURATION || '20s';

export const options = {
  scenarios: {
    bearer: {
      executor: 'constant-arrival-rate', exec: 'bearer',
      rate: parseInt(__ENV.RATE || '1000'), timeUnit: '1s', duration: DURATION,
      preAllocatedVUs: 32, maxVUs: 32,
    },
    dpop: {
      executor: 'constant-arrival-rate', exec: 'dpop',
      rate: parseInt(__ENV.DPOP_RATE || '300'), timeUnit: '1s', duration: DURATION,
      preAllocatedVUs: 32, maxVUs: 32,
    },
  },
  thresholds: {
    unexpected_status: ['count==0'],
    checks: ['rate==1'],
    http_req_failed: ['rate==0'],
    // measured here with k6 on the same 2 cores (bench/RESULTS.md); about 2x headroom
    'http_req_duration{name:token}': ['p(99)<20'],
    'http_req_duration{name:token-dpop}': ['p(99)<25'],
    dropped_iterations: ['count<300'],
  },
  summaryTrendStats: ['avg', 'med', 'p(90)', 'p(99)', 'max'],
};

const form = { headers: { 'Content-Type': 'application/x-www-form-urlencoded' } };

// start begins a session for this VU through the admin API.
function start(sub) {
  const res = http.post(`${ADMIN}/admin/sessions`, JSON.stringify({ sub, client_id: 'k6-app', scope: 'openid' }),
    { headers: { 'Content-Type': 'application/json' }, tags: { name: 'login' } });
  if (res.status !== 200) fail(`login: ${res.status} ${res.body}`);
  const b = res.json();
  return b.result ? b.result.refreshToken : b.RefreshToken;
}

// token refreshes rt, with a DPoP proof when given.
function token(rt, proof, name) {
  const params = Object.assign({ tags: { name } }, form);
  if (proof) params.headers = Object.assign({ DPoP: proof }, form.headers);
  return http.post(`${PUBLIC}/oauth2/token`,
    { grant_type: 'refresh_token', refresh_token: rt, client_id: 'k6-app' }, params);
}

let shown = 0;

function next(res, type, name) {
  const ok = check(res, {
    [`${name} 200`]: (r) => r.status === 200,
    [`${name} ${type}`]: (r) => r.status === 200 && r.json().token_type === type,
  });
  if (!ok) {
    unexpected.add(1, { status: String(res.status) });
    if (shown++ < 5) console.error(`${name}: ${res.status} ${res.body}`); // the first few, to say why
    return null;
  }
  return res.json().refresh_token;
}

let chain = null;

export function bearer() {
  if (chain === null) chain = start(`k6-bearer-${__VU}`);
  chain = next(token(chain, null, 'token'), 'Bearer', 'token');
}

// The DPoP client: a P-256 key per VU, proofs signed with WebCrypto.

const b64 = (bytes) => encoding.b64encode(bytes, 'rawurl');

function ascii(s) {
  const a = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) a[i] = s.charCodeAt(i);
  return a.buffer;
}

// full left-pads a P-256 coordinate to its 32 bytes. k6's WebCrypto
// exports a coordinate with a leading zero byte as 31 bytes (about one key
// in 64); RFC 7518 §6.2.1.2 wants the full length, and tokend refuses
// anything else (so does jwx), since the key's thumbprint would differ.
function full(coord) {
  const b = new Uint8Array(encoding.b64decode(coord, 'rawurl'));
  if (b.length >= 32) return coord;
  const padded = new Uint8Array(32);
  padded.set(b, 32 - b.length);
  return b64(padded.buffer);
}

let key = null; // { priv, jwk }
let dchain = null;

async function proof() {
  const header = { typ: 'dpop+jwt', alg: 'ES256', jwk: key.jwk };
  const claims = {
    jti: `${__VU}-${__ITER}-${Math.random().toString(36).slice(2)}`,
    htm: 'POST', htu: TOKEN_URL, iat: Math.floor(Date.now() / 1000),
  };
  const input = `${b64(JSON.stringify(header))}.${b64(JSON.stringify(claims))}`;
  // WebCrypto's ECDSA signature is r || s, as JWS wants it
  const sig = await crypto.subtle.sign({ name: 'ECDSA', hash: 'SHA-256' }, key.priv, ascii(input));
  return `${input}.${b64(sig)}`;
}

export async function dpop() {
  if (key === null) {
    const pair = await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify']);
    const jwk = await crypto.subtle.exportKey('jwk', pair.publicKey);
    key = { priv: pair.privateKey, jwk: { kty: jwk.kty, crv: jwk.crv, x: full(jwk.x), y: full(jwk.y) } };
  }
  if (dchain === null) dchain = start(`k6-dpop-${__VU}`);
  dchain = next(token(dchain, await proof(), 'token-dpop'), 'DPoP', 'token-dpop');
}
