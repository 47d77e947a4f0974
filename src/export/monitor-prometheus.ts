/**
 * `monitor --prometheus ADDR:PORT`: /metrics with the names a blackbox_exporter user knows, per
 * target (labels target, method, path: one series per target and method, so the labels stay
 * bounded by the configuration), updated when each window closes:
 *   probe_success              1 when the last window got at least one answer, else 0
 *   probe_duration_seconds     the last window's mean RTT (blackbox's ICMP probe duration is its RTT)
 * and pathlens' own: pathlens_monitor_loss_ratio, pathlens_monitor_jitter_seconds (RFC 3550),
 * pathlens_monitor_state{state="up|degraded|down"} (1 for the current one), pathlens_monitor_score,
 * and the RTT histogram pathlens_monitor_rtt_seconds of every answer.
 *
 * And blackbox_exporter's multi-target pattern, `/probe?target=T[&module=M][&path=P]`, so that a
 * Prometheus scrape config that relabels `__param_target` drives many agents: the answer is about
 * T's last closed window on this agent, without labels (Prometheus adds `instance` and the
 * relabelled `target`): probe_success, probe_duration_seconds, the loss, jitter, state and the
 * window's age. Nothing is probed on request: a target this agent does not watch (or not by
 * `module`, a method) is refused with 404 and a reason, and counted
 * (pathlens_monitor_probe_refused_total{reason}). So the endpoint is not a relay that makes the
 * agent probe what a client asks.
 *
 * Paths (targets with `hops`), from each window's `path-hops` and each `path` event, with labels
 * target, path, hop (the TTL) and addr (the hop's main responder in that window): one series per
 * hop, replaced when the hop's address changes and removed when the hop is gone, so the label
 * set is bounded by the paths' lengths; past `maxHopSeries`, new series are counted in
 * pathlens_hop_series_dropped_total instead:
 *   pathlens_hop_loss_ratio, pathlens_hop_rtt_seconds{stat="p50|p90|mean"}, pathlens_hop_jitter_seconds
 *   (mtr's Javg), pathlens_hop_loss_verdict{verdict} (1 for the hop's verdict: path/verdict.ts),
 *   pathlens_path_changes_total, pathlens_path_hops, pathlens_path_reached,
 *   pathlens_path_last_change_timestamp_seconds.
 */
import type { Server } from 'node:http';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { Sink } from '../core/sink.js';
import type { MonitorEvent, PathEvent, PathHopsEvent, StatsEvent } from '../monitor/events.js';
import { HOP_SERIES_DEFAULT } from './listen.js';
import { RTT_BOUNDS_MS } from '../monitor/window.js';
import { type RouteAnswer, serveMetrics } from './prometheus.js';
import type { WebConfig } from './web-config.js';
import { LIMIT_DEFAULTS, type LimitOptions } from './limits.js';

type L = 'target' | 'method' | 'path';
type H = 'target' | 'path' | 'hop' | 'addr';
const VERDICTS = ['none', 'rate-limited', 'onward', 'unknown'] as const;

export class MonitorMetrics implements Sink<MonitorEvent> {
  readonly registry = new Registry();
  private readonly success: Gauge<L>;
  private readonly duration: Gauge<L>;
  private readonly loss: Gauge<L>;
  private readonly jitter: Gauge<L>;
  private readonly score: Gauge<L>;
  private readonly state: Gauge<L | 'state'>;
  readonly rtt: Histogram<L>;
  /** The prober's account of itself (schedule.ts), from each window's `prober` event. */
  private readonly proberCounts: Counter<'kind'>;
  private readonly proberRate: Gauge<'kind'>;
  private readonly sendLag: Gauge<'stat'>;
  private readonly tickLate: Gauge<'stat'>;
  private readonly sendKernel: Gauge<'stat'>;
  private readonly kept: Gauge;
  private readonly refused: Counter<'reason'>;
  /** Each target's last closed window, by name and by address, then path ('' for none). */
  private readonly last = new Map<string, Map<string, { e: StatsEvent; at: number }>>();
  /** The method each target's series are under now (a switch removes the old ones). */
  private readonly current = new Map<string, string>();
  private readonly hopLoss: Gauge<H>;
  private readonly hopRtt: Gauge<H | 'stat'>;
  private readonly hopJitter: Gauge<H>;
  private readonly hopVerdict: Gauge<H | 'verdict'>;
  private readonly hopDropped: Counter;
  private readonly pathChanges: Counter<'target' | 'path'>;
  private readonly pathHops: Gauge<'target' | 'path'>;
  private readonly pathReached: Gauge<'target' | 'path'>;
  private readonly pathChanged: Gauge<'target' | 'path'>;
  /** Per path (target, path): its hops' series labels by TTL. */
  private readonly hopSeries = new Map<string, Map<number, Record<H, string>>>();
  private hopSeriesCount = 0;
  private readonly maxHopSeries: number;

