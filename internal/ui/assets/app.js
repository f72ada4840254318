// mailproxy dashboard: a small single-page app over the REST API.
// Every value from the server is rendered with textContent (never innerHTML):
// the token lives in sessionStorage, so injected markup must not run.
'use strict';

const TOKEN_KEY = 'mailproxy.token';
const REFRESH_MS = 5000;
const PAGE = 50;
const STATES = ['pending', 'deferred', 'sent', 'error', 'bounced'];

let session = null; // {admin, tenant_id}
let tenantsCache = null; // tenant ids in scope, for the selects
let refreshTimer = null;
let renderSeq = 0; // the latest render; older ones drop their result

// ---- helpers ---------------------------------------------------------------

// el builds an element: attrs are properties or attributes, children strings or nodes.
function el(tag, attrs, ...children) {
  const svg = ['svg', 'rect', 'line', 'text', 'title', 'g'].includes(tag);
  const e = svg ? document.createElementNS('http://www.w3.org/2000/svg', tag) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else if (k === 'text') e.textContent = v;
    else if (k === 'dataset') Object.assign(e.dataset, v);
    else e.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

// fill replaces an element's children, skipping absent (null) parts.
function fill(parent, ...children) {
  parent.replaceChildren(...children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false));
}

function fmtTS(ts) {
  if (ts === undefined || ts === null) return '—';
  const d = new Date(ts * 1000);
  return d.toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC');
}

function fmtAge(seconds) {
  if (seconds < 60) return seconds + ' s';
  if (seconds < 3600) return Math.floor(seconds / 60) + ' min';
  if (seconds < 86400) return (seconds / 3600).toFixed(1) + ' h';
  return (seconds / 86400).toFixed(1) + ' d';
}

// addrs renders to/cc/bcc, stored as submitted: a string or a list.
function addrs(v) {
  return Array.isArray(v) ? v.join(', ') : (v || '');
}

function stateBadge(state) {
  return el('span', { class: 'state state-' + state, text: state });
}

function flash(text, isError) {
  const f = document.getElementById('flash');
  f.textContent = text;
  f.className = 'show' + (isError ? ' error' : '');
  clearTimeout(flash.timer);
  flash.timer = setTimeout(() => { f.className = ''; f.textContent = ''; }, 6000);
}

class APIError extends Error {
  constructor(status, detail) {
    super(typeof detail === 'string' ? detail : JSON.stringify(detail));
    this.status = status;
  }
}

// api calls the REST API with the session's token.
async function api(method, path, body) {
  const opts = { method, headers: { 'X-API-Token': sessionStorage.getItem(TOKEN_KEY) || '' } };
  if (body !== undefined) {
    opts.headers['Content-Type'] = 'application/json';
    opts.body = JSON.stringify(body);
  }
  const resp = await fetch(path, opts);
  let data = null;
  try { data = await resp.json(); } catch (e) { data = null; }
  if (resp.status === 401 && path === '/ui/api/session') throw new APIError(401, (data && data.detail) || 'Invalid token');
  if (resp.status === 401 && !(data && data.detail === 'Token not authorized for this tenant')) {
    logout('Your token is no longer valid: log in again.');
    throw new APIError(401, 'logged out');
  }
  if (!resp.ok) throw new APIError(resp.status, (data && data.detail) || resp.statusText);
  return data;
}

function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') q.set(k, v);
  const s = q.toString();
  return s ? '?' + s : '';
}

// confirmAction shows the confirmation dialog; resolves true on Confirm.
function confirmAction(text) {
  const box = document.getElementById('confirm');
  document.getElementById('confirm-text').textContent = text;
  box.hidden = false;
  document.getElementById('confirm-ok').focus();
  return new Promise((resolve) => {
    const done = (ok) => {
      box.hidden = true;
      okBtn.removeEventListener('click', onOK);
      cancelBtn.removeEventListener('click', onCancel);
      resolve(ok);
    };
    const okBtn = document.getElementById('confirm-ok');
    const cancelBtn = document.getElementById('confirm-cancel');
    const onOK = () => done(true);
    const onCancel = () => done(false);
    okBtn.addEventListener('click', onOK);
    cancelBtn.addEventListener('click', onCancel);
  });
}

