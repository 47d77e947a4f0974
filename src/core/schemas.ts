/**
 * The schema id every event of a capability carries (`schema`), one per capability and major
 * version; schema/<capability>-v1.schema.json describes each. Consumers switch on these.
 */
export const TRACE_SCHEMA = 'pathlens.trace/1';
export const PPING_SCHEMA = 'pathlens.pping/1';
export const KTRACE_SCHEMA = 'pathlens.ktrace/1';
export const MONITOR_SCHEMA = 'pathlens.monitor/1';
