/**
 * What the browser executor accepts from the gateway: task fields of the
 * protocol's types, whose path and query keep their meaning when they are
 * put into the upstream URL.
 *
 * The executor trusts the gateway's choice of call, not its bytes: a path with
 * '?', '#', '%' or a dot segment, or a query that smuggles in a `key`, would
 * make the upstream see another request than the gateway asked for (and
 * fetch's URL parser would rewrite some of them silently). The same rules,
 * and the same messages, as executors/task_checks.py.
 */

/** Methods the Gemini API uses; anything else is not a call the gateway relays. */
export const METHODS: ReadonlySet<string> = new Set(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]);
/** Attempt ids are UUIDs; a bound keeps an echoed id from inflating frames. */
export const MAX_ID_LENGTH = 128;
export const MAX_PATH_LENGTH = 2048;
export const MAX_QUERY_LENGTH = 16 * 1024;

const ID = new RegExp(`^[\\x21-\\x7e]{1,${MAX_ID_LENGTH}}$`);
const PATH_CHARACTER = /^[A-Za-z0-9\-._~:/]$/;
const PATH_SEGMENT = /^[A-Za-z0-9\-._~:]+$/;
// The API's versions, optionally behind the media prefixes Google uses for uploads and downloads.
const PATH_PREFIX = /^\/(?:(?:upload|download)\/)?v1(?:beta|alpha)?\//;
// RFC 3986's query characters: no '#', space, control or non-ASCII character.
const QUERY_CHARACTER = /^[A-Za-z0-9\-._~!$'()*+,;:@/?=&%]$/;
// Names and values are made of them less '&' and '=' (the structure), with '%' only in an escape;
// a '?' in a name would mean a second '?' in the URL: a gateway bug, refused. A value may hold '=':
// parsers split at the first one, and page tokens are base64.
const QUERY_NAME = String.raw`(?:[A-Za-z0-9\-._~!$'()*+,;:@/]|%[0-9A-Fa-f]{2})+`;
const QUERY_VALUE = String.raw`(?:[A-Za-z0-9\-._~!$'()*+,;:@/?=]|%[0-9A-Fa-f]{2})*`;
const QUERY_PART = new RegExp(`^${QUERY_NAME}=${QUERY_VALUE}$`);
const HEADER_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
// Visible ASCII, spaces and tabs, and (obs-text) Latin-1 above 0x7f, but no CR, LF, NUL or other controls.
const HEADER_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;

/** A character as a message shows it: quoted when visible ASCII, else its code point (no raw CR/LF). */
export function shown(character: string): string {
  const code = character.codePointAt(0) ?? 0;
  return code >= 0x21 && code <= 0x7e ? `'${character}'` : `U+${code.toString(16).toUpperCase().padStart(4, "0")}`;
}

/** Whether value can be a task's id: a short string of visible ASCII. */
export function isTaskId(value: unknown): value is string {
  return typeof value === "string" && ID.test(value);
}

/** Why path cannot go into the upstream URL as it is, or null when it can. */
export function pathProblem(path: string): string | null {
  if (path.length > MAX_PATH_LENGTH) return `path is longer than ${MAX_PATH_LENGTH} characters`;
  for (const character of path) {
    if (!PATH_CHARACTER.test(character)) return `path has a character that is not allowed: ${shown(character)}`;
  }
  const prefix = PATH_PREFIX.exec(path);
  if (!prefix) return "path must start with /v1/, /v1beta/ or /v1alpha/ (or /upload/ or /download/ before them)";
  for (const segment of path.slice(prefix[0].length).split("/")) {
    if (segment === "." || segment === ".." || !PATH_SEGMENT.test(segment)) {
      return "path has an empty, '.' or '..' segment";
    }
  }
  return null;
}

/** The bytes a percent-encoded query name stands for, '+' meaning a space. */
function decodedName(name: string): string {
  // Each byte becomes one char (Latin-1), so an escape that is not UTF-8 cannot throw.
  return name
    .replace(/\+/g, " ")
    .replace(/%([0-9A-Fa-f]{2})/g, (_, hex: string) => String.fromCharCode(parseInt(hex, 16)));
}

/** Why query cannot go into the upstream URL as it is, or null when it can. */
export function queryProblem(query: string): string | null {
  if (query === "") return null;
  if (query.length > MAX_QUERY_LENGTH) return `query is longer than ${MAX_QUERY_LENGTH} characters`;
  for (const character of query) {
    if (!QUERY_CHARACTER.test(character)) return `query has a character that is not allowed: ${shown(character)}`;
  }
  const parts = query.split("&");
  for (const [index, part] of parts.entries()) {
    if (!QUERY_PART.test(part)) {
      return `query part ${index + 1} is not name=value with percent-encoded name and value`;
    }
    const name = decodedName(part.slice(0, part.indexOf("=")));
    // The executor's credentials are AI Studio's; a key from the task would replace or join them.
    if (name.trim().toLowerCase() === "key") return "query carries 'key': the executor adds its own credentials";
  }
  return null;
}

/** Why a header name or value cannot be sent, or null. */
export function headerProblem(name: string, value: unknown): string | null {
  if (!HEADER_NAME.test(name)) return "headers has a name that is not an HTTP token";
  if (typeof value !== "string" || !HEADER_VALUE.test(value)) {
    return `header '${name}' must be a string without control characters`;
  }
  return null;
}
