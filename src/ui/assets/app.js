// berth's web interface: a page per URL under /ui/, drawn from the registry API (/v2/) called
// with the user's own credentials, plus /ui/api/info and /ui/api/pushed (src/ui/ui.h).
// Plain modules, no framework, no build step.

const BASE = document.querySelector('meta[name="berth-base"]').content;
const UI = `${BASE}/ui`;
const PAGE_SIZE = 100;       // repositories or tags shown per page
const DETAIL_WORKERS = 4;    // tag rows filled in at once

const MANIFEST_TYPES = [
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.docker.distribution.manifest.v2+json',
].join(', ');
const INDEX_TYPES = new Set([
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
]);
const IMAGE_CONFIG_TYPES = new Set([
  'application/vnd.oci.image.config.v1+json',
  'application/vnd.docker.container.image.v1+json',
]);
// What referrers are, by artifact type (cosign, notation, SBOM and attestation tools).
const ARTIFACT_KINDS = [
  [/sig|signature|notary|sigstore/i, 'Signature'],
  [/spdx|cyclonedx|syft|sbom/i, 'SBOM'],
  [/in-toto|dsse|attestation|provenance|slsa|vex/i, 'Attestation'],
];

// ---- small helpers --------------------------------------------------------------------------

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else if (k === 'class') e.className = v;
    else e.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

function humanSize(n) {
  if (n === undefined || n === null || Number.isNaN(n)) return '–';
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) { n /= 1000; i++; }
  return `${i ? n.toFixed(n < 10 ? 1 : 0) : n} ${units[i]}`;
}

function humanDate(iso) {
  if (!iso) return '–';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime()) || d.getTime() <= 0) return '–';
  return `${d.toISOString().slice(0, 16).replace('T', ' ')} UTC`;
}

function shortDigest(d) {
  return d ? d.replace(/^(sha256:|sha512:)?(.{12}).*$/, '$1$2') : '–';
}

function platformName(p) {
  if (!p) return 'unknown';
  return [p.os, p.architecture, p.variant].filter(Boolean).join('/');
}

function artifactKind(type) {
  for (const [re, kind] of ARTIFACT_KINDS) if (re.test(type || '')) return kind;
  return 'Artifact';
}

function repoUrl(name) { return `${UI}/repo/${name}`; }
function manifestUrl(name, ref) { return `${UI}/repo/${name}/-/manifest/${encodeURIComponent(ref)}`; }

function toast(text) {
  const t = document.getElementById('toast');
  t.textContent = text;
  t.classList.add('shown');
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => t.classList.remove('shown'), 3000);
}

// Runs fn over items, at most `workers` at a time.
async function eachLimited(items, workers, fn) {
  let next = 0;
  const run = async () => { while (next < items.length) await fn(items[next++]); };
  await Promise.all(Array.from({ length: Math.min(workers, items.length) }, run));
}

// ---- the registry API -----------------------------------------------------------------------

class AuthNeeded extends Error {}
class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}
// Logged in, but the credentials do not grant this (a token without the scope asked for).
class Denied extends ApiError {
  constructor(scope) { super(403, `Your account may not do this${scope ? ` (${scope})` : ''}.`); this.scope = scope; }
}

const session = {
  get auth() { return sessionStorage.getItem('berth.auth'); },
  set auth(v) { if (v) sessionStorage.setItem('berth.auth', v); else sessionStorage.removeItem('berth.auth'); },
  get user() { return sessionStorage.getItem('berth.user') || ''; },
  set user(v) { if (v) sessionStorage.setItem('berth.user', v); else sessionStorage.removeItem('berth.user'); },
};

function basicAuth(user, password) {
  const bytes = new TextEncoder().encode(`${user}:${password}`);
  return `Basic ${btoa(String.fromCharCode(...bytes))}`;
}