  constructor(opts: { maxHopSeries?: number } = {}) {
    this.maxHopSeries = opts.maxHopSeries ?? HOP_SERIES_DEFAULT;
    const registers = [this.registry];
    const hl = ['target', 'path', 'hop', 'addr'] as const;
    this.hopLoss = new Gauge({ name: 'pathlens_hop_loss_ratio', help: 'A traced path\'s hop: probes to it without an answer in the last window (0..1). See pathlens_hop_loss_verdict for what the loss means.', labelNames: hl, registers });
    this.hopRtt = new Gauge({ name: 'pathlens_hop_rtt_seconds', help: 'A traced path\'s hop: round-trip time in the last window, stat p50 (median), p90 and mean.', labelNames: [...hl, 'stat'], registers });
    this.hopJitter = new Gauge({ name: 'pathlens_hop_jitter_seconds', help: 'A traced path\'s hop: mean difference of consecutive RTTs in the last window (mtr\'s Javg).', labelNames: hl, registers });
    this.hopVerdict = new Gauge({ name: 'pathlens_hop_loss_verdict', help: 'What a hop\'s loss means (1 for its verdict): none, rate-limited (later hops answer more: the hop\'s own replies are limited), onward (real loss from here on), unknown.', labelNames: [...hl, 'verdict'], registers });
    this.hopDropped = new Counter({ name: 'pathlens_hop_series_dropped_total', help: 'Per-hop series not made because --max-hop-series was reached.', registers });
    this.pathChanges = new Counter({ name: 'pathlens_path_changes_total', help: 'Path changes of a traced target (each held for the damping rounds).', labelNames: ['target', 'path'], registers });
    this.pathHops = new Gauge({ name: 'pathlens_path_hops', help: 'Hops of a traced target\'s current path (up to the last that answered).', labelNames: ['target', 'path'], registers });
    this.pathReached = new Gauge({ name: 'pathlens_path_reached', help: 'Whether a traced target\'s current path reaches it (1) or ends before (0).', labelNames: ['target', 'path'], registers });
    this.pathChanged = new Gauge({ name: 'pathlens_path_last_change_timestamp_seconds', help: 'When a traced target\'s path was last set (first seen or changed), Unix time.', labelNames: ['target', 'path'], registers });
    this.success = new Gauge({ name: 'probe_success', help: 'Whether the last window got an answer (1) or not (0).', labelNames: ['target', 'method', 'path'], registers });
    this.duration = new Gauge({ name: 'probe_duration_seconds', help: "The last window's mean round-trip time.", labelNames: ['target', 'method', 'path'], registers });
    this.loss = new Gauge({ name: 'pathlens_monitor_loss_ratio', help: 'Probes without an answer in the last window (0..1).', labelNames: ['target', 'method', 'path'], registers });
    this.jitter = new Gauge({ name: 'pathlens_monitor_jitter_seconds', help: 'RFC 3550 interarrival jitter at the end of the last window.', labelNames: ['target', 'method', 'path'], registers });
    this.score = new Gauge({ name: 'pathlens_monitor_score', help: 'Health score of the last window, 0 (down) to 100.', labelNames: ['target', 'method', 'path'], registers });
    this.state = new Gauge({ name: 'pathlens_monitor_state', help: 'The current health state (1) among up, degraded and down.', labelNames: ['target', 'method', 'path', 'state'], registers });
    this.proberCounts = new Counter({ name: 'pathlens_monitor_prober_probes_total', help: "The prober's own account, by kind: asked (due), sent, skipped (more than an interval late), send_refused (full send buffer), rx_dropped (answers dropped by a full receive buffer).", labelNames: ['kind'], registers });
    this.proberRate = new Gauge({ name: 'pathlens_monitor_prober_rate', help: 'Probes per second in the last closed window: asked and sent.', labelNames: ['kind'], registers });
    this.sendLag = new Gauge({ name: 'pathlens_monitor_send_lag_seconds', help: 'From a probe\'s due time to its send, last closed window: stat p50 and p99 (histogram bounds, at most) and max.', labelNames: ['stat'], registers });
    this.tickLate = new Gauge({ name: 'pathlens_monitor_tick_late_seconds', help: "How late the prober's timer fired, last closed window: stat p50, p99 (at most) and max.", labelNames: ['stat'], registers });
    this.sendKernel = new Gauge({ name: 'pathlens_monitor_send_kernel_seconds', help: "Kernel send delay of the last probe of each send batch, from the time its RTT is measured from to the kernel's software send stamp, last closed window: stat p50, p99 (at most) and max. Absent when no probe socket gives send stamps.", labelNames: ['stat'], registers });
    this.kept = new Gauge({ name: 'pathlens_monitor_schedule_kept', help: 'Whether the prober kept the asked schedule in the last closed window (1) or fell behind (0): nothing skipped, refused or dropped on this host, 99% sent, send lag within a tenth of the interval.', registers });
    this.refused = new Counter({ name: 'pathlens_monitor_probe_refused_total', help: 'Requests to /probe refused, by reason: no target given, a target this agent does not watch, or not by the module (method) asked.', labelNames: ['reason'], registers });
    this.rtt = new Histogram({ name: 'pathlens_monitor_rtt_seconds', help: 'Round-trip time of every answer.', labelNames: ['target', 'method', 'path'], buckets: RTT_BOUNDS_MS.map((b) => b / 1000), registers });
  }

