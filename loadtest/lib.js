// Shared by refresh.js and attack.js: the two dialects' request and answer
// shapes, and a session start through the admin API.
import http from 'k6/http';

export const PUBLIC = __ENV.PUBLIC || 'http://127.0.0.1:8080';
export const ADMIN = __ENV.ADMIN || 'http://127.0.0.1:8081';
export const DIALECT = __ENV.DIALECT || 'spring';
// what a replayed or revoked refresh token gets in each dialect
export const REJECTED = DIALECT === 'aspnet' ? 404 : 401;

const json = { headers: { 'Content-Type': 'application/json' } };

// pair reads the new tokens out of a success body.
export function pair(res) {
  const b = res.json();
  if (DIALECT === 'aspnet') return { access: b.Token, refresh: b.RefreshToken };
  return { access: b.result.accessToken, refresh: b.result.refreshToken };
}

// login starts a session for sub; null when the admin API refused.
export function login(sub) {
  const res = http.post(`${ADMIN}/admin/sessions`, JSON.stringify({ sub }),
    Object.assign({ tags: { name: 'login' } }, json));
  return res.status === 200 ? pair(res) : null;
}

// refresh trades p for a new pair; expect is the status this request must get.
export function refresh(p, expect, name) {
  const body = DIALECT === 'aspnet'
    ? JSON.stringify({ Token: p.access, RefreshToken: p.refresh })
    : JSON.stringify({ refreshToken: p.refresh });
  return http.post(`${PUBLIC}/api/auth/refresh`, body, Object.assign({
    tags: { name: name || 'refresh' },
    responseCallback: http.expectedStatuses(expect),
  }, json));
}