// A challenge's parameters: Bearer realm="...",service="...",scope="..." -> {realm, service, scope}.
function challengeParams(challenge) {
  const out = {};
  for (const m of challenge.matchAll(/(\w+)="([^"]*)"/g)) out[m[1]] = m[2];
  return out;
}

// Bearer tokens by scope, from berth's /ui/api/token (which asks the token server for the page).
const tokens = new Map();

async function bearerToken(scope, auth) {
  const key = `${auth || ''} ${scope}`;
  if (tokens.has(key)) return tokens.get(key);
  const headers = auth ? { Authorization: auth } : {};
  const resp = await fetch(`${BASE}/ui/api/token${scope ? `?scope=${encodeURIComponent(scope)}` : ''}`,
    { headers, credentials: 'omit', cache: 'no-store' });
  if (resp.status === 401) throw new AuthNeeded('Bearer');
  if (!resp.ok) {
    let message = 'The token server cannot be reached; try again later.';
    try { message = (await resp.json()).errors[0].message; } catch { /* keep the general one */ }
    throw new ApiError(resp.status, `No token: ${message}`);
  }
  const { token, expires_in: expires } = await resp.json();
  tokens.set(key, token);
  setTimeout(() => tokens.delete(key), Math.max(10, (expires || 60) - 10) * 1000);
  return token;
}

// fetch below the registry's prefix with the user's credentials: Basic as given (htpasswd), or a
// bearer token got with them when the registry answers with a Bearer challenge. credentials:
// 'omit' keeps the browser from showing its own password prompt on a 401 (the page has its
// login form).
async function call(path, { method = 'GET', accept, auth = session.auth } = {}) {
  const headers = {};
  if (auth) headers.Authorization = auth;
  if (accept) headers.Accept = accept;
  let resp = await fetch(`${BASE}${path}`, { method, headers, credentials: 'omit', cache: 'no-store' });
  if (resp.status === 401) {
    const challenge = resp.headers.get('WWW-Authenticate') || '';
    if (!/^\s*bearer/i.test(challenge)) throw new AuthNeeded(challenge);
    const { scope } = challengeParams(challenge);
    headers.Authorization = `Bearer ${await bearerToken(scope, auth)}`;
    resp = await fetch(`${BASE}${path}`, { method, headers, credentials: 'omit', cache: 'no-store' });
    if (resp.status === 401) {
      if (!auth) throw new AuthNeeded('Bearer');
      throw new Denied(scope);
    }
  }
  if (!resp.ok) {
    let message = `${resp.status} ${resp.statusText}`;
    try {
      const body = await resp.json();
      if (body.errors && body.errors[0]) message = `${body.errors[0].message} (${body.errors[0].code})`;
    } catch { /* not JSON */ }
    throw new ApiError(resp.status, message);
  }
  return resp;
}

async function callJson(path, opts) {
  return (await call(path, opts)).json();
}

// A paginated list (catalog or tags): follows the Link headers to the end.
async function listAll(path, key) {
  const out = [];
  let next = `${path}${path.includes('?') ? '&' : '?'}n=1000`;
  while (next) {
    const resp = await call(next);
    const body = await resp.json();
    out.push(...(body[key] || []));
    const link = resp.headers.get('Link') || '';
    const m = link.match(/<([^>]+)>\s*;\s*rel="?next"?/);
    next = null;
    if (m) {
      const u = new URL(m[1], location.href);
      next = u.pathname.slice(BASE.length) + u.search;
    }
  }
  return out;
}

async function getManifest(name, ref) {
  const resp = await call(`/v2/${name}/manifests/${ref}`, { accept: MANIFEST_TYPES });
  const text = await resp.text();
  return {
    digest: resp.headers.get('Docker-Content-Digest'),
    mediaType: (resp.headers.get('Content-Type') || '').split(';')[0],
    size: new TextEncoder().encode(text).length,
    body: JSON.parse(text),
  };
}

