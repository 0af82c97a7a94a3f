/**
 * Stable error codes. Messages may change between releases; codes may not.
 */
export type GatewayErrorCode =
  | 'GW_CONFIG_INVALID'
  | 'GW_CONFIG_UNREADABLE'
  | 'GW_STORE_OPEN_FAILED'
  | 'GW_STORE_NOT_OPEN'
  | 'GW_STORE_WRITE_FAILED'
  | 'GW_STORE_READ_FAILED'
  | 'GW_LISTEN_FAILED'
  | 'GW_BACKLOG_FULL'
  | 'GW_DISK_FULL';

export class GatewayError extends Error {
  readonly code: GatewayErrorCode;

  constructor(code: GatewayErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'GatewayError';
    this.code = code;
  }
}

/** One problem found in a config file, with the dotted path to the offending key. */
export interface ConfigIssue {
  path: string;
  message: string;
}

/** Thrown by loadConfig; lists every problem, not just the first. */
export class ConfigError extends GatewayError {
  readonly issues: readonly ConfigIssue[];

  constructor(issues: readonly ConfigIssue[], source: string) {
    const lines = issues.map((i) => `  - ${i.path || '(root)'}: ${i.message}`);
    super('GW_CONFIG_INVALID', `invalid config ${source}:\n${lines.join('\n')}`);
    this.name = 'ConfigError';
    this.issues = issues;
  }
}
