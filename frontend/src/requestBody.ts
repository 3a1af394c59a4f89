/**
 * The request body as fetch is handed it, in the shapes the AI Studio relays
 * use (iBUHub/AIStudioToAPI, aistudio-build-proxy): JSON as a string, any
 * other body as a Blob. AI Studio's environment wraps fetch to authorise the
 * call, and a string or a Blob is what such a wrapper is written for; a bare
 * Uint8Array is not.
 */

import { joinBytes } from "./base64";

export type FetchBody = string | Blob | null;

// application/json, and the structured syntax suffix of RFC 6839 (application/problem+json).
const JSON_MEDIA_TYPE = /^application\/(?:[\w.+-]+\+)?json$/;

/** The media type of a Content-Type value, lower-case and without parameters. */
export function mediaType(contentType: string | undefined): string {
  return (contentType ?? "").split(";", 1)[0]!.trim().toLowerCase();
}

/**
 * The body for fetch, from the task's decoded pieces: null when there is none
 * or the method cannot carry one (fetch refuses a body on GET and HEAD; Google
 * ignores one there anyway), a string for JSON, a Blob for anything else, such
 * as an upload's chunk of a file (protocol feature binary_body). The Blob is
 * made of the pieces themselves, never of one joined copy, so a large chunk is
 * held once. JSON that is not valid UTF-8 becomes a Blob too, so that no byte
 * is changed on the way.
 */
export function fetchBody(pieces: readonly Uint8Array[], contentType: string | undefined, method: string): FetchBody {
  const size = pieces.reduce((total, piece) => total + piece.length, 0);
  if (size === 0 || method === "GET" || method === "HEAD") return null;
  const type = mediaType(contentType);
  if (JSON_MEDIA_TYPE.test(type)) {
    try {
      // fatal: invalid UTF-8 throws instead of turning into U+FFFD; ignoreBOM: a BOM stays in the text.
      return new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(joinBytes(pieces));
    } catch {
      // falls through to the Blob, which keeps the bytes as they are
    }
  }
  // The Blob's own type only matters when the headers carry no Content-Type; then it must not invent one.
  return new Blob([...pieces] as BlobPart[], { type: contentType ? type : "" });
}
