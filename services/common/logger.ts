import { pino, type Logger, type LevelWithSilent } from 'pino';

export type { Logger };

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const satisfies readonly LevelWithSilent[];
export type LogLevel = (typeof LOG_LEVELS)[number];

/**
 * The process's root logger. Services take a child per module (`logger.child({ module })`)
 * so every line says where it came from. Logs go to stderr: stdout stays free for command
 * output (tables, JSON) that other programs may parse.
 */
export function createLogger(options: { level: LogLevel; name?: string; file?: string }): Logger {
  const destination = options.file ? pino.destination({ dest: options.file, mkdir: true, sync: false }) : pino.destination(2);
  return pino({ level: options.level, name: options.name ?? 'expstream', base: { pid: process.pid } }, destination);
}
