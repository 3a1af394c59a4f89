import { describe, expect, it } from "vitest";

import { decodeBase64, encodeBase64, joinBytes, splitBytes } from "../src/base64";
import { randomBytes } from "./fakes";

describe("base64", () => {
  it("round-trips 5 MiB of random bytes exactly", () => {
    const bytes = randomBytes(5 * 1024 * 1024);
    const decoded = decodeBase64(encodeBase64(bytes));
    expect(decoded.length).toBe(bytes.length);
    expect(Buffer.from(decoded).equals(Buffer.from(bytes))).toBe(true);
  });

  it("writes standard padded base64, the same as Node's encoder", () => {
    const bytes = randomBytes(300_001);
    expect(encodeBase64(bytes)).toBe(Buffer.from(bytes).toString("base64"));
  });

  it("reads what the gateway's Python encoder writes", () => {
    const bytes = randomBytes(262_144);
    expect(Buffer.from(decodeBase64(Buffer.from(bytes).toString("base64"))).equals(Buffer.from(bytes))).toBe(true);
  });

  it("keeps every byte value, including those that are not UTF-8", () => {
    const bytes = Uint8Array.from({ length: 256 }, (_, value) => value);
    expect(decodeBase64(encodeBase64(bytes))).toEqual(bytes);
  });

  it("pads short inputs", () => {
    const text = (value: string) => encodeBase64(new TextEncoder().encode(value));
    expect([text(""), text("f"), text("fo"), text("foo")]).toEqual(["", "Zg==", "Zm8=", "Zm9v"]);
  });

  it("refuses characters outside the alphabet", () => {
    expect(() => decodeBase64("not base64!")).toThrow();
  });
});

describe("splitting and joining bytes", () => {
  it("cuts into pieces of at most the given size and joins them back", () => {
    const bytes = randomBytes(10);
    const pieces = splitBytes(bytes, 4);
    expect(pieces.map((piece) => piece.length)).toEqual([4, 4, 2]);
    expect(joinBytes(pieces)).toEqual(bytes);
  });

  it("makes no pieces of nothing", () => {
    expect(splitBytes(new Uint8Array(0), 4)).toEqual([]);
    expect(joinBytes([])).toEqual(new Uint8Array(0));
  });
});