// runAction confirms, calls the API and reports the answer.
async function runAction(text, method, path, body, after) {
  if (!(await confirmAction(text))) { flash('Cancelled.'); return; }
  try {
    const out = await api(method, path, body);
    flash('Done: ' + summarise(out));
    const res = document.getElementById('action-result');
    if (res) res.textContent = JSON.stringify(out, null, 2);
    if (after) after(out);
  } catch (e) {
    if (e.status !== 401 || e.message !== 'logged out') flash('Failed: ' + e.message, true);
  }
}

function summarise(out) {
  if (!out) return 'ok';
  const parts = [];
  for (const k of ['removed', 'retried', 'pending_messages']) if (k in out) parts.push(k.replace('_', ' ') + ' ' + out[k]);
  if (out.suspended_batches) parts.push('suspended: ' + (out.suspended_batches.join(', ') || 'none'));
  if (out.not_found && out.not_found.length) parts.push('not found: ' + out.not_found.join(', '));
  if (out.unauthorized && out.unauthorized.length) parts.push('not yours: ' + out.unauthorized.join(', '));
  return parts.join('; ') || 'ok';
}

async function tenantIDs() {
  if (tenantsCache) return tenantsCache;
  const out = await api('GET', '/ui/api/tenants');
  tenantsCache = out.tenants.map((t) => t.id);
  return tenantsCache;
}

// tenantSelect is a select of the tenants in scope; allLabel adds an "all" option.
async function tenantSelect(name, selected, allLabel) {
  const ids = await tenantIDs();
  const s = el('select', { name });
  if (allLabel && session.admin) s.append(el('option', { value: '', text: allLabel }));
  for (const id of ids) s.append(el('option', { value: id, text: id, selected: id === selected }));
  return s;
}

function table(id, headers, rows) {
  return el('table', { id },
    el('thead', {}, el('tr', {}, headers.map((h) => el('th', { class: h.num ? 'num' : null, text: h.label || h })))),
    el('tbody', {}, rows));
}

function num(v) { return el('td', { class: 'num', text: v }); }

