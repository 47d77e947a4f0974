/**
 * What deploy/ ships for a fleet of agents (issue 23), checked as far as this machine can: the
 * Kubernetes manifests against the API's schemas (kubernetes-models, from the npm registry), the
 * ConfigMap's targets through the monitor's own target-file reader, every pathlens command the
 * manifests, the systemd unit and the Dockerfile run parsed by the CLI's own option table (values
 * included), the unit's keys, and the Dockerfile's sources. (The image cannot be built here; the
 * Grafana dashboard's queries are run against a real Prometheus in test/netns/fleet.test.ts.)
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { parseAllDocuments } from 'yaml';
import { monitorCommand } from '../../src/cli/monitor.js';
import { readTargetsFile } from '../../src/monitor/config.js';
import { DEFAULT_THRESHOLDS } from '../../src/monitor/health.js';
import { MONITOR_DEFAULTS } from '../../src/monitor/request.js';
import { ROOT } from '../helpers/lab.js';

const DEPLOY = join(ROOT, 'deploy');

/** Parses `pathlens monitor ARGS` with the CLI's own command (its action replaced): throws on a bad option or value. */
async function parsesAsMonitor(args: string[]): Promise<void> {
  assert.equal(args[0], 'monitor', `a monitor command: ${args.join(' ')}`);
  const cmd = monitorCommand().exitOverride().configureOutput({ writeErr: () => {}, writeOut: () => {} });
  let ran = false;
  cmd.action(() => {
    ran = true;
  });
  await cmd.parseAsync(args.slice(1), { from: 'user' });
  assert.ok(ran, args.join(' '));
}

test('deploy/kubernetes: a ConfigMap and a DaemonSet valid against the Kubernetes API schemas, targets the monitor reads, args the CLI takes', async () => {
  const docs = parseAllDocuments(readFileSync(join(DEPLOY, 'kubernetes', 'daemonset.yml'), 'utf8')).map((d) => {
    assert.deepEqual(d.errors, []);
    return d.toJS() as { kind: string; apiVersion: string; data?: Record<string, string>; spec?: { template: { spec: { containers: { args: string[] }[] } } } };
  });
  assert.deepEqual(docs.map((d) => `${d.apiVersion}/${d.kind}`), ['v1/ConfigMap', 'apps/v1/DaemonSet']);
  const { ConfigMap } = await import('kubernetes-models/v1');
  const { DaemonSet } = await import('kubernetes-models/apps/v1');
  new ConfigMap(docs[0] as never).validate();
  new DaemonSet(docs[1] as never).validate();
  // The validator is not a rubber stamp: a container without a name is refused.
  const broken = structuredClone(docs[1]) as { spec: { template: { spec: { containers: Record<string, unknown>[] } } } };
  delete broken.spec.template.spec.containers[0].name;
  assert.throws(() => new DaemonSet(broken as never).validate(), /name/);

  const dir = mkdtempSync(join(tmpdir(), 'pl-deploy-'));
  try {
    const file = join(dir, 'targets.yml');
    writeFileSync(file, docs[0].data!['targets.yml']);
    const base = { method: 'auto' as const, udpPort: MONITOR_DEFAULTS.udpPort, tcpPort: MONITOR_DEFAULTS.tcpPort, intervalMs: MONITOR_DEFAULTS.intervalMs, thresholds: DEFAULT_THRESHOLDS, placement: {} };
    const specs = await readTargetsFile(file, base);
    assert.deepEqual(specs.map((s) => [s.target, s.method]), [['192.0.2.10', 'auto'], ['198.51.100.7', 'tcp']]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const args = docs[1].spec!.template.spec.containers[0].args;
  await parsesAsMonitor(args);
  assert.ok(args.includes('/etc/pathlens/targets.yml'), 'the ConfigMap is where the args say');
});

test('deploy/systemd: known keys in their sections, and an ExecStart the CLI takes', async () => {
  const KNOWN: Record<string, string[]> = {
    Unit: ['Description', 'Documentation', 'Wants', 'After', 'Requires'],
    Service: ['Type', 'ExecStart', 'Restart', 'RestartSec', 'DynamicUser', 'AmbientCapabilities', 'CapabilityBoundingSet', 'NoNewPrivileges', 'ProtectSystem', 'ProtectHome', 'PrivateTmp', 'PrivateDevices', 'ProtectKernelTunables', 'ProtectKernelModules', 'ProtectControlGroups', 'RestrictAddressFamilies', 'RestrictNamespaces', 'LockPersonality', 'SystemCallArchitectures', 'MemoryMax'],
    Install: ['WantedBy'],
  };
  let section = '';
  const seen: Record<string, Record<string, string>> = {};
  for (const raw of readFileSync(join(DEPLOY, 'systemd', 'pathlens-monitor.service'), 'utf8').split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const sec = /^\[(\w+)\]$/.exec(line);
    if (sec) {
      section = sec[1];
      assert.ok(KNOWN[section], `section [${section}]`);
      seen[section] = {};
      continue;
    }
    const kv = /^(\w+)=(.*)$/.exec(line);
    assert.ok(kv && section, `a key=value line in a section: ${line}`);
    assert.ok(KNOWN[section].includes(kv[1]), `[${section}] ${kv[1]}`);
    seen[section][kv[1]] = kv[2];
  }
  assert.deepEqual(Object.keys(seen), ['Unit', 'Service', 'Install']);
  const exec = seen.Service.ExecStart.split(/\s+/);
  assert.equal(exec[0], '/usr/bin/pathlens');
  await parsesAsMonitor(exec.slice(1));
  assert.equal(seen.Service.AmbientCapabilities, 'CAP_NET_RAW', 'no capability but the one a raw ICMP socket needs');
  assert.equal(seen.Service.CapabilityBoundingSet, 'CAP_NET_RAW');
});

test('deploy/Dockerfile: every source it copies exists, the built files it takes are what npm ci makes, and its command is one the CLI takes', async () => {
  const text = readFileSync(join(DEPLOY, 'Dockerfile'), 'utf8');
  const copies = [...text.matchAll(/^COPY (--from=\w+ )?(\S+(?: \S+)*) (\S+)$/gm)];
  assert.ok(copies.length > 5);
  for (const c of copies) {
    for (const src of c[2].split(' ')) {
      // From the build stage: /src/<path> as npm ci left it in this checkout.
      const path = c[1] ? src.replace(/^\/src\//, '') : src;
      assert.ok(existsSync(join(ROOT, path)), `COPY ${c[1] ?? ''}${src}: ${path} exists`);
    }
  }
  const cmd = /^CMD (\[.*\])$/m.exec(text);
  assert.ok(cmd, 'a CMD');
  await parsesAsMonitor(JSON.parse(cmd[1]) as string[]);
  assert.match(text, /^USER node$/m, 'it does not run as root');
});
