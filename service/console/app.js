// The dispatch console: plain ES module, no build step. Every page reads /console/api/ (JSON answered by
// the service loop). The campaign page follows its campaign over server-sent events
// (api/campaigns/<id>/events: at most one update a second); only when the stream cannot be opened
// (refused past http.console_max_streams, or EventSource missing) does it poll once a second.

const view = document.getElementById('view');
let stopLive = null; // ends the campaign page's stream or poll when the page changes
const TERMINAL = new Set(['completed', 'aborted', 'terminated_by_user']);

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c ?? '')));
  return e;
}

async function getJSON(path) {
  const r = await fetch('api/' + path, { headers: { Accept: 'application/json' } });
  const body = await r.json().catch(() => ({ error: 'internal', message: 'not JSON' }));
  if (!r.ok) throw new Error(`${r.status} ${body.error}: ${body.message}`);
  return body;
}

function token() { return sessionStorage.getItem('dispatch-console-token') || ''; }

async function post(path, body, contentType) {
  const headers = {};
  if (token()) headers.Authorization = 'Bearer ' + token();
  if (contentType) headers['Content-Type'] = contentType;
  const r = await fetch('api/' + path, { method: 'POST', headers, body });
  const answer = await r.json().catch(() => ({}));
  return { status: r.status, body: answer };
}

function table(columns, rows) {
  const t = el('table', {}, el('thead', {}, el('tr', {}, ...columns.map(c => el('th', { text: c[0] })))));
  const tb = el('tbody');
  for (const r of rows) tb.append(el('tr', {}, ...columns.map(c => { const v = c[1](r); return el('td', {}, v); })));
  t.append(tb);
  return t;
}

function show(...nodes) { view.replaceChildren(...nodes); }
function fail(e) { show(el('p', { class: 'error', id: 'error', text: String(e.message || e) })); }

// ---- Fleet ----
async function fleetPage(params) {
  const q = new URLSearchParams();
  if (params.get('tag')) q.set('tag', params.get('tag'));
  if (params.get('version')) q.set('version', params.get('version'));
  const data = await getJSON('fleet?' + q);
  const tag = el('input', { id: 'filter-tag', placeholder: 'tag', value: params.get('tag') || '' });
  const version = el('input', { id: 'filter-version', placeholder: 'version', value: params.get('version') || '' });
  const form = el('form', { class: 'filters' }, el('label', {}, 'Tag ', tag), el('label', {}, 'Version ', version),
    el('button', { type: 'submit', text: 'Filter' }));
  form.addEventListener('submit', ev => {
    ev.preventDefault();
    const p = new URLSearchParams();
    if (tag.value) p.set('tag', tag.value);
    if (version.value) p.set('version', version.value);
    location.hash = '#/fleet?' + p;
  });
  const summary = el('p', { class: 'summary' }, el('span', { id: 'device-count', text: data.count }),
    ` devices${data.truncated ? ` (the first ${data.max_devices} only)` : ''}`);
  // Version distribution per tag: one stacked bar per tag.
  const versions = [...new Set(Object.values(data.versions).flatMap(v => Object.keys(v)))].sort();
  const legend = el('p', { class: 'legend' }, ...versions.map((v, i) => el('span', { class: 'v' + (i % 6), text: v })));
  const chart = el('div', { id: 'version-chart' });
  for (const [t, counts] of Object.entries(data.versions).sort()) {
    const total = Object.values(counts).reduce((a, b) => a + b, 0);
    const bar = el('div', { class: 'bar' });
    versions.forEach((v, i) => {
      if (!counts[v]) return;
      const s = el('span', { class: 'v' + (i % 6), title: `${v}: ${counts[v]}` });
      s.style.width = (100 * counts[v] / total) + '%';
      bar.append(s);
    });
    chart.append(el('div', { class: 'group' }, el('strong', { text: t }), bar, el('span', { text: `${total} devices` })));
  }
  show(el('h2', { text: 'Fleet' }), form, summary, el('h3', { text: 'Versions per tag' }), legend, chart,
    el('h3', { text: 'Devices' }),
    table([['Hardware id', d => d.hardware_id], ['Tags', d => d.tags.join(', ')],
      ['Version', d => d.reported_version ?? '—'], ['Last seen', d => d.last_seen ?? 'never']], data.devices));
}