function parseHash() {
  const h = location.hash.replace(/^#\/?/, '');
  const [view, qs] = h.split('?');
  return { view: view || 'overview', params: new URLSearchParams(qs || '') };
}

function go(view, params) {
  location.hash = '#/' + view + query(params || {});
}

// ---- views -----------------------------------------------------------------

const views = {};

views.overview = async function (main) {
  const out = await api('GET', '/ui/api/overview');
  const total = { pending: 0, deferred: 0, sent: 0, error: 0, bounced: 0, report_backlog: 0 };
  for (const t of out.tenants) for (const k of Object.keys(total)) total[k] += t[k];
  const cards = el('div', { class: 'cards', id: 'totals' },
    STATES.map((s) => el('div', { class: 'card', dataset: { state: s } },
      el('div', { class: 'label', text: s }), el('div', { class: 'value state-' + s, text: total[s] }))),
    el('div', { class: 'card' }, el('div', { class: 'label', text: 'report backlog' }),
      el('div', { class: 'value', text: total.report_backlog })));

  const rows = [];
  for (const t of out.tenants) {
    rows.push(el('tr', { dataset: { tenant: t.tenant_id } },
      el('td', {}, el('a', { href: '#/messages' + query({ tenant_id: t.tenant_id }), text: t.tenant_id }),
        t.name ? el('span', { class: 'muted', text: ' ' + t.name }) : null),
      STATES.map((s) => num(t[s])), num(t.report_backlog)));
    for (const a of t.accounts) {
      rows.push(el('tr', { class: 'sub' }, el('td', { text: a.account_id }), STATES.map((s) => num(a[s])), el('td', {})));
    }
  }
  const counts = table('counts', ['tenant / account'].concat(STATES.map((s) => ({ label: s, num: true })),
    [{ label: 'report backlog', num: true }]), rows);

  let oldest = el('p', { class: 'muted', text: 'Nothing is waiting: no due message in the queue.' });
  if (out.oldest_due) {
    const o = out.oldest_due;
    oldest = el('dl', { class: 'kv', id: 'oldest' },
      el('dt', { text: 'message' }), el('dd', {}, el('a', { href: '#/message' + query({ tenant_id: o.tenant_id, id: o.id }), text: o.id })),
      el('dt', { text: 'tenant / account' }), el('dd', { text: o.tenant_id + ' / ' + o.account_id }),
      el('dt', { text: 'due since' }), el('dd', { text: fmtTS(o.due_ts) }),
      el('dt', { text: 'waiting' }), el('dd', { text: fmtAge(o.waiting_seconds) }));
  }
  const sentHour = out.throughput.reduce((n, p) => n + p.sent, 0);
  const errHour = out.throughput.reduce((n, p) => n + p.error, 0);
  fill(main, 
    el('h1', { text: 'Overview' }),
    cards,
    el('div', { class: 'row' },
      el('div', { class: 'panel' }, el('h2', { text: 'Throughput, last hour' }), chart(out.throughput),
        el('div', { class: 'legend' }, el('span', { class: 'sent', text: '■ sent ' + sentHour }),
          el('span', { class: 'error', text: '■ error ' + errHour }))),
      el('div', { class: 'panel' }, el('h2', { text: 'Oldest due message' }), oldest)),
    el('h2', { text: 'Queue by tenant and account' }), counts,
    el('p', { class: 'muted', id: 'updated', text: 'Updated ' + fmtTS(out.now_ts) + ' · refreshes every ' + REFRESH_MS / 1000 + ' s' }));
};
views.overview.refresh = true;

// chart draws outcomes per minute as stacked bars (sent below, error above).
function chart(points) {
  const W = 600, H = 120, top = 14, bottom = 16, n = Math.max(points.length, 1);
  const maxV = Math.max(1, ...points.map((p) => p.sent + p.error));
  const bw = W / n, scale = (H - top - bottom) / maxV;
  const svg = el('svg', { class: 'chart', id: 'throughput', viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: 'none', role: 'img',
    'aria-label': 'messages finished per minute over the last hour' });
  svg.append(el('line', { class: 'axis', x1: 0, y1: H - bottom, x2: W, y2: H - bottom }));
  points.forEach((p, i) => {
    const x = i * bw + 1, w = Math.max(bw - 2, 1);
    const hs = p.sent * scale, he = p.error * scale;
    const g = el('g', {}, el('title', { text: `${fmtTS(p.minute_ts)}: ${p.sent} sent, ${p.error} error` }));
    if (hs > 0) g.append(el('rect', { class: 'bar-sent', x, y: H - bottom - hs, width: w, height: hs }));
    if (he > 0) g.append(el('rect', { class: 'bar-error', x, y: H - bottom - hs - he, width: w, height: he }));
    svg.append(g);
  });
  svg.append(el('text', { x: 2, y: H - 3, text: '−60 min' }), el('text', { x: W - 22, y: H - 3, text: 'now' }),
    el('text', { x: 2, y: 10, text: 'max ' + maxV + '/min' }));
  return svg;
}

views.messages = async function (main, params) {
  const f = {
    tenant_id: params.get('tenant_id') || '', account_id: params.get('account_id') || '', state: params.get('state') || '',
    batch_code: params.get('batch_code') || '', q: params.get('q') || '', offset: parseInt(params.get('offset') || '0', 10) || 0,
  };
  const form = el('form', { class: 'filters', id: 'filters' },
    el('label', {}, 'tenant', await tenantSelect('tenant_id', f.tenant_id, 'all tenants')),
    el('label', {}, 'account', el('input', { name: 'account_id', value: f.account_id, size: 12 })),
    el('label', {}, 'state', el('select', { name: 'state' }, el('option', { value: '', text: 'any' }),
      STATES.map((s) => el('option', { value: s, text: s, selected: s === f.state })))),
    el('label', {}, 'batch code', el('input', { name: 'batch_code', value: f.batch_code, size: 10 })),
    el('label', {}, 'subject or recipient', el('input', { name: 'q', type: 'search', value: f.q, size: 22 })),
    el('button', { type: 'submit', class: 'primary', text: 'Search' }),
    el('button', { type: 'button', id: 'refresh', text: 'Refresh', onclick: () => render() }));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const p = Object.fromEntries(new FormData(form).entries());
    const same = location.hash === '#/messages' + query(p);
    go('messages', p);
    if (same) render();
  });
  const out = await api('GET', '/ui/api/messages' + query({ ...f, limit: PAGE }));
  const rows = out.messages.map((m) => {
    const p = m.message || {};
    const link = '#/message' + query({ tenant_id: m.tenant_id, id: m.id });
    return el('tr', { dataset: { id: m.id, tenant: m.tenant_id } },
      el('td', {}, el('a', { class: 'mono', href: link, text: m.id })),
      el('td', { text: m.tenant_id }), el('td', { text: m.account_id || '' }),
      el('td', { class: 'state-cell' }, stateBadge(m.status)),
      el('td', { text: p.subject || '' }), el('td', { text: addrs(p.to) }),
      el('td', { text: m.batch_code || '' }), el('td', { text: fmtTS(Date.parse(m.created_at) / 1000) }));
  });
  const empty = rows.length ? null : el('p', { class: 'muted', id: 'no-messages', text: 'No message matches.' });
  const from = out.messages.length ? out.offset + 1 : 0;
  const pager = el('div', { class: 'pager' },
    el('button', { type: 'button', id: 'prev', disabled: out.offset === 0,
      onclick: () => go('messages', { ...f, offset: Math.max(0, out.offset - out.limit) }), text: '← Newer' }),
    el('span', { class: 'muted', text: `${from}–${out.offset + out.messages.length}` }),
    el('button', { type: 'button', id: 'next', disabled: !out.has_more,
      onclick: () => go('messages', { ...f, offset: out.offset + out.limit }), text: 'Older →' }));
  fill(main, el('h1', { text: 'Messages' }), form,
    table('messages', ['id', 'tenant', 'account', 'state', 'subject', 'to', 'batch', 'created'], rows), empty, pager);
};

