/**
 * TLS and basic authentication for the metrics endpoint, from a web configuration file in the
 * format Prometheus' exporters share (exporter-toolkit's `--web.config.file`), so that one file
 * serves node_exporter, blackbox_exporter and pathlens alike:
 *
 *   tls_server_config:
 *     cert_file: server.crt          # both, or neither (plain HTTP)
 *     key_file: server.key
 *     client_auth_type: RequireAndVerifyClientCert   # NoClientCert (default), RequestClientCert,
 *     client_ca_file: clients.crt                    # RequireAnyClientCert, VerifyClientCertIfGiven
 *     min_version: TLS12             # TLS10..TLS13 (default TLS12), max_version likewise
 *   http_server_config:
 *     headers: {Strict-Transport-Security: max-age=31536000}
 *   basic_auth_users:
 *     prometheus: $2y$10$...         # bcrypt hashes, as htpasswd -B makes them
 *
 * A key the toolkit knows but pathlens does not implement (cipher_suites, curve_preferences,
 * client_allowed_sans, http2...) is refused by name rather than ignored: a reader of the file
 * must be able to trust that what it says is in force. Paths are relative to the file, as the
 * toolkit's are. A request without valid credentials gets 401 with `WWW-Authenticate: Basic`;
 * a password checked once is remembered (by a hash of it) so that a scrape every few seconds
 * does not pay bcrypt's cost each time.
 */
