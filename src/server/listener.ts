import type { Logger } from '../telemetry/logger.js';
import type { TlsListenerOptions } from './tls.js';

/** What a front door's listener (gRPC or HTTP) takes besides its configuration. */
export interface ListenerOptions {
  readonly log: Logger;
  /** Overrides for the TLS listener (tests poll certificate files faster). */
  readonly tls?: Pick<TlsListenerOptions, 'reloadIntervalMs'>;
}

/** A running front door, gRPC or HTTP. */
export interface RunningListener {
  /** host:port the listener is bound to (the real port when 0 was configured). */
  readonly address: string;
  /** Re-reads the listener's certificate files now (SIGHUP); resolves true when they changed. */
  reloadCertificates(): Promise<boolean>;
  /** Stops accepting, lets in-flight checks finish within `graceMs`, then closes. */
  close(graceMs: number): Promise<void>;
}
