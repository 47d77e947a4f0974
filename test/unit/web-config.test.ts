/**
 * --web.config.file (exporter-toolkit's format): the reader's one-line refusals, and a real HTTPS
 * metrics server on loopback answering with and without credentials and client certificates.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { get as httpGet } from 'node:http';
import { type RequestOptions, request } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import bcrypt from 'bcryptjs';
import { Gauge, Registry } from 'prom-client';
import { serveMetrics } from '../../src/export/prometheus.js';
import { basicCredentials, readWebConfig } from '../../src/export/web-config.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const TLS = join(ROOT, 'test', 'fixtures', 'tls');
const CLI = join(ROOT, 'bin', 'pathlens.js');
const pem = (f: string) => readFileSync(join(TLS, f));

/** A web config file in a fresh directory (cert paths absolute), and the directory to remove. */
function configFile(text: string): { file: string; dir: string } {
  const dir = mkdtempSync(join(tmpdir(), 'pl-web-'));
  const file = join(dir, 'web.yml');
  writeFileSync(file, text.replaceAll('TLS/', `${TLS}/`));
  return { file, dir };
}

test('web config: every mistake is one line naming the file and the key; what is not implemented is refused, not ignored', async () => {
  const cases: [string, RegExp][] = [
    ['tls_server_config:\n  cert_file: TLS/server.crt\n', /web\.yml: tls_server_config\.key_file is missing/],
    ['tls_server_config:\n  cert_file: TLS/server.crt\n  key_file: TLS/nope.key\n', /web\.yml: tls_server_config\.key_file .*nope\.key: cannot read it \(ENOENT\)/],
    ['tls_server_config:\n  cert_file: TLS/server.crt\n  key_file: TLS/server.key\n  cipher_suites: [TLS_AES_128_GCM_SHA256]\n', /tls_server_config\.cipher_suites is not implemented by pathlens/],
    ['tls_server_config:\n  cert_file: TLS/server.crt\n  key_file: TLS/server.key\n  client_auth_type: Sometimes\n', /client_auth_type must be one of NoClientCert, /],
    ['tls_server_config:\n  cert_file: TLS/server.crt\n  key_file: TLS/server.key\n  client_auth_type: RequireAndVerifyClientCert\n', /client_ca_file is needed to verify client certificates/],
    ['tls_server_config:\n  cert_file: TLS/server.crt\n  key_file: TLS/server.key\n  min_version: SSL3\n', /min_version must be one of TLS10, TLS11, TLS12, TLS13/],
    ['basic_auth_users:\n  prom: secret\n', /basic_auth_users\.prom must be a bcrypt hash/],
    ['http_server_config:\n  http2: false\n', /http_server_config\.http2 is not implemented/],
    ['listen: 1\n', /web\.yml: listen is not a known key \(tls_server_config, http_server_config, basic_auth_users\)/],
    ['tls_server_config: [1\n', /web\.yml: not valid YAML/],
  ];
  for (const [text, want] of cases) {
    const { file, dir } = configFile(text);
    try {
      await assert.rejects(readWebConfig(file), (e: Error & { code?: string }) => e.code === 'ERR_CONFIG' && want.test(e.message) && !e.message.includes('\n'), text);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  assert.deepEqual(basicCredentials(`Basic ${Buffer.from('a:b:c').toString('base64')}`), { user: 'a', password: 'b:c' });
  assert.equal(basicCredentials('Bearer x'), null);
});

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

function fetchTls(port: number, o: RequestOptions & { auth?: string } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/metrics', ca: pem('ca.crt'), ...o }, (res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

async function serving(text: string, fn: (port: number) => Promise<void>): Promise<void> {
  const { file, dir } = configFile(text);
  const registry = new Registry();
  new Gauge({ name: 'pathlens_test_value', help: 'a value', registers: [registry] }).set(42);
  const server = await serveMetrics(registry, '127.0.0.1', 0, 'test', {}, await readWebConfig(file));
  try {
    await fn((server.address() as AddressInfo).port);
  } finally {
    server.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

test('web config: TLS with basic auth (bcrypt) answers only the right credentials, with the configured headers', async () => {
  const hash = bcrypt.hashSync('s3cret', 4);
  const text = `tls_server_config:\n  cert_file: TLS/server.crt\n  key_file: TLS/server.key\nhttp_server_config:\n  headers:\n    Strict-Transport-Security: max-age=31536000\nbasic_auth_users:\n  prom: '${hash}'\n`;
  await serving(text, async (port) => {
    const none = await fetchTls(port);
    assert.equal(none.status, 401);
    assert.match(String(none.headers['www-authenticate']), /^Basic /);
    assert.equal((await fetchTls(port, { auth: 'prom:wrong' })).status, 401);
    assert.equal((await fetchTls(port, { auth: 'nobody:s3cret' })).status, 401);
    for (let i = 0; i < 2; i++) {
      // The second time from the cache of checked passwords.
      const ok = await fetchTls(port, { auth: 'prom:s3cret' });
      assert.equal(ok.status, 200);
      assert.match(ok.body, /^pathlens_test_value 42$/m);
      assert.equal(ok.headers['strict-transport-security'], 'max-age=31536000');
    }
    // Plain HTTP to the TLS port gets no metrics.
    const plain = await new Promise<string>((resolve) => {
      const r = httpGet({ host: '127.0.0.1', port, path: '/metrics' }, (res) => resolve(`status ${res.statusCode}`));
      r.on('error', (e: NodeJS.ErrnoException) => resolve(`error ${e.code ?? e.message}`));
      r.setTimeout(3000, () => r.destroy(new Error('timeout')));
    });
    assert.doesNotMatch(plain, /status 200/);
    // A client that does not trust the server's CA refuses it.
    await assert.rejects(fetchTls(port, { ca: undefined, auth: 'prom:s3cret' }), /self-signed|unable to verify|UNABLE_TO_GET_ISSUER/i);
  });
});

test('web config: client certificates: required and verified against client_ca_file; required but any; verified only if given', async () => {
  const base = 'tls_server_config:\n  cert_file: TLS/server.crt\n  key_file: TLS/server.key\n  client_ca_file: TLS/ca.crt\n';
  const withCert = { cert: pem('client.crt'), key: pem('client.key') };
  // A certificate the CA did not sign (self-signed).
  const stranger = { cert: pem('stranger.crt'), key: pem('stranger.key') };
  await serving(`${base}  client_auth_type: RequireAndVerifyClientCert\n`, async (port) => {
    await assert.rejects(fetchTls(port), 'no client certificate: the handshake fails');
    assert.equal((await fetchTls(port, withCert)).status, 200);
  });
  await serving(`${base}  client_auth_type: RequireAnyClientCert\n`, async (port) => {
    assert.equal((await fetchTls(port)).status, 403);
    assert.equal((await fetchTls(port, withCert)).status, 200);
  });
  await serving(`${base}  client_auth_type: VerifyClientCertIfGiven\n`, async (port) => {
    assert.equal((await fetchTls(port)).status, 200, 'none given: allowed');
    assert.equal((await fetchTls(port, withCert)).status, 200);
    assert.equal((await fetchTls(port, stranger)).status, 403, 'given but not signed by the CA: refused');
  });
});

test('web config on the command line: without --prometheus (a usage error, status 2), and a bad file (status 1, as every file mistake), each one pathlens: line', () => {
  const { file, dir } = configFile('tls_server_config:\n  cert_file: TLS/server.crt\n');
  try {
    const noProm = spawnSync(process.execPath, [CLI, 'monitor', '127.0.0.1', '--duration', '1', '--web.config.file', file], { encoding: 'utf8' });
    assert.equal(noProm.status, 2);
    assert.match(noProm.stderr, /^pathlens: .*--web\.config\.file configures the --prometheus endpoint: give --prometheus too\n$/);
    const bad = spawnSync(process.execPath, [CLI, 'pping', '-r', join(ROOT, 'test', 'fixtures', 'none.pcap'), '--prometheus', '127.0.0.1:19999', '--web.config.file', file], { encoding: 'utf8' });
    assert.equal(bad.status, 1, bad.stderr);
    assert.match(bad.stderr, /^pathlens: .*web\.yml: tls_server_config\.key_file is missing \(TLS needs a certificate and its key\)\n$/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
