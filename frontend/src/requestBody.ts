/**
 * The request body as fetch is handed it, in the shapes the AI Studio relays
 * use (iBUHub/AIStudioToAPI, aistudio-build-proxy): JSON as a string, any
 * other body as a Blob. AI Studio's environment wraps fetch to authorise the
 * call, and a string or a Blob is what such a wrapper is written for; a bare
 * Uint8Array is not.
 */

export type FetchBody = string | Blob | null;

// application/json, and the structured syntax suffix of RFC 6839 (application/problem+json).
const JSON_MEDIA_TYPE = /^application\/(?:[\w.+-]+\+)?json$/;

/** The media type of a Content-Type value, lower-case and without parameters. */
export function mediaType(contentType: string | undefined): string {
  return (contentType ?? "").split(";", 1)[0]!.trim().toLowerCase();
}

/**
 * The body for fetch: null when there is none or the method cannot carry one
 * (fetch refuses a body on GET and HEAD; Google ignores one there anyway), a
 * string for JSON, a Blob for anything else. JSON that is not valid UTF-8
 * becomes a Blob too, so that no byte is changed on the way.
 */
export function fetchBody(bytes: Uint8Array, contentType: string | undefined, method: string): FetchBody {
  if (bytes.length === 0 || method === "GET" || method === "HEAD") return null;
  const type = mediaType(contentType);
  if (JSON_MEDIA_TYPE.test(type)) {
    try {
      // fatal: invalid UTF-8 throws instead of turning into U+FFFD; ignoreBOM: a BOM stays in the text.
      return new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(bytes);
    } catch {
      // falls through to the Blob, which keeps the bytes as they are
    }
  }
  // The Blob's own type only matters when the headers carry no Content-Type; then it must not invent one.
  return new Blob([bytes as BlobPart], { type: contentType ? type : "" });
}
