/**
 * This tab's executor_id: a UUID kept in sessionStorage, so a reload keeps it
 * (a reconnecting executor reuses its id) and another tab gets its own.
 *
 * sessionStorage alone is not enough: "Duplicate tab", and links opened from
 * the page, copy it, and two tabs with one id would take each other's place
 * at the gateway. So a new tab asks the others over a BroadcastChannel
 * whether its id is in use, and takes a fresh one if it is.
 */

import type { KeyValueStore } from "./settings";

const ID_KEY = "gemproxy.executor.id";
const CHANNEL_NAME = "gemproxy.executor.ids";
export const CLAIM_WAIT_MS = 300;

/** The subset of BroadcastChannel used here. */
export interface ChannelLike {
  onmessage: ((event: MessageEvent) => void) | null;
  postMessage(message: unknown): void;
}

interface IdMessage {
  type: "claim" | "taken";
  id: string;
}

function isIdMessage(data: unknown): data is IdMessage {
  const message = data as Partial<IdMessage> | null;
  return (
    typeof message === "object" &&
    message !== null &&
    (message.type === "claim" || message.type === "taken") &&
    typeof message.id === "string"
  );
}

/** A random UUID, also on plain-http pages where crypto.randomUUID does not exist. */
export function newExecutorId(): string {
  if (typeof crypto.randomUUID === "function") return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[6] = ((bytes[6] ?? 0) & 0x0f) | 0x40; // version 4
  bytes[8] = ((bytes[8] ?? 0) & 0x3f) | 0x80; // RFC 4122 variant
  const hex = Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

export function openIdChannel(): ChannelLike | null {
  try {
    return new BroadcastChannel(CHANNEL_NAME);
  } catch {
    return null; // an opaque-origin sandbox has no channel; the sessionStorage id stands
  }
}

export interface ClaimOptions {
  session: KeyValueStore;
  channel: ChannelLike | null;
  makeId?: () => string;
  waitMs?: number;
}

/**
 * Settle this tab's id. The channel keeps answering for the life of the page,
 * so a tab duplicated later learns that the id is taken.
 */
export async function claimExecutorId(options: ClaimOptions): Promise<string> {
  const makeId = options.makeId ?? newExecutorId;
  let id = options.session.getItem(ID_KEY) ?? makeId();
  options.session.setItem(ID_KEY, id);
  const { channel } = options;
  if (!channel) return id;

  let taken = false;
  channel.onmessage = (event) => {
    if (!isIdMessage(event.data) || event.data.id !== id) return;
    if (event.data.type === "claim") channel.postMessage({ type: "taken", id } satisfies IdMessage);
    else taken = true;
  };
  channel.postMessage({ type: "claim", id } satisfies IdMessage);
  await new Promise((resolve) => setTimeout(resolve, options.waitMs ?? CLAIM_WAIT_MS));
  if (taken) {
    id = makeId();
    options.session.setItem(ID_KEY, id);
  }
  return id;
}