views.message = async function (main, params) {
  const tenant = params.get('tenant_id') || '', id = params.get('id') || '';
  const out = await api('GET', '/ui/api/messages' + query({ tenant_id: tenant, id, include_history: 'true', limit: 1 }));
  const m = out.messages[0];
  if (!m) {
    fill(main, el('h1', { text: 'Message' }), el('p', { class: 'error', id: 'not-found', text: `No message "${id}" in tenant "${tenant}".` }));
    return;
  }
  const p = m.message || {};
  const kv = (pairs) => el('dl', { class: 'kv', id: 'summary' }, pairs.filter(([, v]) => v !== undefined && v !== null && v !== '')
    .map(([k, v]) => [el('dt', { text: k }), el('dd', {}, v)]));
  const summary = kv([
    ['id', el('span', { class: 'mono', text: m.id })], ['pk', el('span', { class: 'mono', text: m.pk })],
    ['state', stateBadge(m.status)], ['tenant', m.tenant_id], ['account', m.account_id], ['batch', m.batch_code],
    ['priority', String(m.priority)], ['retries', String(m.retry_count)], ['created', fmtTS(Date.parse(m.created_at) / 1000)],
    ['deferred until', m.deferred_ts ? fmtTS(m.deferred_ts) : null], ['final outcome at', m.sent_ts ? fmtTS(m.sent_ts) : null],
    ['error', m.error ? el('span', { class: 'error', text: m.error }) : null],
    ['bounce', m.bounce_ts ? `${fmtTS(m.bounce_ts)} ${m.bounce_type || ''} ${m.bounce_code || ''} ${m.bounce_reason || ''}` : null],
    ['last reported', m.reported_ts ? fmtTS(m.reported_ts) : null],
  ]);
  const hdrs = [['From', p.from], ['To', addrs(p.to)], ['Cc', addrs(p.cc)], ['Bcc', addrs(p.bcc)], ['Reply-To', p.reply_to],
    ['Subject', p.subject], ['Message-ID', p.message_id], ['Return-Path (envelope)', p.return_path]];
  for (const [k, v] of Object.entries(p.headers || {})) hdrs.push([k, v]);
  const headers = el('table', { id: 'headers' }, el('tbody', {}, hdrs.filter(([, v]) => v)
    .map(([k, v]) => el('tr', {}, el('th', { text: k }), el('td', { class: 'mono', text: v })))));
  const history = table('history', ['time', 'event', 'description', 'reported'], (m.history || []).map((e) =>
    el('tr', { dataset: { event: e.event_type } }, el('td', { text: fmtTS(e.event_ts) }), el('td', {}, stateBadge(e.event_type)),
      el('td', { text: e.description || '' }), el('td', { text: e.reported_ts ? fmtTS(e.reported_ts) : 'not yet' }))));
  const noHistory = (m.history || []).length ? null : el('p', { class: 'muted', text: 'No event yet: the message has not been attempted.' });
  const del = el('button', { id: 'delete-message', class: 'danger', type: 'button', text: 'Delete this message',
    onclick: () => runAction(`Delete message "${m.id}" of tenant "${m.tenant_id}"? This cannot be undone.`, 'POST',
      '/commands/delete-messages' + query({ tenant_id: m.tenant_id }), { ids: [m.id] }, () => go('messages', { tenant_id: m.tenant_id })) });
  fill(main, 
    el('p', {}, el('a', { href: '#/messages' + query({ tenant_id: m.tenant_id }), text: '← Messages' })),
    el('h1', { text: 'Message ' + m.id }),
    el('div', { class: 'row' }, el('div', { class: 'panel' }, el('h2', { text: 'Summary' }), summary),
      el('div', { class: 'panel' }, el('h2', { text: 'Headers' }), headers)),
    el('h2', { text: 'History (events and reports)' }), history, noHistory,
    el('h2', { text: 'Actions' }), del);
};

