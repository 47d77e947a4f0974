/**
 * BPF objects: open, size, load and close a prebuilt object through the native shim (libbpf,
 * dlopen()ed). Every refusal becomes one ERR_BPF message that says what is missing: libbpf, a
 * privilege, a kernel feature (with libbpf's own words), or the verifier's reason.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { type CapName, effectiveCaps, listCaps, missingCaps } from '../core/caps.js';
import { PathlensError, errnoName } from '../core/errors.js';
import { packageRoot } from '../core/paths.js';
import { native } from '../native/index.js';
import { EACCES, ELIBACC, EPERM } from '../core/errno.js';

/** What loading and attaching pathlens' programs takes (tc and XDP links need CAP_NET_ADMIN). */
const BPF_CAPS: CapName[] = ['CAP_BPF', 'CAP_PERFMON', 'CAP_NET_ADMIN'];


/** Where prebuilt objects live (PATHLENS_BPF_DIR overrides, for rebuilt objects). */
export function bpfObjectPath(file: string): string {
  const dir = process.env.PATHLENS_BPF_DIR || join(packageRoot(), 'bpf', 'obj');
  return join(dir, file);
}

/** Why BPF cannot be used at all here, or null. Cheap: no object is loaded. */
export function bpfUnavailable(): string | null {
  const lib = native().bpfAvailable();
  if (lib !== null) return `libbpf cannot be loaded (${lib}); install it (Debian/Ubuntu: apt-get install libbpf1)`;
  return null;
}

/** The last lines of libbpf's log that say something (the verifier log ends with the reason). */
function logTail(log: string, lines = 12): string {
  const kept = log
    .split('\n')
    .map((l) => l.trimEnd())
    .filter((l) => l.length > 0);
  return kept.slice(-lines).join('\n  ');
}

export class BpfObject {
  private handle: number;
  readonly name: string;

  private constructor(handle: number, name: string) {
    this.handle = handle;
    this.name = name;
  }

  /** Opens an object file (not yet loaded into the kernel). */
  static open(path: string, name: string): BpfObject {
    const why = bpfUnavailable();
    if (why) throw new PathlensError('ERR_BPF', why);
    if (!existsSync(path)) {
      throw new PathlensError('ERR_BPF', `BPF object ${path} is missing (rebuild it with bpf/build.sh, which needs clang and libbpf-dev)`);
    }
    const n = native();
    n.bpfLog();
    const h = n.bpfOpen(new Uint8Array(readFileSync(path)), name);
    if (h < 0) {
      const why = h === -ELIBACC ? 'libbpf is not usable' : errnoName(-h);
      const log = n.bpfLog();
      const last = logTail(log, 1);
      throw new PathlensError('ERR_BPF', `libbpf could not open ${path} (${why}${last ? `; libbpf: ${last}` : ''})`, { cause: new Error(logTail(log)) });
    }
    return new BpfObject(h, name);
  }

  /** Resizes a map before load. */
  setMaxEntries(map: string, n: number): void {
    const rc = native().bpfSetMaxEntries(this.handle, map, n);
    if (rc < 0) throw new PathlensError('ERR_BPF', `${this.name}: cannot size map ${map} to ${n} (${errnoName(-rc)})`);
  }

  /** Before load: whether `prog` is loaded (turn off the variants the kernel cannot take). */
  setAutoload(prog: string, load: boolean): void {
    const rc = native().bpfProgSetAutoload(this.handle, prog, load);
    if (rc < 0) throw new PathlensError('ERR_BPF', `${this.name}: cannot set autoload of ${prog} (${errnoName(-rc)})`);
  }

  /** Before load: the program type (and expected attach type) of a section this libbpf does not know. */
  setProgType(prog: string, progType: number, expectedAttachType: number): void {
    const rc = native().bpfProgSetType(this.handle, prog, progType, expectedAttachType);
    if (rc < 0) throw new PathlensError('ERR_BPF', `${this.name}: cannot set the type of ${prog} (${errnoName(-rc)})`);
  }