async function getBlobJson(name, digest) {
  return callJson(`/v2/${name}/blobs/${digest}`);
}

let infoCache = null;
async function registryInfo() {
  if (!infoCache) infoCache = await callJson('/ui/api/info');
  return infoCache;
}

// ---- layout ---------------------------------------------------------------------------------

const main = () => document.getElementById('main');

function setPage(title, crumbs, ...content) {
  document.title = `${title} · berth`;
  const nav = document.getElementById('crumbs');
  nav.replaceChildren(...crumbs.flatMap((c, i) => [
    i ? el('span', { class: 'sep', 'aria-hidden': 'true' }, '/') : null,
    c.href ? el('a', { href: c.href }, c.text) : el('span', { 'aria-current': 'page' }, c.text),
  ]).filter(Boolean));
  const who = document.getElementById('who');
  who.replaceChildren();
  if (session.auth) {
    who.append(el('span', { class: 'muted' }, session.user),
      el('button', { type: 'button', class: 'link', onclick: logout }, 'Log out'));
  }
  main().replaceChildren(...content);
}

function repoCrumbs(name) {
  const crumbs = [{ text: 'Repositories', href: `${UI}/` }];
  crumbs.push({ text: name, href: repoUrl(name) });
  return crumbs;
}

function copyField(text, label) {
  const input = el('input', { type: 'text', readonly: true, value: text, 'aria-label': label, class: 'mono' });
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(text);
    } catch {
      input.select();
      document.execCommand('copy');
    }
    toast('Copied');
  };
  return el('div', { class: 'copy' }, input, el('button', { type: 'button', onclick: copy }, 'Copy'));
}

function table(headers, rows, cls = '') {
  return el('div', { class: 'scroll' }, el('table', { class: cls },
    el('thead', {}, el('tr', {}, headers.map((h) => el('th', { scope: 'col', class: h.cls }, h.text ?? h)))),
    el('tbody', {}, rows)));
}

function pager(total, page, go) {
  const pages = Math.max(1, Math.ceil(total / PAGE_SIZE));
  if (pages === 1) return null;
  return el('nav', { class: 'pager', 'aria-label': 'Pages' },
    el('button', { type: 'button', disabled: page <= 1, onclick: () => go(page - 1) }, '← Previous'),
    el('span', {}, `Page ${page} of ${pages}`),
    el('button', { type: 'button', disabled: page >= pages, onclick: () => go(page + 1) }, 'Next →'));
}

// A filter box whose value and the page number live in the URL (?q=&page=), so they can be shared.
function filterState() {
  const p = new URLSearchParams(location.search);
  return { q: p.get('q') || '', page: Math.max(1, parseInt(p.get('page') || '1', 10) || 1) };
}

function setFilterState(q, page) {
  const p = new URLSearchParams();
  if (q) p.set('q', q);
  if (page > 1) p.set('page', String(page));
  const s = p.toString();
  history.replaceState(null, '', `${location.pathname}${s ? `?${s}` : ''}`);
}

function filteredList(all, { label, render, headers, empty }) {
  const state = filterState();
  const input = el('input', { type: 'search', id: 'filter', placeholder: `Filter ${label} (press /)`,
    'aria-label': `Filter ${label}`, value: state.q, autocomplete: 'off' });
  const count = el('p', { class: 'muted', 'aria-live': 'polite' });
  const body = el('div');
  const draw = (q, page) => {
    const needle = q.trim().toLowerCase();
    const shown = needle ? all.filter((x) => x.toLowerCase().includes(needle)) : all;
    const pages = Math.max(1, Math.ceil(shown.length / PAGE_SIZE));
    page = Math.min(page, pages);
    setFilterState(q, page);
    count.textContent = `${shown.length} of ${all.length} ${label}`;
    const slice = shown.slice((page - 1) * PAGE_SIZE, page * PAGE_SIZE);
    body.replaceChildren(
      slice.length ? table(headers, slice.map(render)) : el('p', { class: 'empty' }, empty),
      pager(shown.length, page, (p) => draw(input.value, p)) || '');
  };
  input.addEventListener('input', () => draw(input.value, 1));
  draw(state.q, state.page);
  return [el('div', { class: 'toolbar' }, input), count, body];
}

