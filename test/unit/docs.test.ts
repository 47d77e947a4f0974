/**
 * What the docs say is true of the code: every `pathlens ...` command they show (in code blocks,
 * inside `lab exec ... --` too, and inline) names a command that exists and only options that
 * command has, checked against the CLI's own option tables; and every repository path they name
 * (src/, test/, bench/, bpf/, scripts/, schema/, docs/, native/) exists.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import type { Command } from 'commander';
import { ktraceCommand } from '../../src/cli/ktrace.js';
import { labCommand } from '../../src/cli/lab.js';
import { monitorCommand } from '../../src/cli/monitor.js';
import { ppingCommand } from '../../src/cli/pping.js';
import { diffCommand, reportCommand } from '../../src/cli/report.js';
import { traceCommand } from '../../src/cli/trace.js';
import { ROOT } from '../helpers/lab.js';

const DOCS = ['README.md', 'bench/README.md', ...readdirSync(join(ROOT, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];
const COMMANDS: Record<string, Command> = { trace: traceCommand(), lab: labCommand(), pping: ppingCommand(), ktrace: ktraceCommand(), monitor: monitorCommand(), report: reportCommand(), diff: diffCommand() };

interface Mention {
  doc: string;
  line: number;
  text: string;
  /** From a code block (a whole command line) or inline code (a command and some options). */
  whole: boolean;
}

/** The `pathlens ...` commands a doc shows. */
function commandsOf(doc: string): Mention[] {
  const out: Mention[] = [];
  let fenced = false;
  readFileSync(join(ROOT, doc), 'utf8')
    .split('\n')
    .forEach((raw, i) => {
      if (/^\s*```/.test(raw)) {
        fenced = !fenced;
        return;
      }
      if (fenced) {
        // A command line, or one run inside a lab node (`pathlens lab exec src -- pathlens ...`).
        const cmd = raw.replace(/^\s*(\$|#)\s+/, '').trim();
        if (cmd.startsWith('pathlens ')) out.push({ doc, line: i + 1, text: cmd, whole: true });
        const inner = / -- (pathlens .*)$/.exec(cmd);
        if (inner) out.push({ doc, line: i + 1, text: inner[1], whole: true });
        return;
      }
      for (const m of raw.matchAll(/`(pathlens [^`]+)`/g)) out.push({ doc, line: i + 1, text: m[1], whole: false });
    });
  return out;
}

/** The words of a command line up to a comment, a pipe, a redirection or a background `&`. */
function words(text: string): string[] {
  const out: string[] = [];
  for (const w of text.split(/\s+/)) {
    if (w === '' ) continue;
    if (w.startsWith('#') || w === '|' || w === '&' || w === '&&' || w.startsWith('>') || w.startsWith('<') || w === '--') break;
    out.push(w);
  }
  return out;
}

function knows(c: Command, flag: string): boolean {
  if (flag === '-h' || flag === '--help') return true;
  const name = flag.split('=')[0];
  return c.options.some((o) => o.short === name || o.long === name || (o.negate && o.long === name));
}

test('every pathlens command in the docs exists, with only options it has', () => {
  const bad: string[] = [];
  let checked = 0;
  for (const doc of DOCS) {
    for (const m of commandsOf(doc)) {
      const w = words(m.text).slice(1);
      const where = `${m.doc}:${m.line}: ${m.text}`;
      let c = COMMANDS[w[0]];
      if (!c) {
        // Prose that starts with the word (`pathlens as a library`) is not a command.
        if (/^[a-z]+$/.test(w[0] ?? '') && m.whole) bad.push(`${where}: no command '${w[0]}'`);
        continue;
      }
      let rest = w.slice(1);
      // lab has subcommands: `lab up`, `lab exec` ...
      if (c.commands.length > 0 && rest.length > 0 && !rest[0].startsWith('-')) {
        const sub = c.commands.find((s) => s.name() === rest[0]);
        if (!sub) {
          bad.push(`${where}: no command '${w[0]} ${rest[0]}'`);
          continue;
        }
        c = sub;
        rest = rest.slice(1);
      }
      for (const t of rest) {
        if (!t.startsWith('-') || /^-\d/.test(t) && !/^-[46]$/.test(t)) continue;
        checked++;
        if (!knows(c, t)) bad.push(`${where}: '${c.name()}' has no option ${t}`);
      }
    }
  }
  assert.deepEqual(bad, []);
  assert.ok(checked > 40, `the docs' examples name options (${checked} checked)`);
});

test('every repository path the docs name exists', () => {
  const bad: string[] = [];
  let checked = 0;
  for (const doc of DOCS) {
    readFileSync(join(ROOT, doc), 'utf8')
      .split('\n')
      .forEach((line, i) => {
        for (const m of line.matchAll(/(?<![\w./-])((?:src|test|bench|bpf|scripts|schema|docs|native)\/[\w./-]*[\w/])/g)) {
          const p = m[1];
          // Patterns and placeholders are not paths.
          if (/[*{<]/.test(line.slice(m.index!, m.index! + p.length + 1))) continue;
          checked++;
          if (!existsSync(join(ROOT, p)) && !existsSync(join(ROOT, p.replace(/\.js$/, '.ts')))) bad.push(`${doc}:${i + 1}: ${p}`);
        }
      });
  }
  assert.deepEqual(bad, []);
  assert.ok(checked > 50, `the docs name paths (${checked} checked)`);
});