// ---- Commands ----
async function commandsPage() {
  const data = await getJSON('commands?limit=50');
  show(el('h2', { text: 'Recent commands' }),
    table([['Id', c => el('a', { href: '#/commands/' + encodeURIComponent(c.id ?? c.command_id), text: c.id ?? c.command_id })],
      ['Type', c => c.type], ['Created', c => c.created_at],
      ['States', c => Object.entries(c.counts ?? c.states ?? {}).map(([k, v]) => `${k} ${v}`).join(', ')]],
    data.commands));
}

async function commandPage(id, params) {
  const offset = Number(params.get('offset') || 0);
  const data = await getJSON(`commands/${encodeURIComponent(id)}?offset=${offset}&limit=100`);
  const nav = el('p');
  if (offset > 0) nav.append(el('a', { href: `#/commands/${id}?offset=${Math.max(0, offset - 100)}`, text: '← previous' }), ' ');
  if (offset + 100 < data.devices_total) nav.append(el('a', { href: `#/commands/${id}?offset=${offset + 100}`, text: 'next →' }));
  show(el('h2', { text: 'Command ' + id }), el('pre', { text: JSON.stringify(data.command, null, 2) }),
    el('p', { text: `${data.devices_total} devices; showing ${offset + 1}–${offset + data.devices.length}` }), nav,
    table([['Device', d => d.hardware_id], ['State', d => d.state], ['Output', d => (d.output ?? '') + (d.trimmed ? ' …' : '')],
      ['Sent', d => d.sent_at ?? ''], ['Replied', d => d.replied_at ?? ''], ['Attempts', d => d.attempts ?? '']], data.devices));
}

// ---- Campaigns ----
async function campaignsPage() {
  const data = await getJSON('campaigns');
  const list = data.campaigns ?? data;
  show(el('h2', { text: 'Campaigns' }),
    table([['Id', c => el('a', { href: '#/campaigns/' + encodeURIComponent(c.id), text: c.id })], ['Name', c => c.name],
      ['State', c => c.state], ['Progress', c => c.stats ? `${c.stats.progress_percent}%` : '']], list));
}

function statsBar(stats) {
  const bar = el('div', { class: 'bar' });
  const m = stats.members || 1;
  const inFlight = (stats.queued || 0) + (stats.sent || 0);
  for (const [k, v] of [['succeeded', stats.succeeded], ['failed', stats.failed], ['timed_out', stats.timed_out], ['in_flight', inFlight]]) {
    const s = el('span', { class: k, title: `${k}: ${v}` });
    s.style.width = (100 * (v || 0) / m) + '%';
    bar.append(s);
  }
  return bar;
}

function statsText(s) {
  return `${s.succeeded} succeeded · ${s.failed} failed · ${s.timed_out} timed out · ${(s.queued || 0) + (s.sent || 0)} in flight / ${s.members}`;
}

function eta(s) {
  if (s.eta_s == null) return '';
  const m = Math.floor(s.eta_s / 60), sec = Math.round(s.eta_s % 60);
  return ` · ETA ${m ? m + ' min ' : ''}${sec} s`;
}

