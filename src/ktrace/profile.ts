/**
 * ktrace's stage profiles: which stages a run times, in which order, on which hooks, best first,
 * as data (profiles/ktrace/*.yaml, or a user's YAML or JSON file). A stage named like a built-in
 * one (stages.ts) and a hook the built-in stage has use its compiled program; any other hook is
 * a generic program (one slot per stage, shared by two stages on opposite paths with the same
 * hooks: the same point, seen by the request and by the reply). Every error names the file and
 * the field at fault.
 */
import { existsSync, readdirSync } from 'node:fs';
import { basename, join } from 'node:path';
import { createRequire } from 'node:module';
import { PathlensError } from '../core/errors.js';
import { packageRoot } from '../core/paths.js';
import { readConfigText } from '../io/config-file.js';
import { FIRST_GENERIC, GEN_SLOTS, NSTAGES } from './layout.js';
import { type Hook, type HookKind, HOOK_KINDS, type Proto, STAGES, type Stage } from './stages.js';

export interface Profile {
  name: string;
  description: string;
  /** Where it was read from. */
  source: string;
  /** In the file's order within each path. */
  stages: Stage[];
  /** Generic slots: the stage a packet leaving this host is at, and one arriving (null: none). */
  slots: { out: number | null; in: number | null }[];
}

const MAX_BYTES = 64 * 1024;
const NETFILTER = ['PRE_ROUTING', 'LOCAL_IN', 'FORWARD', 'LOCAL_OUT', 'POST_ROUTING'];
const NAME = /^[A-Za-z_][A-Za-z0-9_.]{0,39}$/;

/** The profiles shipped with pathlens. */
export function shippedProfilesDir(): string {
  return join(packageRoot(), 'profiles', 'ktrace');
}

export function shippedProfiles(): string[] {
  try {
    return readdirSync(shippedProfilesDir())
      .filter((f) => f.endsWith('.yaml'))
      .map((f) => f.slice(0, -5))
      .sort();
  } catch {
    return [];
  }
}

/**
 * The YAML parser, loaded when a profile is read: importing it costs about 40 ms, which every
 * command would pay at start-up (the CLI is one bundle) for what only ktrace uses, and only here.
 */
function parseYaml(text: string): unknown {
  const yaml = createRequire(import.meta.url)('yaml') as typeof import('yaml');
  return yaml.parse(text, { logLevel: 'error' });
}