views.accounts = async function (main) {
  const out = await api('GET', '/ui/api/accounts');
  const lim = (v) => (v ? String(v) : '—');
  const rows = out.accounts.map((a) => el('tr', { dataset: { account: a.id, tenant: a.tenant_id } },
    el('td', { text: a.tenant_id }), el('td', { class: 'mono', text: a.id }), el('td', { text: `${a.host}:${a.port}` }),
    el('td', { text: a.user || '' }),
    el('td', { class: 'num', text: `${a.rate_usage.minute} / ${lim(a.limit_per_minute)}` }),
    el('td', { class: 'num', text: `${a.rate_usage.hour} / ${lim(a.limit_per_hour)}` }),
    el('td', { class: 'num', text: `${a.rate_usage.day} / ${lim(a.limit_per_day)}` }),
    el('td', { text: a.limit_behavior }),
    num(a.pool.open), num(a.pool.in_use), num(a.pool.idle), num(a.pool.waiting)));
  fill(main, el('h1', { text: 'Accounts' }),
    el('p', { class: 'muted', text: 'Rate-limit usage is sends in the current minute, hour and day windows / the limit. Pool: this instance\'s SMTP connections. Passwords are never shown.' }),
    table('accounts', ['tenant', 'account', 'server', 'user', { label: 'minute', num: true }, { label: 'hour', num: true },
      { label: 'day', num: true }, 'over limit', { label: 'open', num: true }, { label: 'in use', num: true },
      { label: 'idle', num: true }, { label: 'waiting', num: true }], rows),
    out.accounts.length ? null : el('p', { class: 'muted', text: 'No account.' }));
};

