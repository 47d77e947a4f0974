// Makes docs/screenshots/live.png and docs/screenshots/report.png from a real run, so that they
// stay true: the demo lab (with its name server, and 5% loss on r7 -> r8 so that loss shows), `trace --live` in tmux (the screen captured as
// text and rendered in a terminal-like page), and the HTML report of a continuous run, both
// photographed by headless Chromium. Root, tmux and chromium needed; run after `npm run build`:
//
//   sudo node scripts/screenshots.js
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const CLI = join(ROOT, 'bin', 'pathlens.js');
const OUT = join(ROOT, 'docs', 'screenshots');
const LAB = 'shots';
const SESSION = `pl-shots-${process.pid}`;

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', ...opts });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr || r.error}`);
  return r.stdout;
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const chromium = (args) => run('chromium', ['--headless', '--no-sandbox', '--disable-gpu', '--hide-scrollbars', ...args], { timeout: 60000 });
const esc = (s) => s.replace(/[&<>]/g, (c) => `&#${c.charCodeAt(0)};`);

const dir = mkdtempSync(join(tmpdir(), 'pl-shots-'));
const { demo } = await import(join(ROOT, 'dist', 'src', 'lab', 'presets.js'));
const spec = demo({ name: LAB });
const l = spec.links.findIndex((x) => x.a === 'r7' && x.b === 'r8');
spec.links[l] = { ...spec.links[l], a_to_b: { ...spec.links[l].impair, loss: 0.05 }, b_to_a: spec.links[l].impair };
const specPath = join(dir, 'lab.json');
writeFileSync(specPath, JSON.stringify(spec));
run(process.execPath, [CLI, 'lab', 'up', specPath]);
try {
  const ns = `pl-${LAB}-src`;
  const dst = run(process.execPath, [CLI, 'lab', 'addr', 'dst', '--lab', LAB]).trim();
  run('tmux', ['new-session', '-d', '-s', SESSION, '-x', '104', '-y', '19', 'ip', 'netns', 'exec', ns, process.execPath, CLI, 'trace', '--live', '--interval', '0.5', dst]);
  await sleep(8000);
  const screen = run('tmux', ['capture-pane', '-p', '-t', SESSION]).replace(/\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ/, 'YYYY-MM-DDTHH:MM:SSZ');
  run('tmux', ['send-keys', '-t', SESSION, 'q']);
  const page = join(dir, 'live.html');
  writeFileSync(page, `<!doctype html><meta charset="utf-8"><style>body{margin:0;background:#1e1e1e}pre{margin:0;padding:14px 16px;color:#e8e8e8;font:15px/1.3 "DejaVu Sans Mono",monospace}</style><pre>${esc(screen.replace(/\s+$/, ''))}</pre>`);
  chromium([`--screenshot=${join(OUT, 'live.png')}`, '--window-size=900,440', `file://${page}`]);
  const html = join(dir, 'report.html');
  run('ip', ['netns', 'exec', ns, process.execPath, CLI, 'trace', '-c', '40', '--interval', '0.1', '--html', html, dst]);
  chromium([`--screenshot=${join(OUT, 'report.png')}`, '--window-size=1100,1300', `file://${html}`]);
  process.stdout.write(`wrote ${join(OUT, 'live.png')} and ${join(OUT, 'report.png')}\n${readFileSync(page, 'utf8').length} bytes of captured screen\n`);
} finally {
  spawnSync('tmux', ['kill-session', '-t', SESSION]);
  run(process.execPath, [CLI, 'lab', 'down', LAB]);
  rmSync(dir, { recursive: true, force: true });
}
