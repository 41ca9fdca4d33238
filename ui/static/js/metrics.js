// sys/metrics in the browser: a parser of the Prometheus text format and
// the aggregates the dashboard draws (rates per interface between two
// scrapes, latency quantiles from histogram buckets).

// parse returns [{name, labels, value}] for every sample line.
export function parse(text) {
  const out = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    out.push({ name: m[1], labels: m[3] ? parseLabels(m[3]) : {}, value: parseValue(m[4]) });
  }
  return out;
}

function parseValue(v) {
  if (v === '+Inf') return Infinity;
  if (v === '-Inf') return -Infinity;
  return Number(v);
}

// parseLabels reads name="value" pairs with \\, \" and \n escapes.
function parseLabels(s) {
  const labels = {};
  let i = 0;
  while (i < s.length) {
    const eq = s.indexOf('=', i);
    if (eq < 0) break;
    const name = s.slice(i, eq).trim().replace(/^,/, '').trim();
    let j = eq + 1;
    if (s[j] !== '"') break;
    j++;
    let val = '';
    while (j < s.length && s[j] !== '"') {
      if (s[j] === '\\' && j + 1 < s.length) {
        const c = s[j + 1];
        val += c === 'n' ? '\n' : c;
        j += 2;
      } else {
        val += s[j++];
      }
    }
    labels[name] = val;
    i = j + 1;
    while (i < s.length && (s[i] === ',' || s[i] === ' ')) i++;
  }
  return labels;
}

function sumBy(samples, name, key) {
  const out = {};
  for (const x of samples) {
    if (x.name !== name) continue;
    const k = key(x.labels);
    out[k] = (out[k] || 0) + x.value;
  }
  return out;
}

// buckets sums a histogram's cumulative buckets by a label: {k: [[le, n]]}.
function buckets(samples, name, key) {
  const acc = {};
  for (const x of samples) {
    if (x.name !== name + '_bucket') continue;
    const k = key(x.labels);
    const le = parseValue(x.labels.le);
    acc[k] = acc[k] || new Map();
    acc[k].set(le, (acc[k].get(le) || 0) + x.value);
  }
  const out = {};
  for (const [k, m] of Object.entries(acc)) out[k] = [...m.entries()].sort((a, b) => a[0] - b[0]);
  return out;
}

// snapshot extracts what the dashboard tracks from one scrape.
export function snapshot(text, t = Date.now()) {
  const x = parse(text);
  const iface = (l) => l.interface;
  const requests = sumBy(x, 'keyhold_requests_total', iface);
  const xks = sumBy(x, 'keyhold_xks_requests_total', () => 'xks');
  const errors = sumBy(x, 'keyhold_errors_total', iface);
  const byOp = sumBy(x, 'keyhold_requests_total', (l) => `${l.interface} ${l.operation}`);
  // XKS requests are counted per key store (with their errorName), not in
  // keyhold_requests_total.
  if (xks.xks !== undefined && requests.xks === undefined) {
    requests.xks = xks.xks;
    errors.xks = sumBy(x.filter((s) => s.labels.error), 'keyhold_xks_requests_total', () => 'xks').xks || 0;
    Object.assign(byOp, sumBy(x, 'keyhold_xks_requests_total', (l) => `xks ${l.operation}`));
  }
  return {
    t,
    requests,
    errors,
    byOp,
    errorsByKind: sumBy(x, 'keyhold_errors_total', (l) => `${l.interface}: ${l.kind}`),
    xksByStore: sumBy(x, 'keyhold_xks_requests_total', (l) => l.keystore),
    xksErrors: sumBy(x.filter((s) => s.labels.error), 'keyhold_xks_requests_total', (l) => `${l.keystore}: ${l.operation} ${l.error}`),
    latency: {
      sum: sumBy(x, 'keyhold_request_duration_seconds_sum', iface),
      count: sumBy(x, 'keyhold_request_duration_seconds_count', iface),
      buckets: buckets(x, 'keyhold_request_duration_seconds', iface),
    },
    hsm: {
      sum: sumBy(x, 'keyhold_hsm_operation_duration_seconds_sum', () => 'hsm'),
      count: sumBy(x, 'keyhold_hsm_operation_duration_seconds_count', () => 'hsm'),
      buckets: buckets(x, 'keyhold_hsm_operation_duration_seconds', () => 'hsm'),
    },
    gauges: {
      sessionsInUse: sumBy(x, 'keyhold_hsm_sessions_in_use', () => 'v').v,
      sessions: sumBy(x, 'keyhold_hsm_sessions', () => 'v').v,
      kmipConnections: sumBy(x, 'keyhold_kmip_connections_open', () => 'v').v,
      cacheHits: sumBy(x, 'keyhold_hsm_unwrap_cache_hits_total', () => 'v').v,
      cacheMisses: sumBy(x, 'keyhold_hsm_unwrap_cache_misses_total', () => 'v').v,
    },
  };
}

// quantile estimates the q-quantile from cumulative buckets [[le, n]], by
// linear interpolation inside the bucket (as PromQL's histogram_quantile).
export function quantile(q, bs) {
  if (!bs || bs.length === 0) return NaN;
  const total = bs[bs.length - 1][1];
  if (!(total > 0)) return NaN;
  const rank = q * total;
  let prevLe = 0;
  let prevN = 0;
  for (const [le, n] of bs) {
    if (n >= rank) {
      if (le === Infinity) return prevLe;
      if (n === prevN) return le;
      return prevLe + (le - prevLe) * ((rank - prevN) / (n - prevN));
    }
    prevLe = le;
    prevN = n;
  }
  return prevLe;
}

// diffBuckets is b - a, bucket by bucket (counters between two scrapes).
export function diffBuckets(a, b) {
  if (!b) return [];
  const prev = new Map(a || []);
  return b.map(([le, n]) => [le, Math.max(0, n - (prev.get(le) || 0))]);
}

// rates returns per-interface values between consecutive snapshots:
// requests/s, error share, and latency p50/p95 of the requests in between.
export function rates(prev, cur) {
  const dt = (cur.t - prev.t) / 1000;
  const out = {};
  for (const k of new Set([...Object.keys(cur.requests), ...Object.keys(prev.requests)])) {
    const dn = (cur.requests[k] || 0) - (prev.requests[k] || 0);
    const de = (cur.errors[k] || 0) - (prev.errors[k] || 0);
    const bs = diffBuckets(prev.latency.buckets[k], cur.latency.buckets[k]);
    const dc = (cur.latency.count[k] || 0) - (prev.latency.count[k] || 0);
    const ds = (cur.latency.sum[k] || 0) - (prev.latency.sum[k] || 0);
    out[k] = {
      rps: dt > 0 ? Math.max(0, dn) / dt : 0,
      eps: dt > 0 ? Math.max(0, de) / dt : 0,
      p50: quantile(0.5, bs),
      p95: quantile(0.95, bs),
      avg: dc > 0 ? ds / dc : NaN,
    };
  }
  const hb = diffBuckets(prev.hsm.buckets.hsm, cur.hsm.buckets.hsm);
  out.hsm = { p50: quantile(0.5, hb), p95: quantile(0.95, hb), ops: dt > 0 ? ((cur.hsm.count.hsm || 0) - (prev.hsm.count.hsm || 0)) / dt : 0 };
  return out;
}
