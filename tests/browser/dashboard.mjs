// The dashboard in a real headless Chromium (Debian `chromium`, driven by
// playwright-core): the device view of `edgeseg run` (page loads, the MJPEG
// stream shows frames, counters move, failing frames fill in) and the fleet
// view of `edgeseg dashboard --mqtt` (two daemons listed online, one marked
// offline after SIGTERM). Screenshots: target/screenshots/device.png and
// fleet.png always, *-failure.png when a check fails.
//
//   npm ci --prefix tests/browser && node tests/browser/dashboard.mjs
//
// Needs target/debug/edgeseg (cargo build), /usr/bin/chromium and /usr/sbin/mosquitto.

import { chromium } from 'playwright-core';
import { spawn } from 'node:child_process';
import { mkdtempSync, mkdirSync, writeFileSync, rmSync, existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const TARGET = process.env.CARGO_TARGET_DIR ? resolve(process.env.CARGO_TARGET_DIR) : join(ROOT, 'target');
const BIN = process.env.EDGESEG_BIN || join(TARGET, 'debug/edgeseg');
const SHOTS = join(ROOT, 'target/screenshots');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const MOSQUITTO = '/usr/sbin/mosquitto';
const MOSQUITTO_PUB = '/usr/bin/mosquitto_pub';
const MODEL = join(ROOT, 'models/unet_defects.onnx');

const tmp = mkdtempSync(join(tmpdir(), 'edgeseg-browser-'));
const children = [];
let page;

function freePort() {
  return new Promise((ok, fail) => {
    const s = createServer();
    s.on('error', fail);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => ok(port));
    });
  });
}

function start(name, cmd, args) {
  const child = spawn(cmd, args, { cwd: ROOT, env: { ...process.env, RUST_LOG: 'warn' }, stdio: ['ignore', 'ignore', 'pipe'] });
  child.log = '';
  child.stderr.on('data', (d) => { child.log += d; });
  child.name = name;
  children.push(child);
  return child;
}

function stop(child, signal = 'SIGTERM') {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((ok) => {
    child.once('exit', ok);
    child.kill(signal);
  });
}

function daemon(name, port, body) {
  const cfg = join(tmp, `${name}.toml`);
  writeFileSync(cfg, `[device]\nname = "${name}"\n[model]\npath = ${JSON.stringify(MODEL)}\n[source]\nkind = "sample"\nfps = 10\n${body}` +
    (port ? `[dashboard]\nlisten = "127.0.0.1:${port}"\n` : ''));
  return start(name, BIN, ['run', '--config', cfg]);
}

async function waitFor(what, fn, timeoutMs = 30000) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`timed out waiting for ${what} (last: ${last instanceof Error ? last.message : JSON.stringify(last)})`);
}

async function listening(port) {
  await waitFor(`a server on port ${port}`, async () => (await fetch(`http://127.0.0.1:${port}/api/status`)).ok, 60000);
}

const counter = (key) => page.$eval(`#counters [data-key="${key}"] .value`, (e) => Number(e.textContent));

async function deviceView(browser) {
  const port = await freePort();
  const d = daemon('line1-cam', port, '');
  await listening(port);
  page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  await page.goto(`http://127.0.0.1:${port}/`);
  await page.waitForSelector('body[data-ready="true"]', { timeout: 15000 });
  const mode = await page.textContent('#mode');
  if (mode !== 'device') throw new Error(`mode is ${mode}, want device`);
  // The MJPEG stream shows frames.
  await page.waitForFunction(() => document.querySelector('#stream').naturalWidth > 0, null, { timeout: 20000 });
  // Counters move while the sample source runs.
  await page.waitForSelector('#counters [data-key="frames"]', { timeout: 10000 });
  const before = await counter('frames');
  await page.waitForTimeout(3000);
  const after = await counter('frames');
  if (!(after > before)) throw new Error(`frames counter stayed at ${before} over 3 s`);
  // The failing frames list fills, with images.
  await page.waitForFunction(() => {
    const imgs = [...document.querySelectorAll('#failures .failure img')];
    return imgs.length > 0 && imgs.every((i) => i.complete && i.naturalWidth > 0);
  }, null, { timeout: 20000 });
  await page.waitForSelector('#results li', { timeout: 10000 });
  await page.screenshot({ path: join(SHOTS, 'device.png'), fullPage: true });
  console.log(`device view ok: frames ${before} -> ${after}; screenshot target/screenshots/device.png`);
  await page.close();
  await stop(d);
}

