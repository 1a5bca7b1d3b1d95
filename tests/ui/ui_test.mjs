// Drives berth's web interface in headless Chromium (Debian's /usr/bin/chromium) with
// playwright-core. Run by tests/e2e/test_ui.sh, which starts berth and gives:
//   node ui_test.mjs htpasswd BASE_URL USER PASSWORD SCREENSHOT_DIR
//     berth with htpasswd, deletes on, ui.enabled and 10,000 extra repositories: every page,
//     light, dark and phone-sized, a tag deleted
//   node ui_test.mjs token BASE_URL USER PASSWORD SCREENSHOT_DIR
//     berth with token auth (tests/fixtures/auth/tokenserver.py: USER may pull and push tok/app,
//     pull tok/other, and not list the catalog): login through berth's token forwarding
// Pushes its own images over plain HTTP first: a two-platform index, an image with a
// signature and an SBOM pointing at it (subject), and a tag to delete.
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const [mode, base, user, password, shots] = process.argv.slice(2);
const AUTH = `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
const REPO = mode === 'token' ? 'tok' : 'ui'; // the test's repositories: REPO/app, REPO/multi
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
mkdirSync(shots, { recursive: true });

function check(cond, what) {
  if (!cond) throw new Error(`check failed: ${what}`);
  console.log(`ok - ${what}`);
}

// ---- pushing over the registry API ----------------------------------------------------------

const sha = (buf) => `sha256:${createHash('sha256').update(buf).digest('hex')}`;

// With token auth: the token for a challenge, from its realm, with the Basic credentials.
async function tokenFor(challenge) {
  const p = Object.fromEntries([...challenge.matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1], m[2]]));
  const url = `${p.realm}?service=${encodeURIComponent(p.service)}${p.scope ? `&scope=${encodeURIComponent(p.scope)}` : ''}`;
  const resp = await fetch(url, { headers: { Authorization: AUTH } });
  return `Bearer ${(await resp.json()).token}`;
}

async function api(path, init = {}) {
  const send = (auth) => fetch(`${base}${path}`, { ...init, headers: { Authorization: auth, ...(init.headers || {}) } });
  let resp = await send(AUTH);
  const challenge = resp.headers.get('WWW-Authenticate') || '';
  if (resp.status === 401 && challenge.startsWith('Bearer')) resp = await send(await tokenFor(challenge));
  if (!resp.ok) throw new Error(`${init.method || 'GET'} ${path}: ${resp.status} ${await resp.text()}`);
  return resp;
}

async function pushBlob(repo, buf) {
  const digest = sha(buf);
  await api(`/v2/${repo}/blobs/uploads/?digest=${digest}`, {
    method: 'POST', body: buf, headers: { 'Content-Type': 'application/octet-stream' },
  });
  return { digest, size: buf.length };
}

// ref null: pushed by its digest, untagged.
async function pushManifest(repo, ref, doc, mediaType) {
  const buf = Buffer.from(JSON.stringify(doc));
  await api(`/v2/${repo}/manifests/${ref || sha(buf)}`, { method: 'PUT', body: buf, headers: { 'Content-Type': mediaType } });
  return { mediaType, digest: sha(buf), size: buf.length };
}

async function pushImage(repo, ref, arch, extra = {}) {
  const layers = [];
  for (const n of [1500, 70000]) {
    const b = await pushBlob(repo, randomBytes(n));
    layers.push({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', ...b });
  }
  const config = Buffer.from(JSON.stringify({
    created: '2026-03-01T12:00:00Z', architecture: arch, os: 'linux',
    config: {
      Entrypoint: ['/usr/bin/app', '--serve'], Cmd: ['--port', '8080'], WorkingDir: '/srv',
      Env: ['PATH=/usr/local/bin:/usr/bin', `APP_ARCH=${arch}`],
      Labels: { 'org.opencontainers.image.source': 'https://example.org/app', maintainer: 'ui-test' },
      ExposedPorts: { '8080/tcp': {} },
    },
    rootfs: { type: 'layers', diff_ids: layers.map(() => sha(randomBytes(8))) },
    history: [
      { created: '2026-03-01T11:00:00Z', created_by: 'ADD rootfs.tar /' },
      { created: '2026-03-01T11:30:00Z', created_by: 'ENV APP_ARCH', empty_layer: true },
      { created: '2026-03-01T12:00:00Z', created_by: 'COPY app /usr/bin/app' },
    ],
  }));
  const cfg = await pushBlob(repo, config);
  return pushManifest(repo, ref, {
    schemaVersion: 2, mediaType: OCI_MANIFEST,
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...cfg }, layers, ...extra,
  }, OCI_MANIFEST);
}

async function pushArtifact(repo, subject, artifactType, content) {
  const empty = await pushBlob(repo, Buffer.from('{}'));
  const layer = await pushBlob(repo, Buffer.from(content));
  return pushManifest(repo, null, {
    schemaVersion: 2, mediaType: OCI_MANIFEST, artifactType,
    config: { mediaType: 'application/vnd.oci.empty.v1+json', ...empty },
    layers: [{ mediaType: artifactType, ...layer }],
    subject: { mediaType: subject.mediaType, digest: subject.digest, size: subject.size },
    annotations: { 'org.opencontainers.image.created': '2026-03-02T08:00:00Z' },
  }, OCI_MANIFEST);
}

async function pushFixtures() {
  if (mode === 'token') {
    const app = await pushImage(`${REPO}/app`, 'v2', 'amd64');
    await pushArtifact(`${REPO}/app`, app, 'application/vnd.dev.cosign.artifact.sig.v1+json', 'signature bytes');
    return { app };
  }
  const amd = await pushImage('ui/multi', 'amd64-only', 'amd64');
  const arm = await pushImage('ui/multi', 'arm64-only', 'arm64');
  const index = await pushManifest('ui/multi', 'v1', {
    schemaVersion: 2, mediaType: OCI_INDEX, manifests: [
      { ...amd, platform: { os: 'linux', architecture: 'amd64' } },
      { ...arm, platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } },
    ],
  }, OCI_INDEX);
  const app = await pushImage('ui/app', 'v2', 'amd64');
  await pushImage('ui/app', 'old', 'amd64');
  const sig = await pushArtifact('ui/app', app, 'application/vnd.dev.cosign.artifact.sig.v1+json', 'signature bytes');
  await pushArtifact('ui/app', app, 'application/spdx+json', '{"spdxVersion":"SPDX-2.3"}');
  return { index, app, sig };
}

// ---- the browser ----------------------------------------------------------------------------

const problems = [];
function watch(page) {
  // Any script error or CSP violation fails the test.
  // (Chromium logs each 401 the login probes get as a failed load: expected, not a problem.)
  page.on('console', (m) => {
    if (m.type() === 'error' && !/status of 401/.test(m.text())) problems.push(`console: ${m.text()}`);
  });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  return page;
}

// Waits for the tag rows to be filled in. (Not page.waitForFunction: it evaluates a string,
// which the interface's Content-Security-Policy rightly forbids.)
async function rowsFilled(page) {
  await page.waitForSelector('td.c-pushed');
  for (let i = 0; i < 200 && await page.locator('td:text-is("…")').count() > 0; i++)
    await page.waitForTimeout(50);
  check(await page.locator('td:text-is("…")').count() === 0, 'every tag row is filled in');
}

async function shot(page, name) {
  await page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });
}

// On the login form: a wrong password first, then the right one (Enter submits).
async function refuseThenLogIn(page, what) {
  await page.fill('#username', user);
  await page.fill('#password', 'not the password');
  await page.click('#login');
  await page.waitForSelector('text=Wrong username or password.');
  check(true, what);
  await page.fill('#password', password);
  await page.keyboard.press('Enter');
}

async function lightDesktop(browser, fx) {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 }, colorScheme: 'light' });
  const page = watch(await ctx.newPage());

  await page.goto(`${base}/ui/`);
  await page.waitForSelector('form.login');
  await shot(page, 'login');
  await refuseThenLogIn(page, 'a wrong password is refused on the login form');
  await page.waitForSelector('h1:text-is("Repositories")');
  const counted = await page.textContent('main p.muted');
  check(/^10002 of 10002 repositories$/.test(counted), `all 10,002 repositories listed (${counted})`);
  check(await page.isVisible('text=Page 1 of 101'), 'repositories are paginated, 100 a page');
  await page.click('text=Next →');
  await page.waitForSelector('text=Page 2 of 101');
  check(page.url().endsWith('/ui/?page=2'), 'the page number is in the URL');
  await shot(page, 'repositories');
  await page.fill('#filter', 'ui/');
  await page.waitForSelector('text=2 of 10002 repositories');
  check(await page.isVisible('a:text-is("ui/app")') && await page.isVisible('a:text-is("ui/multi")'),
    'filtering as you type leaves the two matching repositories');

  await page.click('a:text-is("ui/multi")');
  await page.waitForSelector('h1:text-is("ui/multi")');
  check(page.url() === `${base}/ui/repo/ui/multi`, 'a repository has its own URL');
  await rowsFilled(page);
  const row = await page.textContent('tr:has(a:text-is("v1"))');
  check(row.includes('linux/amd64, linux/arm64/v8'), `the tag row lists the platforms (${row})`);
  check(/2026-03-01 12:00 UTC/.test(row), 'the tag row shows the created date');
  const pushed = new Date().toISOString().slice(0, 10);
  check(row.includes(pushed), 'the tag row shows the pushed date (today)');
  check(/≤ \d+(\.\d)? KB/.test(row), 'the tag row shows a size');
  await shot(page, 'repository');

  await page.click('a:text-is("v1")');
  await page.waitForSelector('h2:text-is("Platforms")');
  check(page.url() === `${base}/ui/repo/ui/multi/-/manifest/v1`, 'an image has its own URL');
  check(await page.inputValue('.copy input') === `docker pull ${new URL(base).host}/ui/multi:v1`, 'the pull command is shown');
  check((await page.textContent('main')).includes(fx.index.digest), 'the index digest is shown');
  await page.waitForSelector('tr:has(a:text-is("linux/arm64/v8")) td.num:text-matches("KB")');
  check(true, "each platform's image size is shown");
  await shot(page, 'index');
  await page.click('a:text-is("linux/arm64/v8")');
  await page.waitForSelector('h2:text-is("Configuration")');
  const image = await page.textContent('main');
  check(image.includes('["/usr/bin/app","--serve"]'), 'the entrypoint is shown');
  check(image.includes('APP_ARCH=arm64'), 'the environment is shown');
  check(image.includes('org.opencontainers.image.source'), 'the labels are shown');
  check(image.includes('COPY app /usr/bin/app'), 'the history is shown');
  check(image.includes('Layers (2)') && image.includes('70 KB'), 'the layers and their sizes are shown');

  await page.goto(`${base}/ui/repo/ui/app/-/manifest/v2`);
  await page.waitForSelector('h2:text-is("Referrers (2)")');
  check(await page.isVisible('h3:text-is("Signatures")') && await page.isVisible('h3:text-is("SBOMs")'),
    'referrers are grouped: a signature and an SBOM');
  await shot(page, 'image');
  await page.click(`a[title="${fx.sig.digest}"]`);
  await page.waitForSelector('dt:text-is("Subject")');
  check(await page.isVisible(`a:text-is("${fx.app.digest}")`), 'the signature links to its subject');

  // Delete a tag with the keyboard: Tab to the button, Enter, then confirm in the dialog.
  await page.goto(`${base}/ui/repo/ui/app/-/manifest/old`);
  await page.waitForSelector('button:text-is("Delete tag old")');
  await page.focus('button:text-is("Delete tag old")');
  await page.keyboard.press('Enter');
  await page.waitForSelector('dialog[open]');
  await shot(page, 'delete-dialog');
  await page.click('#confirm');
  await page.waitForSelector('h1:text-is("ui/app")');
  await page.waitForSelector('a:text-is("v2")');
  check(!(await page.isVisible('a:text-is("old")')), 'the deleted tag is gone from the list');
  const tags = await (await api('/v2/ui/app/tags/list')).json();
  check(!tags.tags.includes('old') && tags.tags.includes('v2'), 'the registry no longer has the tag');

  await page.click('button:text-is("Log out")');
  await page.waitForSelector('form.login');
  check(true, 'logging out returns to the login form');
  await ctx.close();
}

async function otherLooks(browser) {
  const looks = [
    { name: 'dark', opts: { viewport: { width: 1280, height: 800 }, colorScheme: 'dark' } },
    { name: 'phone', opts: { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, deviceScaleFactor: 2, colorScheme: 'light' } },
    { name: 'phone-dark', opts: { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, deviceScaleFactor: 2, colorScheme: 'dark' } },
  ];
  for (const { name, opts } of looks) {
    const ctx = await browser.newContext(opts);
    const page = watch(await ctx.newPage());
    await page.goto(`${base}/ui/repo/ui/multi`);
    await page.fill('#username', user);
    await page.fill('#password', password);
    await page.click('#login');
    await page.waitForSelector('h1:text-is("ui/multi")');
    await rowsFilled(page);
    await shot(page, `${name}-repository`);
    await page.goto(`${base}/ui/repo/ui/app/-/manifest/v2`);
    await page.waitForSelector('h2:text-is("Referrers (2)")');
    await shot(page, `${name}-image`);
    if (name.startsWith('phone')) {
      const wide = await page.evaluate(() => document.documentElement.scrollWidth);
      check(wide <= 390, `${name}: the image page fits the phone's width (${wide}px)`);
    }
    await ctx.close();
  }
}