views.tenants = async function (main) {
  const out = await api('GET', '/ui/api/tenants');
  const rows = out.tenants.map((t) => el('tr', { dataset: { tenant: t.id } },
    el('td', { class: 'mono', text: t.id }), el('td', { text: t.name || '' }), el('td', { text: t.active ? 'yes' : 'no' }),
    el('td', { class: 'suspended', text: t.suspended_batches.length ? t.suspended_batches.join(', ').replace('*', 'all (*)') : 'none' }),
    el('td', { text: fmtTS(t.last_sync_ts) }), num(t.pending_reports), num(t.consecutive_failures),
    el('td', { class: t.last_error ? 'error' : '', text: t.last_error || '' }),
    el('td', { text: t.next_sync_due ? 'now' : fmtTS(t.next_attempt_ts) }),
    el('td', { text: t.in_dnd ? 'until ' + fmtTS(t.dnd_until) : 'no' })));
  fill(main, el('h1', { text: 'Tenants' }),
    el('p', { class: 'muted', text: `Delivery reports: heartbeat every ${out.sync_interval_seconds} s.` }),
    table('tenants', ['id', 'name', 'active', 'suspended batches', 'last report', { label: 'pending reports', num: true },
      { label: 'failures', num: true }, 'last error', 'next attempt', 'do not disturb'], rows));
};

views.actions = async function (main) {
  const field = (label, input) => el('label', {}, label, input);
  const val = (form, name) => (new FormData(form).get(name) || '').toString().trim();

  const runNow = el('form', { id: 'run-now' }, field('tenant', await tenantSelect('tenant_id', '', 'all tenants')),
    el('button', { type: 'submit', class: 'primary', text: 'Run now' }));
  runNow.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const t = val(runNow, 'tenant_id');
    runAction(`Run a dispatch and report cycle now for ${t ? 'tenant "' + t + '"' : 'all tenants'}?`, 'POST', '/commands/run-now' + query({ tenant_id: t }));
  });

  const batchForm = async (id) => el('form', { id }, field('tenant', await tenantSelect('tenant_id', '')),
    field('batch code (empty: whole tenant)', el('input', { name: 'batch_code', size: 14 })));
  const suspend = await batchForm('suspend');
  suspend.append(el('button', { type: 'submit', name: 'op', value: 'suspend', text: 'Suspend' }),
    el('button', { type: 'submit', name: 'op', value: 'activate', text: 'Activate' }));
  suspend.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const op = ev.submitter && ev.submitter.value === 'activate' ? 'activate' : 'suspend';
    const t = val(suspend, 'tenant_id'), b = val(suspend, 'batch_code');
    runAction(`${op === 'suspend' ? 'Suspend' : 'Activate'} ${b ? 'batch "' + b + '" of' : 'all of'} tenant "${t}"?`, 'POST',
      `/commands/${op}` + query({ tenant_id: t, batch_code: b }));
  });

  const retry = await batchForm('retry-deferred');
  retry.append(el('button', { type: 'submit', text: 'Retry deferred now' }));
  retry.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const t = val(retry, 'tenant_id'), b = val(retry, 'batch_code');
    runAction(`Retry the deferred messages of ${b ? 'batch "' + b + '" of ' : ''}tenant "${t}" now?`, 'POST',
      '/commands/retry-deferred' + query({ tenant_id: t, batch_code: b }));
  });

  const del = el('form', { id: 'delete-messages' }, field('tenant', await tenantSelect('tenant_id', '')),
    field('message ids (one per line or comma-separated)', el('textarea', { name: 'ids', rows: 2, cols: 36 })),
    el('button', { type: 'submit', class: 'danger', text: 'Delete messages' }));
  del.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const t = val(del, 'tenant_id');
    const ids = val(del, 'ids').split(/[\s,]+/).filter(Boolean);
    if (!ids.length) { flash('Name at least one message id.', true); return; }
    runAction(`Delete ${ids.length} message(s) of tenant "${t}"? This cannot be undone.`, 'POST',
      '/commands/delete-messages' + query({ tenant_id: t }), { ids });
  });

  const section = (title, text, form) => el('div', { class: 'panel actions' }, el('h2', { text: title }), el('p', { class: 'muted', text }), form);
  fill(main, el('h1', { text: 'Actions' }),
    section('Run now', 'Dispatch due messages and send delivery reports at once.', runNow),
    section('Suspend / activate', 'Hold a tenant or one of its batches, or let it go again.', suspend),
    section('Retry deferred', 'Make deferred messages due now instead of at their retry time.', retry),
    section('Delete messages', 'Remove messages and their events by client id.', del),
    el('h2', { text: 'Last answer' }), el('pre', { id: 'action-result', class: 'panel mono' }));
};