  /** Before load: the kernel function (fentry) or raw tracepoint (tp_btf) a targetless program is for. */
  setAttachTarget(prog: string, target: string): void {
    const rc = native().bpfProgSetAttachTarget(this.handle, prog, target);
    if (rc < 0) throw new PathlensError('ERR_BPF', `${this.name}: cannot aim ${prog} at ${target} (${errnoName(-rc)})`);
  }

  /**
   * Before load: the initial contents of a map, such as ".rodata" (the object's `const volatile`
   * globals, which the verifier then treats as constants). `value` must be the map's whole value.
   */
  setInitialValue(map: string, value: Uint8Array): void {
    const rc = native().bpfMapSetInitialValue(this.handle, map, value);
    if (rc < 0) throw new PathlensError('ERR_BPF', `${this.name}: cannot set the contents of ${map} (${errnoName(-rc)})`);
  }

  /** Creates the maps and loads every program; explains a refusal (naming a missing capability). */
  load(): void {
    const n = native();
    n.bpfLog();
    const rc = n.bpfLoad(this.handle);
    if (rc >= 0) return;
    const log = n.bpfLog();
    const verifier = log.includes('BEGIN PROG LOAD LOG');
    let what: string;
    // The verifier refuses some helpers (timestamps, pointers) without CAP_PERFMON with EACCES.
    // CAP_SYS_ADMIN stands for all three (and root has them all).
    const missing = missingCaps(['CAP_SYS_ADMIN']).length === 0 ? [] : missingCaps(BPF_CAPS);
    const held = effectiveCaps() !== null && missing.length === 0;
    const privilege = -rc === EPERM || (-rc === EACCES && (!verifier || missing.length > 0));
    if (privilege && held) {
      what = `the kernel refuses these programs (${errnoName(-rc)}, with every capability they need held)`;
    } else if (privilege) {
      what = `loading BPF programs needs ${listCaps(BPF_CAPS)} (or root)${missing.length ? `: missing ${listCaps(missing)}` : ''}`;
    } else if (verifier) {
      what = `the kernel's verifier refused a program (${errnoName(-rc)})`;
    } else {
      what = `the kernel refused the object (${errnoName(-rc)}): it may lack a feature the programs need (BPF ring buffer: Linux 5.8; bounded loops: 5.3)`;
    }
    // One line: the privilege case needs no libbpf words; otherwise its last one says why.
    // PATHLENS_DEBUG=1 prints libbpf's whole log (the error's cause).
    const last = privilege ? '' : logTail(log, 1);
    throw new PathlensError('ERR_BPF', `${this.name}: ${what}${last ? ` (libbpf: ${last})` : ''}`, { cause: new Error(logTail(log)) });
  }

  /** The shim's handle of this object, for calls this class does not wrap. */
  rawHandle(): number {
    return this.handle;
  }

  progFd(name: string): number {
    const fd = native().bpfProgFd(this.handle, name);
    if (fd < 0) throw new PathlensError('ERR_BPF', `${this.name}: no program ${name} in the object`);
    return fd;
  }

  mapFd(name: string): number {
    const fd = native().bpfMapFd(this.handle, name);
    if (fd < 0) throw new PathlensError('ERR_BPF', `${this.name}: no map ${name} in the object`);
    return fd;
  }

  /** Unloads programs and maps (links hold their program until their own fds close). */
  close(): void {
    if (this.handle < 0) return;
    native().bpfClose(this.handle);
    this.handle = -1;
  }
}

/** Number of possible CPUs (the value count of a per-CPU map). */
export function possibleCpus(): number {
  const text = readFileSync('/sys/devices/system/cpu/possible', 'utf8').trim();
  let n = 0;
  for (const part of text.split(',')) {
    const [a, b] = part.split('-').map(Number);
    n += b === undefined ? 1 : b - a + 1;
  }
  return n;
}