// ---- pages ----------------------------------------------------------------------------------

// Without the right to list the catalog (token auth grants it apart: registry:catalog:*), a
// repository can still be opened by name.
function openByName(message) {
  const input = el('input', { id: 'repo-name', 'aria-label': 'Repository name', placeholder: 'library/alpine', autocomplete: 'off' });
  return [el('p', { class: 'muted' }, message),
    el('form', { class: 'copy', onsubmit: (ev) => {
      ev.preventDefault();
      if (input.value.trim()) navigate(repoUrl(input.value.trim()));
    } }, input, el('button', { type: 'submit', id: 'open-repo' }, 'Open'))];
}

async function pageRepositories() {
  setPage('Repositories', [{ text: 'Repositories' }], el('p', { class: 'muted' }, 'Loading repositories…'));
  let repos;
  try {
    repos = await listAll('/v2/_catalog', 'repositories');
  } catch (e) {
    if (!(e instanceof Denied)) throw e;
    setPage('Repositories', [{ text: 'Repositories' }], el('h1', {}, 'Repositories'),
      ...openByName('Your account may not list the repositories of this registry; open one by name.'));
    return;
  }
  setPage('Repositories', [{ text: 'Repositories' }],
    el('h1', {}, 'Repositories'),
    ...filteredList(repos, {
      label: 'repositories',
      headers: ['Name'],
      empty: repos.length ? 'No repository matches.' : 'This registry has no repositories yet.',
      render: (name) => el('tr', {}, el('td', {}, el('a', { href: repoUrl(name) }, name))),
    }));
}

// Fills one tag row: digest, size, platforms, created, pushed.
async function describeTag(name, tag, cells) {
  try {
    const m = await getManifest(name, tag);
    cells.digest.replaceChildren(el('a', { href: manifestUrl(name, m.digest), class: 'mono', title: m.digest },
      shortDigest(m.digest)));
    let image = m;
    if (INDEX_TYPES.has(m.mediaType) || m.body.manifests) {
      const children = (m.body.manifests || []).filter((d) => !(d.platform && d.platform.os === 'unknown'));
      cells.platforms.textContent = children.map((d) => platformName(d.platform)).join(', ') || '–';
      // Size of one platform's image is what a pull fetches: show the largest.
      const sizes = await Promise.all(children.slice(0, 16).map(async (d) => {
        try {
          const c = await getManifest(name, d.digest);
          return imageSize(c.body);
        } catch { return 0; }
      }));
      cells.size.textContent = sizes.length ? `≤ ${humanSize(Math.max(...sizes))}` : '–';
      image = children.length ? await getManifest(name, children[0].digest) : null;
    } else {
      cells.size.textContent = humanSize(imageSize(m.body));
    }
    if (image && image.body.config && IMAGE_CONFIG_TYPES.has(image.body.config.mediaType)) {
      const cfg = await getBlobJson(name, image.body.config.digest);
      cells.created.textContent = humanDate(cfg.created);
      if (!cells.platforms.textContent || cells.platforms.textContent === '…')
        cells.platforms.textContent = platformName(cfg);
    } else {
      cells.created.textContent = '–';
      if (cells.platforms.textContent === '…')
        cells.platforms.textContent = image ? artifactKind(image.body.artifactType || image.body.config?.mediaType) : '–';
    }
  } catch (e) {
    if (e instanceof AuthNeeded) throw e;
    cells.digest.textContent = `error: ${e.message}`;
  }
  try {
    const p = await callJson(`/ui/api/pushed?repo=${encodeURIComponent(name)}&tag=${encodeURIComponent(tag)}`);
    cells.pushed.textContent = humanDate(p.pushed);
  } catch (e) {
    cells.pushed.textContent = '–';
  }
}