// Token auth: the browser gets its tokens through berth (/ui/api/token), never from the token
// server's origin, which the page's Content-Security-Policy would not let it call.
async function tokenAuth(browser, fx) {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 }, colorScheme: 'light' });
  const page = watch(await ctx.newPage());
  const origins = new Set();
  page.on('request', (r) => origins.add(new URL(r.url()).origin));
  await page.goto(`${base}/ui/`);
  await page.waitForSelector('form.login');
  check(true, 'anonymous: the login form');
  await refuseThenLogIn(page, 'a wrong password is refused (by the token server, through berth)');
  await page.waitForSelector('#repo-name');
  check(await page.isVisible('text=may not list the repositories'), 'no catalog access: the page says so and offers to open a repository by name');
  await shot(page, 'token-repositories');
  await page.fill('#repo-name', `${REPO}/app`);
  await page.keyboard.press('Enter');
  await page.waitForSelector(`h1:text-is("${REPO}/app")`);
  await rowsFilled(page);
  const row = await page.textContent('tr:has(a:text-is("v2"))');
  check(row.includes('linux/amd64') && row.includes(new Date().toISOString().slice(0, 10)), `the tag row is filled in with a token (${row})`);
  await shot(page, 'token-repository');
  await page.click('a:text-is("v2")');
  await page.waitForSelector('h2:text-is("Referrers (1)")');
  check((await page.textContent('main')).includes(fx.app.digest), 'the image page is drawn with a token');
  await page.goto(`${base}/ui/repo/${REPO}/secret`);
  await page.waitForSelector('h1:text-is("Not allowed")');
  check(await page.isVisible(`text=repository:${REPO}/secret:pull`), 'a repository the account may not pull is refused, naming the scope');
  check(origins.size === 1 && origins.has(new URL(base).origin), `the page talked to berth only (${[...origins].join(', ')})`);
  await ctx.close();
}

const fx = await pushFixtures();
const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox'] });
try {
  if (mode === 'token') {
    await tokenAuth(browser, fx);
  } else {
    await lightDesktop(browser, fx);
    await otherLooks(browser);
  }
} finally {
  await browser.close();
}
check(problems.length === 0, `no script errors or CSP violations${problems.length ? `: ${problems.join('; ')}` : ''}`);