async function campaignPage(id) {
  const state = el('span', { class: 'state', id: 'campaign-state' });
  const reason = el('span', { id: 'campaign-reason' });
  const overall = el('div', { id: 'overall' });
  const groups = el('div', { id: 'groups' });
  const result = el('p', { id: 'action-result' });
  const updated = el('small', { id: 'updated' });
  const mode = el('small', { id: 'live-mode' });
  let polling = false;
  const buttons = ['pause', 'resume', 'terminate'].map(a => {
    const b = el('button', { id: a, type: 'button', text: a[0].toUpperCase() + a.slice(1) });
    b.addEventListener('click', async () => {
      if (a === 'terminate' && !confirm('Terminate campaign ' + id + '?')) return;
      const r = await post(`campaigns/${encodeURIComponent(id)}/${a}`);
      result.className = r.status === 200 ? 'ok' : 'error';
      result.textContent = r.status === 200 ? `${a}: done (${r.body.state})` : `${a} refused: ${r.status} ${r.body.message ?? ''}`;
      if (polling) await refresh(); // a live stream brings the change within a second
    });
    return b;
  });
  show(el('h2', {}, 'Campaign ', el('span', { id: 'campaign-name' })), el('p', {}, 'State: ', state, ' ', reason),
    el('div', { class: 'actions' }, ...buttons), result, el('h3', { text: 'Overall' }), overall,
    el('h3', { text: 'Groups' }), groups, el('p', {}, updated, ' ', mode));

  function render(c) {
    document.getElementById('campaign-name').textContent = `${c.name} (${c.id})`;
    state.textContent = c.state;
    reason.textContent = c.reason ? `— ${c.reason}` : '';
    overall.replaceChildren(el('div', { class: 'group', id: 'overall-bar', 'data-percent': c.stats.progress_percent },
      el('strong', { text: `${c.stats.progress_percent}%` }), statsBar(c.stats),
      el('span', { text: statsText(c.stats) + (c.stats.rate_per_minute != null ? ` · ${c.stats.rate_per_minute}/min` : '') + eta(c.stats) })));
    groups.replaceChildren(...(c.groups || []).map(g => el('div', { class: 'group group-bar', 'data-percent': g.stats.progress_percent },
      el('strong', { text: `Group ${g.index}: ${g.stats.progress_percent}%` }), statsBar(g.stats), el('span', { text: statsText(g.stats) }))));
    updated.textContent = 'updated ' + new Date().toLocaleTimeString();
  }

  async function refresh() {
    try { render(await getJSON('campaigns/' + encodeURIComponent(id))); } catch (e) { updated.textContent = 'update failed: ' + e.message; }
  }

  function poll() {
    polling = true;
    mode.textContent = '(polling once a second: the event stream is not available)';
    refresh();
    const timer = setInterval(refresh, 1000);
    stopLive = () => clearInterval(timer);
  }

  if (typeof EventSource !== 'function') { poll(); return; }
  const es = new EventSource(`api/campaigns/${encodeURIComponent(id)}/events`);
  mode.textContent = '(live: event stream)';
  stopLive = () => es.close();
  es.addEventListener('campaign', ev => {
    const c = JSON.parse(ev.data);
    render(c);
    // A campaign that ended changes no more: give the stream back to the service.
    if (TERMINAL.has(c.state)) { es.close(); mode.textContent = '(ended: stream closed)'; }
  });
  es.addEventListener('gone', ev => {
    es.close();
    updated.textContent = 'the campaign is gone: ' + (JSON.parse(ev.data).message ?? '');
  });
  // A stream refused (503 past the bound, or an error status) is CLOSED by the browser; a broken one is
  // reconnected by the browser itself (readyState CONNECTING), so only the first case falls back.
  es.onerror = () => { if (es.readyState === EventSource.CLOSED && !polling) poll(); };
}

// ---- Packages ----
function hex(buffer) { return [...new Uint8Array(buffer)].map(b => b.toString(16).padStart(2, '0')).join(''); }