function imageSize(body) {
  const layers = body.layers || [];
  return layers.reduce((s, l) => s + (l.size || 0), body.config ? body.config.size || 0 : 0);
}

async function pageRepository(name) {
  setPage(name, repoCrumbs(name).slice(0, 1).concat({ text: name }), el('p', { class: 'muted' }, 'Loading tags…'));
  const tags = await listAll(`/v2/${name}/tags/list`, 'tags');
  const pending = [];
  const render = (tag) => {
    const cells = {};
    for (const k of ['digest', 'size', 'platforms', 'created', 'pushed'])
      cells[k] = el('td', { class: `c-${k}` }, '…');
    pending.push(() => describeTag(name, tag, cells));
    return el('tr', {}, el('td', {}, el('a', { href: manifestUrl(name, tag) }, tag)),
      cells.digest, cells.size, cells.platforms, cells.created, cells.pushed);
  };
  const list = filteredList(tags, {
    label: 'tags',
    headers: ['Tag', { text: 'Digest', cls: 'c-digest' }, { text: 'Size', cls: 'c-size' },
      { text: 'Platforms', cls: 'c-platforms' }, { text: 'Created', cls: 'c-created' },
      { text: 'Pushed', cls: 'c-pushed' }],
    empty: tags.length ? 'No tag matches.' : 'This repository has no tags.',
    render: (tag) => {
      const row = render(tag);
      queueDetails();
      return row;
    },
  });
  setPage(name, repoCrumbs(name).slice(0, 1).concat({ text: name }),
    el('h1', {}, name),
    el('section', {}, el('h2', { class: 'small' }, 'Pull'), copyField(pullCommand(name, tags.includes('latest') ? 'latest' : tags[0] || 'TAG'), 'Pull command')),
    ...list);

  // Rows are filled in after each draw, a few at a time.
  function queueDetails() {
    if (queueDetails.scheduled) return;
    queueDetails.scheduled = true;
    queueMicrotask(async () => {
      queueDetails.scheduled = false;
      const jobs = pending.splice(0);
      await eachLimited(jobs, DETAIL_WORKERS, (job) => job().catch(handleError));
    });
  }
}

function pullCommand(name, ref) {
  const host = location.host;
  return ref.includes(':') ? `docker pull ${host}/${name}@${ref}` : `docker pull ${host}/${name}:${ref}`;
}

function kv(rows) {
  return el('dl', { class: 'kv' }, rows.filter(([, v]) => v !== undefined && v !== null && v !== '')
    .flatMap(([k, v]) => [el('dt', {}, k), el('dd', {}, v)]));
}

function configSection(cfg) {
  const c = cfg.config || {};
  const list = (xs) => (xs && xs.length ? el('code', {}, JSON.stringify(xs)) : null);
  const labels = Object.entries(c.Labels || {});
  const history = cfg.history || [];
  return [
    el('h2', {}, 'Configuration'),
    kv([
      ['Platform', platformName(cfg)],
      ['Created', humanDate(cfg.created)],
      ['Author', cfg.author],
      ['Entrypoint', list(c.Entrypoint)],
      ['Command', list(c.Cmd)],
      ['Working directory', c.WorkingDir],
      ['User', c.User],
      ['Exposed ports', Object.keys(c.ExposedPorts || {}).join(', ')],
      ['Stop signal', c.StopSignal],
    ]),
    el('h3', {}, 'Environment'),
    (c.Env || []).length ? el('ul', { class: 'mono plain' }, (c.Env || []).map((e) => el('li', {}, e)))
      : el('p', { class: 'empty' }, 'None'),
    el('h3', {}, 'Labels'),
    labels.length ? table(['Label', 'Value'], labels.map(([k, v]) => el('tr', {}, el('td', { class: 'mono' }, k), el('td', { class: 'mono' }, v))))
      : el('p', { class: 'empty' }, 'None'),
    el('h3', {}, 'History'),
    history.length ? table(['Created', 'Step'], history.map((h) => el('tr', { class: h.empty_layer ? 'muted' : '' },
      el('td', { class: 'nowrap' }, humanDate(h.created)), el('td', { class: 'mono wrap' }, h.created_by || h.comment || '–'))))
      : el('p', { class: 'empty' }, 'None'),
  ];
}