  event(e: MonitorEvent): void {
    if (e.type === 'path-hops') return this.onPathHops(e);
    if (e.type === 'path') return this.onPath(e);
    if (e.type === 'prober') {
      for (const [kind, v] of [['asked', e.asked], ['sent', e.sent], ['skipped', e.skipped], ['send_refused', e.send_refused], ['rx_dropped', e.rx_dropped]] as const) this.proberCounts.inc({ kind }, v);
      this.proberRate.set({ kind: 'asked' }, e.asked_per_s);
      this.proberRate.set({ kind: 'sent' }, e.sent_per_s);
      const figures: [Gauge<'stat'>, { p50_ms: number | null; p99_ms: number | null; max_ms: number }][] = [
        [this.sendLag, e.send_lag],
        [this.tickLate, e.tick_late],
      ];
      if (e.send_kernel) figures.push([this.sendKernel, e.send_kernel]);
      for (const [g, f] of figures) {
        // Not a Prometheus summary (these are histogram bounds): a label of its own.
        if (f.p50_ms !== null) g.set({ stat: 'p50' }, f.p50_ms / 1000);
        if (f.p99_ms !== null) g.set({ stat: 'p99' }, f.p99_ms / 1000);
        g.set({ stat: 'max' }, f.max_ms / 1000);
      }
      this.kept.set(e.kept ? 1 : 0);
      return;
    }
    if (e.type !== 'stats') return;
    for (const key of e.address === e.target ? [e.target] : [e.target, e.address]) {
      let byPath = this.last.get(key);
      if (!byPath) this.last.set(key, (byPath = new Map()));
      byPath.set(e.path ?? '', { e, at: Date.now() });
    }
    const l = { target: e.target, method: e.method, path: e.path ?? '' };
    const key = `${e.target}\u0000${l.path}`;
    const was = this.current.get(key);
    if (was !== undefined && was !== e.method) {
      const old = { ...l, method: was };
      for (const g of [this.success, this.duration, this.loss, this.jitter, this.score]) g.remove(old);
      for (const s of ['up', 'degraded', 'down']) this.state.remove({ ...old, state: s });
      this.rtt.remove(old);
    }
    this.current.set(key, e.method);
    this.success.set(l, e.received > 0 ? 1 : 0);
    if (e.mean_ms !== null) this.duration.set(l, e.mean_ms / 1000);
    this.loss.set(l, e.loss / 100);
    if (e.jitter_ms !== null) this.jitter.set(l, e.jitter_ms / 1000);
    this.score.set(l, e.score);
    for (const s of ['up', 'degraded', 'down']) this.state.set({ ...l, state: s }, e.state === s ? 1 : 0);
  }

  private onPath(e: PathEvent): void {
    const l = { target: e.target, path: e.path ?? '' };
    this.pathChanges.inc(l, e.change === 'changed' ? 1 : 0);
    let last = -1;
    for (const h of e.to) if (h.addrs.length) last = h.ttl;
    this.pathHops.set(l, Math.max(0, last));
    this.pathReached.set(l, e.reached ? 1 : 0);
    this.pathChanged.set(l, Date.now() / 1000);
  }

  private removeHop(s: Record<H, string>): void {
    this.hopLoss.remove(s);
    this.hopJitter.remove(s);
    for (const stat of ['p50', 'p90', 'mean']) this.hopRtt.remove({ ...s, stat });
    for (const verdict of VERDICTS) this.hopVerdict.remove({ ...s, verdict });
    this.hopSeriesCount--;
  }