/** `--profile`: a shipped profile's name, or a file (a path, or a name ending .yaml/.yml/.json). */
export function loadProfile(nameOrPath: string): Profile {
  const isFile = /[/\\]/.test(nameOrPath) || /\.(ya?ml|json)$/.test(nameOrPath);
  let path = nameOrPath;
  if (!isFile) {
    path = join(shippedProfilesDir(), `${nameOrPath}.yaml`);
    if (!NAME.test(nameOrPath) || !existsSync(path)) throw new PathlensError('ERR_USAGE', `--profile ${nameOrPath}: no such profile (shipped: ${shippedProfiles().join(', ') || 'none'}; or give a file)`);
  }
  const text = readConfigText(path, MAX_BYTES, 'a ktrace profile');
  let raw: unknown;
  try {
    raw = path.endsWith('.json') ? JSON.parse(text) : parseYaml(text);
  } catch (e) {
    throw new PathlensError('ERR_CONFIG', `${path} is not valid ${path.endsWith('.json') ? 'JSON' : 'YAML'}: ${(e as Error).message.split('\n')[0]}`);
  }
  return parseProfile(raw, path);
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/** A profile from its parsed document; `source` names it in errors. */
export function parseProfile(raw: unknown, source: string): Profile {
  const fail = (where: string, msg: string): never => {
    throw new PathlensError('ERR_CONFIG', `ktrace profile ${basename(source)}: ${where}${where ? ': ' : ''}${msg}`);
  };
  if (!isObj(raw)) return fail('', 'must be a mapping with name and stages');
  only(raw, ['name', 'description', 'stages'], '', fail);
  if (typeof raw.name !== 'string' || !NAME.test(raw.name)) fail('name', 'must be a name of letters, digits, "_" and "." (at most 40)');
  if (raw.description !== undefined && typeof raw.description !== 'string') fail('description', 'must be text');
  if (!Array.isArray(raw.stages) || raw.stages.length === 0) return fail('stages', 'must be a non-empty list');
  const stages: Stage[] = [];
  const seen = new Set<string>();
  let nextId = FIRST_GENERIC;
  const generics: { stage: Stage; key: string }[] = [];
  raw.stages.forEach((rs, i) => {
    const at = `stages[${i}]`;
    if (!isObj(rs)) return fail(at, 'must be a mapping with name, path and hooks');
    only(rs, ['name', 'path', 'hooks'], at, fail);
    const name = rs.name;
    if (typeof name !== 'string' || !NAME.test(name)) return fail(`${at}.name`, 'must be a name of letters, digits, "_" and "." (at most 40)');
    if (seen.has(name)) fail(`${at}.name`, `${name} is named twice`);
    seen.add(name);
    if (rs.path !== 'out' && rs.path !== 'in') fail(`${at}.path`, 'must be out (leaving this host) or in (arriving)');
    const path = rs.path as 'out' | 'in';
    const builtin = STAGES.find((s) => s.name === name);
    if (builtin && builtin.path !== path) fail(`${at}.path`, `${name} is a built-in stage of the ${builtin.path} path`);
    if (!Array.isArray(rs.hooks) || rs.hooks.length === 0) return fail(`${at}.hooks`, 'must be a non-empty list, best first');
    const hooks = rs.hooks.map((rh, j) => withProtos(parseHook(rh, `${at}.hooks[${j}]`, builtin, fail), rh as Obj, `${at}.hooks[${j}]`, fail));
    let id: number;
    if (builtin) id = builtin.id;
    else {
      if (nextId >= NSTAGES) fail(at, `at most ${NSTAGES - FIRST_GENERIC} stages of a profile's own (not built in)`);
      id = nextId++;
    }
    const stage: Stage = { id, name, path, hooks, ...(builtin?.txOnly ? { txOnly: true as const } : {}) };
    stages.push(stage);
    if (hooks.some((h) => h.generic)) generics.push({ stage, key: JSON.stringify(hooks.filter((h) => h.generic)) });
  });
  for (const p of ['out', 'in'] as const) if (!stages.some((s) => s.path === p)) fail('stages', `no stage on the ${p} path`);
  // Slots: a stage's generic hooks get one; a stage of the other path with the same hooks shares it.
  const slots: Profile['slots'] = [];
  const open = new Map<string, number>();
  for (const { stage, key } of generics) {
    let slot = open.get(key);
    if (slot !== undefined && slots[slot][stage.path] === null) open.delete(key);
    else {
      slot = slots.length;
      if (slot >= GEN_SLOTS) fail('stages', `at most ${GEN_SLOTS} points of a profile's own (two stages on opposite paths with the same hooks share one)`);
      slots.push({ out: null, in: null });
      open.set(key, slot);
    }
    slots[slot][stage.path] = stage.id;
    for (const h of stage.hooks) if (h.generic) h.generic.slot = slot;
  }
  for (const s of stages) for (const h of s.hooks) if (h.generic) h.prog = genericProgram(h.kind, h.generic.slot);
  return { name: raw.name as string, description: (raw.description as string | undefined)?.trim() ?? '', source, stages, slots };
}

/** A hook's `proto`: the transports it is for (one, or a list). */
function withProtos(h: Hook, rh: Obj, at: string, fail: (where: string, msg: string) => never): Hook {
  if (rh.proto === undefined) return h;
  const list = Array.isArray(rh.proto) ? rh.proto : [rh.proto];
  if (list.length === 0 || list.some((p) => !PROTOS.includes(p as Proto))) fail(`${at}.proto`, `must be one or a list of ${PROTOS.join(', ')}`);
  return { ...h, protos: list as Proto[] };
}

function only(o: Obj, keys: string[], at: string, fail: (where: string, msg: string) => never): void {
  for (const k of Object.keys(o)) if (!keys.includes(k)) fail(at, `unknown key ${k} (expected ${keys.join(', ')})`);
}

/** The generic program of a kind at a slot. */
export function genericProgram(kind: HookKind, slot: number): string {
  const short: Partial<Record<HookKind, string>> = { fentry: 'fe', tp_btf: 'btf', raw_tp: 'raw', tracepoint: 'tp', netfilter: 'nf' };
  return short[kind] ? `kt_g_${short[kind]}_${slot}` : '';
}

const HOOK_KEYS = ['ipv6', 'arg', 'header', 'field', 'proto'];
const PROTOS: Proto[] = ['icmp', 'udp', 'tcp'];

function parseHook(rh: unknown, at: string, builtin: Stage | undefined, fail: (where: string, msg: string) => never): Hook {
  if (!isObj(rh)) return fail(at, `must be a mapping naming one hook kind (${HOOK_KINDS.join(', ')})`);
  const kinds = Object.keys(rh).filter((k) => (HOOK_KINDS as readonly string[]).includes(k));
  if (kinds.length !== 1) return fail(at, `must name exactly one hook kind (${HOOK_KINDS.join(', ')})`);
  const kind = kinds[0] as HookKind;
  for (const k of Object.keys(rh)) if (k !== kind && !HOOK_KEYS.includes(k)) fail(at, `unknown key ${k} (besides the kind: ${HOOK_KEYS.join(', ')})`);
  const target = rh[kind];
  if (typeof target !== 'string' || !target) return fail(`${at}.${kind}`, 'must name where it attaches');
  const ipv6 = rh.ipv6;
  if (ipv6 !== undefined && (typeof ipv6 !== 'string' || !ipv6 || (kind !== 'fentry' && kind !== 'kprobe'))) fail(`${at}.ipv6`, 'is the IPv6 path\'s function, for fentry and kprobe hooks');
  // A hook of the built-in stage of this name: its compiled program.
  const own = builtin?.hooks.find((h) => h.kind === kind && h.at === target && (h.at6 ?? undefined) === (ipv6 ?? (kind === 'fentry' || kind === 'kprobe' ? h.at6 : undefined)));
  if (own) {
    for (const k of ['arg', 'header', 'field']) if (rh[k] !== undefined) fail(`${at}.${k}`, `the built-in ${builtin!.name} stage's ${kind} hook takes no ${k}`);
    // (a copy: `withProtos` may add to it)
    return { ...own, ...(own.also ? { also: own.also.map((x) => ({ ...x })) } : {}) };
  }
  const bad = (k: string, why: string) => fail(`${at}.${k}`, why);
  switch (kind) {
    case 'tcx':
      return fail(at, 'tcx hooks are built in: use the stages tc_egress and tc_ingress');
    case 'kprobe':
      // Kept for the profile's record (and kernels that may one day get shipped kprobe programs): refused at run time.
      for (const k of ['arg', 'header', 'field']) if (rh[k] !== undefined) bad(k, 'kprobe hooks take only a function (and ipv6)');
      return { kind, at: target, ...(ipv6 ? { at6: ipv6 as string } : {}), prog: '' };
    case 'netfilter':
      if (!NETFILTER.includes(target)) bad(kind, `must be one of ${NETFILTER.join(', ')}`);
      for (const k of ['arg', 'header', 'field']) if (rh[k] !== undefined) bad(k, 'netfilter hooks take only the hook');
      return { kind, at: target, prog: '', generic: { slot: -1, arg: 0, data: false, field: '' } };
    default: {
      if (kind === 'tracepoint' && !/^[A-Za-z0-9_]+\/[A-Za-z0-9_]+$/.test(target)) bad(kind, 'must be SYSTEM/NAME (as under tracefs events/)');
      if (kind !== 'tracepoint' && !/^[A-Za-z0-9_.]+$/.test(target)) bad(kind, 'must be a kernel function or tracepoint name');
      const arg = rh.arg ?? 0;
      if (kind === 'tracepoint' && rh.arg !== undefined) bad('arg', 'a classic tracepoint finds the sk_buff by its record\'s field (field: skbaddr)');
      if (typeof arg !== 'number' || !Number.isInteger(arg) || arg < 0 || arg > 5) bad('arg', 'must be the sk_buff argument\'s position, 0 to 5');
      const header = rh.header ?? 'network';
      if (header !== 'network' && header !== 'data') bad('header', 'must be network (the IP header is at the network header) or data (at skb->data)');
      const field = rh.field ?? 'skbaddr';
      if (kind !== 'tracepoint' && rh.field !== undefined) bad('field', 'is for classic tracepoints');
      if (typeof field !== 'string' || !/^[A-Za-z_][A-Za-z0-9_]*$/.test(field)) bad('field', 'must be a field name of the record');
      return { kind, at: target, ...(ipv6 ? { at6: ipv6 as string } : {}), prog: '', generic: { slot: -1, arg: arg as number, data: header === 'data', field: field as string } };
    }
  }
}