async function referrersSection(name, digest) {
  let idx;
  try {
    idx = await callJson(`/v2/${name}/referrers/${digest}`);
  } catch (e) {
    if (e instanceof AuthNeeded) throw e;
    return [el('h2', {}, 'Referrers'), el('p', { class: 'error' }, e.message)];
  }
  const refs = idx.manifests || [];
  if (!refs.length) return [el('h2', {}, 'Referrers'), el('p', { class: 'empty' }, 'Nothing refers to this manifest.')];
  const groups = new Map();
  for (const r of refs) {
    const kind = artifactKind(r.artifactType);
    if (!groups.has(kind)) groups.set(kind, []);
    groups.get(kind).push(r);
  }
  return [el('h2', {}, `Referrers (${refs.length})`),
    ...[...groups].map(([kind, rs]) => el('section', { class: 'referrers' },
      el('h3', {}, `${kind}s`),
      table(['Artifact type', 'Digest', 'Size', 'Created'], rs.map((r) => el('tr', {},
        el('td', { class: 'mono' }, r.artifactType || '–'),
        el('td', {}, el('a', { href: manifestUrl(name, r.digest), class: 'mono', title: r.digest }, shortDigest(r.digest))),
        el('td', {}, humanSize(r.size)),
        el('td', {}, humanDate(r.annotations && r.annotations['org.opencontainers.image.created']))))))),
  ];
}

async function deleteControls(name, ref, digest) {
  let info;
  try { info = await registryInfo(); } catch (e) { if (e instanceof AuthNeeded) throw e; return []; }
  if (!info.delete_enabled || info.readonly) {
    return [el('p', { class: 'muted' }, info.readonly ? 'The registry is read-only.' : 'Deletes are disabled on this registry (storage.delete.enabled).')];
  }
  const isTag = !ref.includes(':');
  const ask = (what, target, after) => confirmDialog(`Delete ${what}?`,
    isTag && what === 'tag' ? `Only the tag ${name}:${ref} is removed: the manifest stays, reachable by its digest.`
      : `The manifest ${digest} and every tag pointing at it are removed from ${name}.`,
    async () => {
      await call(`/v2/${name}/manifests/${target}`, { method: 'DELETE' });
      toast(`Deleted ${what}`);
      navigate(after);
    });
  return [el('div', { class: 'actions' },
    isTag ? el('button', { type: 'button', class: 'danger', onclick: () => ask('tag', ref, repoUrl(name)) }, `Delete tag ${ref}`) : null,
    el('button', { type: 'button', class: 'danger', onclick: () => ask('manifest', digest, repoUrl(name)) }, 'Delete manifest'))];
}

function confirmDialog(title, text, action) {
  const error = el('p', { class: 'error', 'aria-live': 'assertive' });
  const dialog = el('dialog', { 'aria-labelledby': 'dlg-title' },
    el('h2', { id: 'dlg-title' }, title), el('p', {}, text), error,
    el('form', { method: 'dialog', class: 'actions' },
      el('button', { value: 'cancel', autofocus: true }, 'Cancel'),
      el('button', { value: 'ok', class: 'danger', id: 'confirm' }, 'Delete')));
  dialog.addEventListener('close', async () => {
    if (dialog.returnValue === 'ok') {
      try { await action(); } catch (e) { handleError(e); }
    }
    dialog.remove();
  });
  document.body.append(dialog);
  dialog.showModal();
}