import { crypto } from '../core/builtins.js';
import { readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { dirname, resolve } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { PathlensError } from '../core/errors.js';
import { readConfigText } from '../io/config-file.js';

export const CLIENT_AUTH_TYPES = ['NoClientCert', 'RequestClientCert', 'RequireAnyClientCert', 'VerifyClientCertIfGiven', 'RequireAndVerifyClientCert'] as const;
export type ClientAuth = (typeof CLIENT_AUTH_TYPES)[number];

const VERSIONS: Record<string, 'TLSv1' | 'TLSv1.1' | 'TLSv1.2' | 'TLSv1.3'> = { TLS10: 'TLSv1', TLS11: 'TLSv1.1', TLS12: 'TLSv1.2', TLS13: 'TLSv1.3' };

export interface WebConfig {
  file: string;
  tls: {
    cert: Buffer;
    key: Buffer;
    ca: Buffer | null;
    clientAuth: ClientAuth;
    minVersion: 'TLSv1' | 'TLSv1.1' | 'TLSv1.2' | 'TLSv1.3';
    maxVersion: 'TLSv1' | 'TLSv1.1' | 'TLSv1.2' | 'TLSv1.3' | undefined;
  } | null;
  /** User name to bcrypt hash; empty: no authentication. */
  users: Map<string, string>;
  headers: Record<string, string>;
}

/** Keys of exporter-toolkit's format that pathlens does not implement: refused by name. */
const NOT_IMPLEMENTED = new Set(['cipher_suites', 'curve_preferences', 'prefer_server_cipher_suites', 'client_allowed_sans', 'cert', 'key', 'client_ca', 'http2', 'rate_limit']);

/** Reads and checks a web configuration file; every mistake is one line naming the file and the key. */
export async function readWebConfig(file: string): Promise<WebConfig> {
  const text = readConfigText(file, 1 << 20, 'a web configuration file');
  const YAML = await import('yaml');
  let root: unknown;
  try {
    root = YAML.parse(text, { logLevel: 'error' });
  } catch (e) {
    throw new PathlensError('ERR_CONFIG', `${file}: not valid YAML: ${(e as Error).message.split('\n')[0]}`);
  }
  const fail = (what: string): never => {
    throw new PathlensError('ERR_CONFIG', `${file}: ${what}`);
  };
  const mapping = (v: unknown, at: string): Record<string, unknown> => {
    if (v === null || v === undefined) return {};
    if (typeof v !== 'object' || Array.isArray(v)) fail(`${at} must be a mapping`);
    return v as Record<string, unknown>;
  };
  const r = mapping(root, 'the file');
  const known = (o: Record<string, unknown>, at: string, keys: string[]) => {
    for (const k of Object.keys(o)) {
      if (NOT_IMPLEMENTED.has(k)) fail(`${at}${k} is not implemented by pathlens (it is refused rather than ignored)`);
      if (!keys.includes(k)) fail(`${at}${k} is not a known key (${keys.join(', ')})`);
    }
  };
  known(r, '', ['tls_server_config', 'http_server_config', 'basic_auth_users']);
  const str = (o: Record<string, unknown>, k: string, at: string): string | undefined => {
    if (o[k] === undefined || o[k] === null || o[k] === '') return undefined;
    if (typeof o[k] !== 'string') fail(`${at}${k} must be a string`);
    return o[k] as string;
  };
  const here = dirname(resolve(file));
  const readPem = (path: string, k: string): Buffer => {
    try {
      return readFileSync(resolve(here, path));
    } catch (e) {
      return fail(`tls_server_config.${k} ${path}: cannot read it (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    }
  };

  let tls: WebConfig['tls'] = null;
  if (r.tls_server_config !== undefined && r.tls_server_config !== null) {
    const t = mapping(r.tls_server_config, 'tls_server_config');
    known(t, 'tls_server_config.', ['cert_file', 'key_file', 'client_auth_type', 'client_ca_file', 'min_version', 'max_version']);
    const certFile = str(t, 'cert_file', 'tls_server_config.');
    const keyFile = str(t, 'key_file', 'tls_server_config.');
    if (!certFile) fail('tls_server_config.cert_file is missing (TLS needs a certificate and its key)');
    if (!keyFile) fail('tls_server_config.key_file is missing (TLS needs a certificate and its key)');
    const clientAuth = (str(t, 'client_auth_type', 'tls_server_config.') ?? 'NoClientCert') as ClientAuth;
    if (!CLIENT_AUTH_TYPES.includes(clientAuth)) fail(`tls_server_config.client_auth_type must be one of ${CLIENT_AUTH_TYPES.join(', ')}`);
    const caFile = str(t, 'client_ca_file', 'tls_server_config.');
    if ((clientAuth === 'VerifyClientCertIfGiven' || clientAuth === 'RequireAndVerifyClientCert') && !caFile) fail(`tls_server_config.client_ca_file is needed to verify client certificates (${clientAuth})`);
    const version = (k: string, dflt: string | undefined) => {
      const v = str(t, k, 'tls_server_config.') ?? dflt;
      if (v === undefined) return undefined;
      if (!VERSIONS[v]) fail(`tls_server_config.${k} must be one of ${Object.keys(VERSIONS).join(', ')}`);
      return VERSIONS[v];
    };
    tls = {
      cert: readPem(certFile!, 'cert_file'),
      key: readPem(keyFile!, 'key_file'),
      ca: caFile ? readPem(caFile, 'client_ca_file') : null,
      clientAuth,
      minVersion: version('min_version', 'TLS12')!,
      maxVersion: version('max_version', undefined),
    };
  }

  const headers: Record<string, string> = {};
  if (r.http_server_config !== undefined && r.http_server_config !== null) {
    const h = mapping(r.http_server_config, 'http_server_config');
    known(h, 'http_server_config.', ['headers']);
    for (const [k, v] of Object.entries(mapping(h.headers, 'http_server_config.headers'))) {
      if (typeof v !== 'string' || !/^[A-Za-z0-9-]+$/.test(k)) fail(`http_server_config.headers.${k} must be a header name with a string value`);
      headers[k] = v as string;
    }
  }

  const users = new Map<string, string>();
  for (const [u, h] of Object.entries(mapping(r.basic_auth_users, 'basic_auth_users'))) {
    if (typeof h !== 'string' || !/^\$2[abxy]?\$\d\d\$[./A-Za-z0-9]{53}$/.test(h)) fail(`basic_auth_users.${u} must be a bcrypt hash (htpasswd -nB, or any bcrypt tool)`);
    if (u.includes(':')) fail(`basic_auth_users.${u}: a user name cannot hold ':'`);
    users.set(u, h as string);
  }
  return { file, tls, users, headers };
}

/** Node's TLS server options for the configuration's TLS part. */
export function tlsOptions(t: NonNullable<WebConfig['tls']>): import('node:tls').TlsOptions {
  const verify = t.clientAuth === 'RequireAndVerifyClientCert';
  return {
    cert: t.cert,
    key: t.key,
    ...(t.ca ? { ca: t.ca } : {}),
    requestCert: t.clientAuth !== 'NoClientCert',
    // Verified in the handshake only when a certificate is required and verified; the other kinds
    // are judged per request (clientAllowed).
    rejectUnauthorized: verify,
    minVersion: t.minVersion,
    ...(t.maxVersion ? { maxVersion: t.maxVersion } : {}),
  };
}

/** Whether the client's certificate (or its absence) satisfies client_auth_type, for the kinds the handshake does not settle. */
export function clientAllowed(t: NonNullable<WebConfig['tls']>, sock: TLSSocket): boolean {
  switch (t.clientAuth) {
    case 'RequireAnyClientCert':
      return Object.keys(sock.getPeerCertificate() ?? {}).length > 0;
    case 'VerifyClientCertIfGiven':
      return Object.keys(sock.getPeerCertificate() ?? {}).length === 0 || sock.authorized;
    default:
      return true;
  }
}

/**
 * The request check of a configuration: resolves to 0 when the request may go on, or to the
 * status that refuses it (401: no or wrong credentials; 403: no acceptable client certificate).
 * Checked passwords are remembered by a SHA-256 of user and password (bcrypt costs tens of
 * milliseconds a check in JavaScript, and Prometheus scrapes every few seconds).
 */
export function makeGuard(cfg: WebConfig): (req: IncomingMessage) => Promise<number> {
  const good = new Set<string>();
  return async (req) => {
    if (cfg.tls && !clientAllowed(cfg.tls, req.socket as TLSSocket)) return 403;
    if (cfg.users.size === 0) return 0;
    const creds = basicCredentials(req.headers.authorization);
    const hash = creds ? cfg.users.get(creds.user) : undefined;
    if (!creds || hash === undefined) return 401;
    const key = crypto().createHash('sha256').update(`${creds.user}\0${creds.password}`).digest('hex');
    if (good.has(key)) return 0;
    const { default: bcrypt } = await import('bcryptjs');
    if (!(await bcrypt.compare(creds.password, hash))) return 401;
    if (good.size < 64) good.add(key);
    return 0;
  };
}

/** Writes a refusal of the guard's. */
export function refuse(res: ServerResponse, status: number): void {
  if (status === 401) res.writeHead(401, { 'content-type': 'text/plain', 'www-authenticate': 'Basic realm="pathlens"' }).end('unauthorized\n');
  else res.writeHead(403, { 'content-type': 'text/plain' }).end('a client certificate is required (client_auth_type)\n');
}

/** The user and password of an `Authorization: Basic` header, or null. */
export function basicCredentials(h: string | undefined): { user: string; password: string } | null {
  if (!h || !/^basic /i.test(h)) return null;
  const text = Buffer.from(h.slice(6).trim(), 'base64').toString('utf8');
  const colon = text.indexOf(':');
  if (colon < 0) return null;
  return { user: text.slice(0, colon), password: text.slice(colon + 1) };
}
