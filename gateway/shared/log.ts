/** The pino root logger. Created once in main.ts (or a test) and injected everywhere else. */
import { pino, type Logger, type LevelWithSilent } from 'pino';

export type { Logger };

/** JSON lines on stderr; pretty-printed when stderr is a terminal. stdout is kept for machine-readable events. */
export function createLogger(level: LevelWithSilent, pretty = process.stderr.isTTY === true): Logger {
  if (pretty) {
    return pino({ level, transport: { target: 'pino-pretty', options: { destination: 2, colorize: true } } });
  }
  return pino({ level }, pino.destination({ dest: 2, sync: true }));
}
