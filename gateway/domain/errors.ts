/**
 * Every stable error code, in one place. Messages may change between releases; codes may not.
 */

/** Why a payload was kept as a dead letter instead of stored (README, "Dead letters"). */
export type RejectCode =
  | 'GW_PAYLOAD_TOO_LARGE'
  | 'GW_PAYLOAD_UNDECODABLE'
  | 'GW_PAYLOAD_INVALID'
  | 'GW_DEVICE_ID_MISMATCH'
  | 'GW_TOPIC_INVALID';

/** A dead letter's code: a rejected payload, or a valid reading dedup would not store (stale, or a sequence jump). */
export type DeadLetterCode = RejectCode | 'GW_STALE' | 'GW_SEQ_JUMP';

/** Why QoS 1/2 readings are not acked for now. */
export type RefusalCode = 'GW_BACKLOG_FULL' | 'GW_DISK_FULL';

/** The `error` field of an HTTP API error body. */
export type HttpErrorCode =
  | 'GW_HTTP_NOT_FOUND'
  | 'GW_HTTP_METHOD'
  | 'GW_HTTP_BAD_REQUEST'
  | 'GW_HTTP_UNAUTHORIZED'
  | 'GW_HTTP_FORBIDDEN'
  | 'GW_HTTP_BUSY'
  | 'GW_HTTP_INTERNAL';

/** Errors of the process itself: config, store, listeners. */
export type GatewayErrorCode =
  | 'GW_CONFIG_INVALID'
  | 'GW_CONFIG_UNREADABLE'
  | 'GW_STORE_OPEN_FAILED'
  | 'GW_STORE_NOT_OPEN'
  | 'GW_STORE_WRITE_FAILED'
  | 'GW_STORE_READ_FAILED'
  | 'GW_LISTEN_FAILED'
  | 'GW_AUTH_USERS_INVALID'
  | 'GW_BACKUP_TARGET_NOT_EMPTY'
  | 'GW_BACKUP_INVALID'
  | 'GW_UPSTREAM_STREAM'
  | RefusalCode;

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