  private onPathHops(e: PathHopsEvent): void {
    const key = `${e.target}\u0000${e.path ?? ''}`;
    let series = this.hopSeries.get(key);
    if (!series) this.hopSeries.set(key, (series = new Map()));
    const seen = new Set<number>();
    for (const h of e.hops) {
      seen.add(h.ttl);
      const s: Record<H, string> = { target: e.target, path: e.path ?? '', hop: String(h.ttl), addr: h.responders[0]?.addr ?? '' };
      const before = series.get(h.ttl);
      if (before && before.addr !== s.addr) {
        this.removeHop(before);
        series.delete(h.ttl);
      }
      if (!series.has(h.ttl)) {
        if (this.hopSeriesCount >= this.maxHopSeries) {
          this.hopDropped.inc();
          continue;
        }
        series.set(h.ttl, s);
        this.hopSeriesCount++;
      }
      this.hopLoss.set(s, h.loss / 100);
      if (h.median_ms != null) this.hopRtt.set({ ...s, stat: 'p50' }, h.median_ms / 1000);
      if (h.p90_ms != null) this.hopRtt.set({ ...s, stat: 'p90' }, h.p90_ms / 1000);
      if (h.mean_ms !== null) this.hopRtt.set({ ...s, stat: 'mean' }, h.mean_ms / 1000);
      if (h.jitter_mean_ms !== null) this.hopJitter.set(s, h.jitter_mean_ms / 1000);
      for (const verdict of VERDICTS) {
        if (verdict === (h.loss_verdict ?? 'unknown')) this.hopVerdict.set({ ...s, verdict }, 1);
        else this.hopVerdict.remove({ ...s, verdict });
      }
    }
    // A window with rounds in it says which hops the path has: the others' series go.
    if (e.rounds > 0) {
      for (const [ttl, s] of series) {
        if (seen.has(ttl)) continue;
        this.removeHop(s);
        series.delete(ttl);
      }
    }
  }

  /** GET /probe: blackbox_exporter's multi-target pattern over this agent's own windows (see the top). */
  probe(q: URLSearchParams): RouteAnswer {
    const target = q.get('target');
    const module = q.get('module');
    const refuse = (reason: string, why: string): RouteAnswer => {
      this.refused.inc({ reason });
      return { status: reason === 'no-target' ? 400 : 404, body: `${why}\n` };
    };
    if (!target) return refuse('no-target', 'target= is required: /probe?target=ADDRESS_OR_NAME[&module=METHOD][&path=PATH]');
    const byPath = this.last.get(target);
    if (!byPath) return refuse('unknown-target', `${target} is not a target of this agent (or has no closed window yet): /probe reports the agent's own windows and probes nothing on request`);
    const path = q.get('path');
    const w = path !== null ? byPath.get(path) : byPath.values().next().value;
    if (!w) return refuse('unknown-path', `${target} is not watched over path ${path} here`);
    const e = w.e;
    if (module && module !== 'auto' && module !== e.method) return refuse('other-module', `${target} is probed by ${e.method} here, not ${module}`);
    const g = (name: string, help: string, v: number, labels = '') => `# HELP ${name} ${help}\n# TYPE ${name} gauge\n${name}${labels} ${v}\n`;
    let out = g('probe_success', "Whether the target's last closed window got an answer (1) or not (0).", e.received > 0 ? 1 : 0);
    out += g('probe_duration_seconds', "The last closed window's mean round-trip time.", e.mean_ms === null ? 0 : e.mean_ms / 1000);
    out += g('pathlens_monitor_loss_ratio', 'Probes without an answer in the last closed window (0..1).', e.loss / 100);
    if (e.jitter_ms !== null) out += g('pathlens_monitor_jitter_seconds', 'RFC 3550 interarrival jitter at the end of the last closed window.', e.jitter_ms / 1000);
    out += `# HELP pathlens_monitor_state The current health state (1) among up, degraded and down.\n# TYPE pathlens_monitor_state gauge\n`;
    for (const s of ['up', 'degraded', 'down']) out += `pathlens_monitor_state{state="${s}"} ${e.state === s ? 1 : 0}\n`;
    out += g('pathlens_monitor_window_age_seconds', 'Seconds since the window these figures are from was closed.', Math.max(0, (Date.now() - w.at) / 1000));
    return { status: 200, body: out, contentType: 'text/plain; version=0.0.4; charset=utf-8' };
  }

  listen(host: string, port: number, web: WebConfig | null = null, limits: LimitOptions = LIMIT_DEFAULTS): Promise<Server> {
    return serveMetrics(this.registry, host, port, 'monitor', { '/probe': (q) => this.probe(q) }, web, limits);
  }
}