async function fleetView(browser) {
  const mqttPort = await freePort();
  const conf = join(tmp, 'mosquitto.conf');
  writeFileSync(conf, `listener ${mqttPort} 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest stderr\n`);
  start('mosquitto', MOSQUITTO, ['-c', conf]);
  const url = `mqtt://127.0.0.1:${mqttPort}`;
  const mqtt = `[pipeline]\nstats_interval_s = 1\n[sinks.mqtt]\nurl = "${url}"\n`;
  await new Promise((r) => setTimeout(r, 300));
  const a = daemon('press-a', 0, mqtt);
  daemon('press-b', 0, mqtt);
  const port = await freePort();
  start('fleet', BIN, ['dashboard', '--mqtt', url, '--listen', `127.0.0.1:${port}`]);
  await listening(port);
  page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  await page.goto(`http://127.0.0.1:${port}/`);
  await page.waitForSelector('body[data-mode="fleet"]', { timeout: 15000 });
  const state = (name) => `.device[data-device="${name}"] .state`;
  for (const name of ['press-a', 'press-b']) {
    await page.waitForSelector(`.device[data-device="${name}"][data-online="true"]`, { timeout: 40000 });
  }
  await page.waitForFunction(() => [...document.querySelectorAll('.device [data-key="frames"] .value')].every((v) => Number(v.textContent) > 0), null, { timeout: 20000 });
  await badDevices(mqttPort);
  await stop(a);
  await page.waitForSelector(`.device[data-device="press-a"][data-online="false"]`, { timeout: 20000 });
  const b = await page.textContent(state('press-b'));
  if (b !== 'online') throw new Error(`press-b shows ${b}, want online`);
  await page.screenshot({ path: join(SHOTS, 'fleet.png'), fullPage: true });
  console.log(`fleet view ok: press-a ${await page.textContent(state('press-a'))}, press-b ${b}; screenshot target/screenshots/fleet.png`);
  await page.close();
}

// One message with mosquitto_pub (waits for the broker's ack).
function publish(mqttPort, topic, payload, retain = false) {
  return new Promise((ok, fail) => {
    const args = ['-h', '127.0.0.1', '-p', String(mqttPort), '-q', '1', '-t', topic, '-m', payload, ...(retain ? ['-r'] : [])];
    const p = spawn(MOSQUITTO_PUB, args, { stdio: 'ignore' });
    p.on('exit', (code) => (code === 0 ? ok() : fail(new Error(`mosquitto_pub ${topic} exited ${code}`))));
  });
}

const frames = (name) => page.$eval(`.device[data-device="${name}"] [data-key="frames"] .value`, (e) => Number(e.textContent));

// Issue 24 item 13: a device publishing `findings: "not-a-list"` threw in the
// page and stopped every later card. The server now refuses the document (the
// card says so), and the page draws each card on its own: a device entry it
// cannot draw (injected here into /api/status, ahead of the others) leaves
// the other cards updating.
async function badDevices(mqttPort) {
  await publish(mqttPort, 'edgeseg/press-bad/status', '{"state":"online","model":"unet"}', true);
  await publish(mqttPort, 'edgeseg/press-bad/detections', '{"frame":1,"verdict":"fail","findings":"not-a-list"}');
  await page.waitForFunction(() => {
    const r = document.querySelector('.device[data-device="press-bad"] .refused');
    return r && !r.hidden && r.textContent.includes('malformed');
  }, null, { timeout: 15000 });
  const corrupt = { device: 'a-corrupt', online: true, status: 'not-an-object', stats: null, detections: 'x', latency: 'not-a-list',
    recent_defects: [{ frame: 1, findings: 'not-a-list' }, null] };
  await page.route('**/api/status*', async (route) => {
    const response = await route.fetch();
    const body = await response.json();
    body.devices = [corrupt, ...body.devices];
    await route.fulfill({ response, json: body });
  });
  await page.waitForSelector('.device[data-device="a-corrupt"]', { timeout: 10000 });
  const before = await frames('press-b');
  await page.waitForFunction((b) => Number(document.querySelector('.device[data-device="press-b"] [data-key="frames"] .value').textContent) > b,
    before, { timeout: 15000 });
  await page.unroute('**/api/status*');
  console.log(`fleet view: a refused document and an undrawable device left press-b updating (frames ${before} -> ${await frames('press-b')})`);
}

async function main() {
  for (const [what, path] of [['edgeseg (cargo build)', BIN], ['chromium (apt-get install chromium)', CHROMIUM], ['mosquitto (apt-get install mosquitto)', MOSQUITTO],
    ['mosquitto_pub (apt-get install mosquitto-clients)', MOSQUITTO_PUB]]) {
    if (!existsSync(path)) throw new Error(`${path} not found; fix: install ${what}`);
  }
  mkdirSync(SHOTS, { recursive: true });
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
    // playwright gives Chromium a fresh temporary --user-data-dir of its own (and refuses one in args).
  });
  try {
    for (const [name, test] of [['device', deviceView], ['fleet', fleetView]]) {
      try {
        await test(browser);
      } catch (e) {
        const shot = join(SHOTS, `${name}-failure.png`);
        if (page && !page.isClosed()) await page.screenshot({ path: shot, fullPage: true }).catch(() => {});
        for (const c of children) if (c.log) console.error(`--- ${c.name} stderr ---\n${c.log.slice(-3000)}`);
        throw new Error(`${name} view: ${e.message}\nscreenshot: ${shot}`);
      }
    }
  } finally {
    await browser.close();
  }
}

const started = Date.now();
main()
  .then(() => console.log(`browser tests passed in ${((Date.now() - started) / 1000).toFixed(1)} s`))
  .catch((e) => {
    console.error(`browser tests FAILED: ${e.message}`);
    process.exitCode = 1;
  })
  .finally(async () => {
    await Promise.all(children.map((c) => stop(c, 'SIGKILL')));
    rmSync(tmp, { recursive: true, force: true });
  });
