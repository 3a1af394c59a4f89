/**
 * Standard, padded base64 for body pieces, binary-safe.
 *
 * btoa/atob work on "binary strings" (one char per byte, 0-255), which is a
 * lossless view of the bytes. What corrupts binary bodies is decoding them
 * as text (TextDecoder/UTF-8) on the way, so bytes never pass through one.
 */

// String.fromCharCode takes its bytes as arguments; stay well below engines' argument limits.
const BLOCK = 0x8000;

export function encodeBase64(bytes: Uint8Array): string {
  let binary = "";
  for (let start = 0; start < bytes.length; start += BLOCK) {
    const block = bytes.subarray(start, start + BLOCK);
    binary += String.fromCharCode.apply(null, block as unknown as number[]);
  }
  return btoa(binary);
}

// A simple class star, not a repeated group: V8 would backtrack through a 350 KB piece and overflow.
const ALPHABET_THEN_PADDING = /^[A-Za-z0-9+/]*={0,2}$/;

/**
 * Throws on anything but padded standard base64. atob alone is lenient: it
 * skips spaces and accepts missing padding, so a corrupted piece would pass.
 */
export function decodeBase64(data: string): Uint8Array {
  if (data.length % 4 !== 0 || !ALPHABET_THEN_PADDING.test(data)) throw new SyntaxError("not padded standard base64");
  const binary = atob(data);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

/** The pieces of `bytes`, each at most `size` long, sharing its memory. */
export function splitBytes(bytes: Uint8Array, size: number): Uint8Array[] {
  const pieces: Uint8Array[] = [];
  for (let start = 0; start < bytes.length; start += size) pieces.push(bytes.subarray(start, start + size));
  return pieces;
}

/** One buffer holding `pieces` in order. */
export function joinBytes(pieces: readonly Uint8Array[]): Uint8Array<ArrayBuffer> {
  let length = 0;
  for (const piece of pieces) length += piece.length;
  const joined = new Uint8Array(length);
  let offset = 0;
  for (const piece of pieces) {
    joined.set(piece, offset);
    offset += piece.length;
  }
  return joined;
}