async function pageManifest(name, ref) {
  const crumbs = repoCrumbs(name).concat({ text: ref.includes(':') ? shortDigest(ref) : ref });
  setPage(`${name}:${ref}`, crumbs, el('p', { class: 'muted' }, 'Loading…'));
  const m = await getManifest(name, ref);
  const b = m.body;
  const isIndex = INDEX_TYPES.has(m.mediaType) || Array.isArray(b.manifests);
  const parts = [
    el('h1', {}, `${name}`, el('span', { class: 'ref' }, ref.includes(':') ? `@${shortDigest(ref)}` : `:${ref}`)),
    kv([
      ['Digest', el('span', { class: 'mono' }, m.digest)],
      ['Media type', el('span', { class: 'mono' }, m.mediaType)],
      ['Artifact type', b.artifactType ? el('span', { class: 'mono' }, b.artifactType) : null],
      ['Manifest size', humanSize(m.size)],
      ['Image size', isIndex ? null : humanSize(imageSize(b))],
      ['Subject', b.subject ? el('a', { href: manifestUrl(name, b.subject.digest), class: 'mono' }, b.subject.digest) : null],
    ]),
    el('h2', { class: 'small' }, 'Pull'),
    copyField(pullCommand(name, ref.includes(':') ? m.digest : ref), 'Pull command'),
  ];
  const later = []; // cells filled in once the page is drawn
  if (isIndex) {
    parts.push(el('h2', {}, 'Platforms'),
      table(['Platform', 'Digest', 'Image size', 'Media type'], (b.manifests || []).map((d) => {
        const size = el('td', { class: 'num' }, '…');
        later.push(async () => {
          try {
            size.textContent = humanSize(imageSize((await getManifest(name, d.digest)).body));
          } catch (e) {
            size.textContent = '–';
          }
        });
        return el('tr', {},
          el('td', {}, el('a', { href: manifestUrl(name, d.digest) }, platformName(d.platform))),
          el('td', { class: 'mono', title: d.digest }, shortDigest(d.digest)),
          size,
          el('td', { class: 'mono' }, d.mediaType));
      })));
  } else {
    const layers = b.layers || [];
    parts.push(el('h2', {}, `Layers (${layers.length})`),
      layers.length ? table(['#', 'Digest', 'Size', 'Media type'], layers.map((l, i) => el('tr', {},
        el('td', {}, String(i + 1)),
        el('td', { class: 'mono', title: l.digest }, shortDigest(l.digest)),
        el('td', { class: 'num' }, humanSize(l.size)),
        el('td', { class: 'mono' }, l.mediaType)))) : el('p', { class: 'empty' }, 'No layers.'));
    if (b.config && IMAGE_CONFIG_TYPES.has(b.config.mediaType)) {
      try {
        parts.push(...configSection(await getBlobJson(name, b.config.digest)));
      } catch (e) {
        if (e instanceof AuthNeeded) throw e;
        parts.push(el('h2', {}, 'Configuration'), el('p', { class: 'error' }, e.message));
      }
    } else if (b.config) {
      parts.push(el('h2', {}, 'Configuration'), kv([['Media type', el('span', { class: 'mono' }, b.config.mediaType)], ['Size', humanSize(b.config.size)]]));
    }
  }
  const annotations = Object.entries(b.annotations || {});
  if (annotations.length) {
    parts.push(el('h2', {}, 'Annotations'), table(['Key', 'Value'], annotations.map(([k, v]) => el('tr', {},
      el('td', { class: 'mono' }, k), el('td', { class: 'mono wrap' }, v)))));
  }
  parts.push(...await referrersSection(name, m.digest));
  parts.push(el('h2', {}, 'Delete'), ...await deleteControls(name, ref, m.digest));
  setPage(`${name}:${ref}`, crumbs, ...parts);
  await eachLimited(later, DETAIL_WORKERS, (job) => job());
}

