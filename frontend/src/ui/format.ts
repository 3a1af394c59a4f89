/**
 * Words and numbers for the status page.
 */

import type { ConnectionStatus } from "../connection";

export type Tone = "good" | "busy" | "warn" | "bad" | "quiet";

export interface ConnectionSummary {
  /** A stable word, also used by tests: connected, connecting, disconnected, blocked, stopped, not configured. */
  state: string;
  /** Why, in a sentence a person understands. */
  detail: string;
  tone: Tone;
}

export function summarizeConnection(status: ConnectionStatus, now: number): ConnectionSummary {
  switch (status.state) {
    case "idle":
      return { state: "not configured", detail: "Enter the gateway URL and executor token to start.", tone: "quiet" };
    case "connecting":
      return { state: "connecting", detail: `Connecting to ${status.url}`, tone: "busy" };
    case "connected":
      return { state: "connected", detail: `Taking tasks from ${status.url} since ${clock(status.since)}`, tone: "good" };
    case "disconnected": {
      const seconds = Math.max(0, Math.ceil((status.retryAt - now) / 1000));
      const retry = seconds > 0 ? `retrying in ${seconds} s` : "retrying now";
      return { state: "disconnected", detail: `${capitalize(status.reason)}, ${retry}.`, tone: status.refused ? "bad" : "warn" };
    }
    case "blocked":
      return { state: "blocked", detail: capitalize(status.reason), tone: "bad" };
    case "stopped":
      return { state: "stopped", detail: "Disconnected. This tab takes no tasks until you connect again.", tone: "quiet" };
  }
}

function capitalize(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}

export function clock(timestamp: number): string {
  return new Date(timestamp).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

export function duration(ms: number | null): string {
  if (ms === null) return "";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;
  const minutes = Math.floor(ms / 60_000);
  return `${minutes} min ${Math.round((ms % 60_000) / 1000)} s`;
}

export function size(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}
