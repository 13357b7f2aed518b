// refresh.js — every virtual user starts its own session through the admin
// API, then refreshes at a fixed arrival rate, always with its newest tokens
// (a chain: each refresh token is used once). Nothing may fail.
//
//   PUBLIC=http://127.0.0.1:8080 ADMIN=http://127.0.0.1:8081 [DIALECT=aspnet] k6 run loadtest/refresh.js
import { check, fail } from 'k6';
import { Counter } from 'k6/metrics';
import { login, refresh, pair, DIALECT } from './lib.js';

const unexpected = new Counter('unexpected_status');
const RATE = parseInt(__ENV.RATE || '2000');

export const options = {
  scenarios: {
    chains: {
      executor: 'constant-arrival-rate',
      rate: RATE, timeUnit: '1s',
      duration: __ENV.DURATION || '20s',
      preAllocatedVUs: 64, maxVUs: 64,
    },
  },
  thresholds: {
    unexpected_status: ['count==0'],
    checks: ['rate==1'],
    http_req_failed: ['rate==0'],
    // measured here at 2000/s with k6 on the same 2 cores: p99 about 7 ms (bench/RESULTS.md); about 2x headroom
    'http_req_duration{name:refresh}': ['p(99)<15'],
    dropped_iterations: ['count<' + RATE], // the generator kept up: under one second's worth dropped
  },
  summaryTrendStats: ['avg', 'med', 'p(90)', 'p(99)', 'max'],
};

let mine = null; // this VU's newest tokens

export default function () {
  if (mine === null) {
    mine = login(`k6-${DIALECT}-${__VU}`);
    if (mine === null) fail('login refused');
  }
  const res = refresh(mine, 200);
  const ok = check(res, { 'refresh 200': (r) => r.status === 200 });
  if (!ok) {
    unexpected.add(1, { status: String(res.status) });
    mine = null; // the chain is broken: start a new session
    return;
  }
  mine = pair(res);
}