// ---- shell -----------------------------------------------------------------

// render draws the current view into a detached element and shows it only if
// no newer render (a click, a refresh, a logout) started meanwhile, so a slow
// answer never paints over the view the user moved to.
async function render() {
  clearTimeout(refreshTimer);
  if (!session) return;
  const seq = ++renderSeq;
  const { view, params } = parseHash();
  const name = views[view] ? view : 'overview';
  for (const a of document.querySelectorAll('#nav a')) a.classList.toggle('active', a.dataset.view === name || (name === 'message' && a.dataset.view === 'messages'));
  const target = el('div');
  try {
    await views[name](target, params);
  } catch (e) {
    if (e.status === 401 && e.message === 'logged out') return;
    fill(target, el('h1', { text: 'Error' }), el('p', { class: 'error', id: 'view-error', text: e.message }));
  }
  if (seq !== renderSeq || !session) return;
  document.getElementById('main').replaceChildren(...target.childNodes);
  if (views[name].refresh) refreshTimer = setTimeout(refresh, REFRESH_MS);
}

// refresh re-renders unless the tab is hidden: an overview reads the whole
// queue, so a background tab waits until it is shown again.
function refresh() {
  if (document.hidden) {
    document.addEventListener('visibilitychange', refresh, { once: true });
    return;
  }
  render();
}

function showLogin(message) {
  document.getElementById('top').hidden = true;
  document.getElementById('main').replaceChildren();
  document.getElementById('login').hidden = false;
  document.getElementById('login-error').textContent = message || '';
  document.querySelector('#login-form input[name=token]').focus();
}

function logout(message) {
  clearTimeout(refreshTimer);
  renderSeq++;
  sessionStorage.removeItem(TOKEN_KEY);
  session = null;
  tenantsCache = null;
  showLogin(message);
}

async function start() {
  if (!sessionStorage.getItem(TOKEN_KEY)) { showLogin(); return; }
  try {
    session = await api('GET', '/ui/api/session');
  } catch (e) {
    logout(e.status === 401 ? 'That token is not valid.' : 'Cannot reach the service: ' + e.message);
    return;
  }
  document.getElementById('login').hidden = true;
  document.getElementById('top').hidden = false;
  document.getElementById('who').textContent = session.admin ? 'admin' : 'tenant ' + session.tenant_id;
  render();
}

document.getElementById('login-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const input = ev.target.elements.token;
  sessionStorage.setItem(TOKEN_KEY, input.value.trim());
  input.value = '';
  start();
});
document.getElementById('logout').addEventListener('click', () => logout('Logged out.'));
window.addEventListener('hashchange', render);
start();
