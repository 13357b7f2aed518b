// attack.js — honest users refresh their chains while thieves replay a
// refresh token that has already been used, after the grace window. Every
// replay must be refused (401 spring, 404 aspnet) and must end the session,
// so the victim's newest token is refused too; the honest users never see
// an error. Run against tokend with TOKEND_REUSE_GRACE=GRACE_MS.
//
//   PUBLIC=… ADMIN=… GRACE_MS=1000 [DIALECT=aspnet] k6 run loadtest/attack.js
import { check, sleep, fail } from 'k6';
import { Counter } from 'k6/metrics';
import { login, refresh, pair, DIALECT, REJECTED } from './lib.js';

const unexpected = new Counter('unexpected_status');
const replaysRefused = new Counter('replays_refused');
const GRACE_MS = parseInt(__ENV.GRACE_MS || '10000');
const DURATION = __ENV.DURATION || '20s';

export const options = {
  scenarios: {
    honest: {
      executor: 'constant-arrival-rate', exec: 'honest',
      rate: parseInt(__ENV.RATE || '1000'), timeUnit: '1s', duration: DURATION,
      preAllocatedVUs: 48, maxVUs: 48,
    },
    thieves: {
      executor: 'constant-vus', exec: 'thief', vus: 16, duration: DURATION,
    },
  },
  thresholds: {
    unexpected_status: ['count==0'],
    'checks{scenario:honest}': ['rate==1'],
    'checks{scenario:thieves}': ['rate==1'],
    replays_refused: ['count>0'],
    'http_req_duration{name:refresh}': ['p(99)<15'],
  },
  summaryTrendStats: ['avg', 'med', 'p(90)', 'p(99)', 'max'],
};

let mine = null;

export function honest() {
  if (mine === null) {
    mine = login(`k6-honest-${DIALECT}-${__VU}`);
    if (mine === null) fail('login refused');
  }
  const res = refresh(mine, 200);
  if (!check(res, { 'honest refresh 200': (r) => r.status === 200 })) {
    unexpected.add(1, { status: String(res.status), who: 'honest' });
    mine = null;
    return;
  }
  mine = pair(res);
}

// thief: a victim session rotates once; the stolen (old) token is replayed
// after the grace window.
export function thief() {
  const stolen = login(`k6-victim-${DIALECT}-${__VU}-${__ITER}`);
  if (stolen === null) fail('login refused');
  const first = refresh(stolen, 200);
  if (!check(first, { 'victim refresh 200': (r) => r.status === 200 })) {
    unexpected.add(1, { status: String(first.status), who: 'victim' });
    return;
  }
  const newest = pair(first);
  sleep(GRACE_MS / 1000 + 0.2);
  const replay = refresh(stolen, REJECTED, 'replay');
  const after = refresh(newest, REJECTED, 'after-replay');
  const ok = check(replay, { 'replay refused': (r) => r.status === REJECTED }) &&
    check(after, { 'session ended by the replay': (r) => r.status === REJECTED });
  if (ok) replaysRefused.add(1);
  else unexpected.add(1, { status: `${replay.status}/${after.status}`, who: 'thief' });
}
