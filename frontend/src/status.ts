/**
 * What the status page shows: the connection, the counters and a short log
 * of recent tasks, kept as immutable snapshots for React's useSyncExternalStore.
 */

import type { ConnectionObserver, ConnectionStatus } from "./connection";
import type { TaskFinished, TaskOutcome, TaskStarted } from "./executor";

export const LOG_LENGTH = 50;

export interface TaskLogEntry {
  id: string;
  method: string;
  model: string;
  operation: string;
  startedAt: number;
  requestId: string;
  outcome: "running" | TaskOutcome;
  status: number | null;
  durationMs: number | null;
  bytes: number;
  detail: string;
}

export interface ExecutorIdentity {
  executorId: string;
  label: string;
  maxConcurrency: number;
  software: string;
}

export interface StatusSnapshot {
  connection: ConnectionStatus;
  /** Null until this tab's id is settled. */
  identity: ExecutorIdentity | null;
  inFlight: number;
  served: number;
  /** Served answers whose upstream status was 4xx or 5xx (quota, bad request, ...). */
  upstreamErrors: number;
  failed: number;
  cancelled: number;
  /** Newest first. */
  log: readonly TaskLogEntry[];
}

export class StatusStore implements ConnectionObserver {
  private snapshot: StatusSnapshot = {
    connection: { state: "idle" },
    identity: null,
    inFlight: 0,
    served: 0,
    upstreamErrors: 0,
    failed: 0,
    cancelled: 0,
    log: [],
  };
  private current: StatusSnapshot = this.snapshot;
  private readonly listeners = new Set<() => void>();
  private pending: ReturnType<typeof setTimeout> | undefined;

  /**
   * @param coalesceMs Changes within this window reach listeners as one: under load,
   * tasks start and end far more often than a person can read.
   */
  constructor(private readonly coalesceMs = 50) {}

  subscribe = (listener: () => void): (() => void) => {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  };

  getSnapshot = (): StatusSnapshot => this.snapshot;

  identify(identity: ExecutorIdentity): void {
    this.update({ identity });
  }

  statusChanged(connection: ConnectionStatus): void {
    this.update({ connection });
  }

  taskStarted(task: TaskStarted): void {
    const entry: TaskLogEntry = {
      ...task,
      outcome: "running",
      status: null,
      durationMs: null,
      bytes: 0,
      detail: "",
    };
    this.update({
      inFlight: this.current.inFlight + 1,
      log: [entry, ...this.current.log].slice(0, LOG_LENGTH),
    });
  }

  taskFinished(task: TaskFinished): void {
    const { current } = this;
    const upstreamError = task.outcome === "served" && task.status !== null && task.status >= 400;
    this.update({
      inFlight: Math.max(0, current.inFlight - 1),
      served: current.served + (task.outcome === "served" ? 1 : 0),
      upstreamErrors: current.upstreamErrors + (upstreamError ? 1 : 0),
      failed: current.failed + (task.outcome === "failed" ? 1 : 0),
      cancelled: current.cancelled + (task.outcome === "cancelled" ? 1 : 0),
      log: current.log.map((entry) =>
        entry.id === task.id
          ? {
              ...entry,
              outcome: task.outcome,
              status: task.status,
              durationMs: task.durationMs,
              bytes: task.bytes,
              detail: task.detail,
            }
          : entry,
      ),
    });
  }

  /** Deliver pending changes now. */
  flush(): void {
    clearTimeout(this.pending);
    this.pending = undefined;
    if (this.snapshot === this.current) return;
    this.snapshot = this.current;
    for (const listener of this.listeners) listener();
  }

  private update(change: Partial<StatusSnapshot>): void {
    this.current = { ...this.current, ...change };
    if (this.pending === undefined) this.pending = setTimeout(() => this.flush(), this.coalesceMs);
  }
}