// ---- login ----------------------------------------------------------------------------------

function pageLogin(challenge, message) {
  // With token auth the credentials are checked by the token server (through berth).
  const bearer = /^\s*bearer/i.test(challenge);
  const user = el('input', { id: 'username', name: 'username', autocomplete: 'username', required: true, value: session.user });
  const password = el('input', { id: 'password', name: 'password', type: 'password', autocomplete: 'current-password', required: true });
  const error = el('p', { class: 'error', 'aria-live': 'assertive' }, message || '');
  const form = el('form', { class: 'login', onsubmit: async (ev) => {
    ev.preventDefault();
    const auth = basicAuth(user.value, password.value);
    try {
      if (bearer) {
        tokens.clear();
        await bearerToken('', auth);
      } else {
        await call('/v2/', { auth });
      }
    } catch (e) {
      error.textContent = e instanceof AuthNeeded ? 'Wrong username or password.' : e.message;
      password.select();
      return;
    }
    session.auth = auth;
    session.user = user.value;
    route();
  } },
  el('h1', {}, 'Log in'),
  el('label', { for: 'username' }, 'Username'), user,
  el('label', { for: 'password' }, 'Password'), password,
  error,
  el('button', { type: 'submit', id: 'login' }, 'Log in'));
  setPage('Log in', [{ text: 'Log in' }], form);
  (session.user ? password : user).focus();
}

function logout() {
  session.auth = null;
  tokens.clear();
  infoCache = null;
  navigate(`${UI}/`);
}

// ---- routing --------------------------------------------------------------------------------

function handleError(e) {
  if (e instanceof AuthNeeded) {
    const had = Boolean(session.auth);
    session.auth = null;
    tokens.clear();
    infoCache = null;
    pageLogin(e.message, had ? 'Your credentials were refused; log in again.' : '');
    return;
  }
  if (!(e instanceof ApiError)) console.error(e); // a bug, not an answer of the registry
  const notFound = e instanceof ApiError && e.status === 404;
  const title = notFound ? 'Not found' : e instanceof Denied ? 'Not allowed' : 'Something went wrong';
  setPage(title, [{ text: 'Repositories', href: `${UI}/` }], el('h1', {}, title), el('p', { class: 'error' }, e.message));
}

async function route() {
  try {
    const path = decodeURIComponent(location.pathname.slice(UI.length)).replace(/\/+$/, '');
    let m;
    if (path === '' || path === '/') await pageRepositories();
    else if ((m = path.match(/^\/repo\/(.+?)\/-\/manifest\/([^/]+)$/))) await pageManifest(m[1], m[2]);
    else if ((m = path.match(/^\/repo\/(.+)$/))) await pageRepository(m[1]);
    else throw new ApiError(404, `No page at ${location.pathname}`);
    main().focus({ preventScroll: true });
  } catch (e) {
    handleError(e);
  }
}

function navigate(url) {
  history.pushState(null, '', url);
  window.scrollTo(0, 0);
  route();
}

// Links inside the interface change the page without reloading it.
document.addEventListener('click', (ev) => {
  const a = ev.target.closest('a[href]');
  if (!a || ev.defaultPrevented || ev.button !== 0 || ev.metaKey || ev.ctrlKey || ev.shiftKey || ev.altKey) return;
  const url = new URL(a.href, location.href);
  if (url.origin !== location.origin || !url.pathname.startsWith(`${UI}/`)) return;
  ev.preventDefault();
  navigate(url.pathname + url.search);
});
document.addEventListener('keydown', (ev) => {
  const f = document.getElementById('filter');
  if (ev.key === '/' && f && document.activeElement !== f && !/INPUT|TEXTAREA/.test(document.activeElement.tagName)) {
    ev.preventDefault();
    f.focus();
  }
});
window.addEventListener('popstate', route);
route();
