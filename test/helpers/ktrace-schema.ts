/** ktrace output lines, validated against schema/ktrace-v1.schema.json. */
import type { KtraceEvent } from '../../src/ktrace/events.js';
import { jsonlOf } from './schema.js';

export const ktraceEvents = jsonlOf<KtraceEvent>('ktrace-v1.schema.json', true);
