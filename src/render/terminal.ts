/**
 * The few ANSI sequences a full-screen view needs (docs/trace-views.md says why no TUI library):
 * the alternate screen, the cursor hidden, frames drawn from the top left over the last one (no
 * clearing, so no flicker), raw key input. The terminal is given back by close() and, as a last
 * resort, on process exit.
 */
import { writeSync } from 'node:fs';

export interface TerminalOut {
  write(s: string): unknown;
  columns?: number;
  rows?: number;
  fd?: number;
}

export interface TerminalIn {
  setRawMode?(on: boolean): unknown;
  on(ev: 'data', fn: (b: Buffer) => void): unknown;
  off(ev: 'data', fn: (b: Buffer) => void): unknown;
  resume(): unknown;
  pause(): unknown;
}

const ENTER = '\x1b[?1049h\x1b[?25l\x1b[H\x1b[2J';
const LEAVE = '\x1b[?25h\x1b[?1049l';

export class FullScreen {
  private active = false;
  private onKey: ((b: Buffer) => void) | null = null;
  private readonly onExit = () => this.restoreSync();

  constructor(
    private readonly out: TerminalOut,
    private readonly input: TerminalIn,
  ) {}

  get isOpen(): boolean {
    return this.active;
  }

  get rows(): number {
    return this.out.rows ?? 40;
  }

  open(key: (k: string) => void): void {
    this.active = true;
    this.onKey = (b) => key(b.toString('latin1'));
    this.out.write(ENTER);
    this.input.setRawMode?.(true);
    this.input.on('data', this.onKey);
    this.input.resume();
    process.once('exit', this.onExit);
  }

  /** One frame: lines cut to the screen's width and height. */
  draw(lines: string[]): void {
    if (!this.active) return;
    const cols = this.out.columns ?? 120;
    const out = lines.slice(0, this.rows - 1).map((l) => (l.length > cols ? l.slice(0, cols) : l));
    this.out.write(`\x1b[H${out.map((l) => `${l}\x1b[K`).join('\r\n')}\x1b[J`);
  }

  /** Gives the terminal back (idempotent). */
  close(): void {
    if (!this.active) return;
    this.active = false;
    if (this.onKey) this.input.off('data', this.onKey);
    this.input.setRawMode?.(false);
    this.input.pause();
    this.out.write(LEAVE);
    process.off('exit', this.onExit);
  }

  private restoreSync(): void {
    if (!this.active) return;
    this.active = false;
    try {
      this.input.setRawMode?.(false);
      writeSync(this.out.fd ?? 1, LEAVE);
    } catch {
      // the terminal is gone
    }
  }
}

/** A full-screen view drawn from its frame(): redrawn at most ten times a second, closed once. */
export abstract class ScreenView {
  protected readonly screen: FullScreen;
  private timer: NodeJS.Timeout | null = null;

  constructor(out: TerminalOut, input: TerminalIn) {
    this.screen = new FullScreen(out, input);
  }

  abstract frame(): string[];

  /** A redraw soon (whatever the event rate, ten frames a second at most). */
  protected schedule(): void {
    if (!this.screen.isOpen || this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.draw();
    }, 100);
  }

  draw(): void {
    this.screen.draw(this.frame());
  }

  /** Gives the terminal back (idempotent). */
  close(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.screen.close();
  }

  end(): void {
    this.close();
  }
}