// Uploads `file` as a new internal package: sha256 in the browser (crypto.subtle: the ops listener is on
// loopback, a secure context), packages/create, then packages/upload chunk by chunk. A chunk that fails
// is sent again from the same offset (the upload is resumable); a 413 halves the chunk size.
async function upload(file, name, version, tags, progress, status) {
  const bytes = await file.arrayBuffer();
  status.textContent = 'computing sha256…';
  const sha256 = hex(await crypto.subtle.digest('SHA-256', bytes));
  const created = await post('packages', JSON.stringify({ name, version, type: 'internal', sha256, size: bytes.byteLength, tags, available: true }), 'application/json');
  if (created.status !== 200) throw new Error(`create refused: ${created.status} ${created.body.message ?? ''}`);
  const id = created.body.id;
  let chunk = 64 * 1024, offset = 0, failures = 0;
  progress.max = bytes.byteLength || 1;
  do {
    const end = Math.min(offset + chunk, bytes.byteLength);
    const last = end === bytes.byteLength ? 1 : 0;
    let r;
    try {
      r = await post(`packages/${encodeURIComponent(id)}/upload?offset=${offset}&last=${last}`, bytes.slice(offset, end), 'application/octet-stream');
    } catch (e) { r = { status: 0, body: { message: String(e) } }; }
    if (r.status === 413 && chunk > 1024) { chunk = Math.floor(chunk / 2); continue; }
    if (r.status !== 200) {
      if ((r.status === 0 || r.status >= 500) && ++failures <= 3) continue; // resume from the same offset
      throw new Error(`upload refused at byte ${offset}: ${r.status} ${r.body.message ?? ''}`);
    }
    failures = 0;
    offset = end;
    progress.value = offset;
    status.textContent = `${offset} / ${bytes.byteLength} bytes`;
  } while (offset < bytes.byteLength);
  return { id, sha256 };
}

async function packagesPage() {
  const data = await getJSON('packages');
  const list = data.packages ?? data;
  const file = el('input', { id: 'upload-file', type: 'file' });
  const name = el('input', { id: 'upload-name', placeholder: 'name', required: '' });
  const version = el('input', { id: 'upload-version', placeholder: 'version', required: '' });
  const tags = el('input', { id: 'upload-tags', placeholder: 'tags, comma separated' });
  const progress = el('progress', { id: 'upload-progress', value: '0', max: '1' });
  const status = el('span', { id: 'upload-status' });
  const form = el('form', { id: 'upload-form', class: 'filters' }, file, name, version, tags,
    el('button', { type: 'submit', text: 'Upload' }), progress, status);
  form.addEventListener('submit', async ev => {
    ev.preventDefault();
    if (!file.files[0]) { status.textContent = 'choose a file'; return; }
    try {
      const t = tags.value.split(',').map(x => x.trim()).filter(Boolean);
      const r = await upload(file.files[0], name.value, version.value, t, progress, status);
      await packagesPage();
      document.getElementById('upload-status').textContent = `uploaded ${r.id} (sha256 ${r.sha256})`;
    } catch (e) { status.className = 'error'; status.textContent = e.message; }
  });
  show(el('h2', { text: 'Packages' }), el('h3', { text: 'Upload (needs the token)' }), form,
    table([['Id', p => p.id], ['Name', p => p.name], ['Version', p => p.version], ['State', p => p.state ?? ''],
      ['Size', p => p.size ?? ''], ['sha256', p => el('code', { class: 'sha256', text: p.sha256 ?? '' })],
      ['Tags', p => (p.tags || []).join(', ')], ['Available', p => String(p.available)]], list));
}

async function route() {
  if (stopLive) { stopLive(); stopLive = null; }
  const [path, query] = (location.hash.slice(1) || '/fleet').split('?');
  const params = new URLSearchParams(query || '');
  const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
  for (const a of document.querySelectorAll('nav a')) a.classList.toggle('active', a.getAttribute('href') === '#/' + parts[0]);
  try {
    if (parts[0] === 'commands' && parts[1]) await commandPage(parts[1], params);
    else if (parts[0] === 'commands') await commandsPage();
    else if (parts[0] === 'campaigns' && parts[1]) await campaignPage(parts[1]);
    else if (parts[0] === 'campaigns') await campaignsPage();
    else if (parts[0] === 'packages') await packagesPage();
    else await fleetPage(params);
  } catch (e) { fail(e); }
}

const tokenInput = document.getElementById('token');
const tokenState = document.getElementById('token-state');
function showTokenState() { tokenState.textContent = token() ? 'token kept for this tab' : 'read-only'; }
document.getElementById('token-form').addEventListener('submit', ev => {
  ev.preventDefault();
  if (tokenInput.value) sessionStorage.setItem('dispatch-console-token', tokenInput.value);
  else sessionStorage.removeItem('dispatch-console-token');
  tokenInput.value = '';
  showTokenState();
});
showTokenState();
window.addEventListener('hashchange', route);
route();
