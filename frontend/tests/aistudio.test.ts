import { describe, expect, it } from "vitest";

import { assertSameAsTsx } from "../aistudio/plugin.ts";

describe("the AI Studio bundle check", () => {
  it("accepts JavaScript that means the same as TSX", () => {
    expect(assertSameAsTsx("const a = 1, b = 2; export const c = a < b ? f(a) : b > a;")).toBeNull();
  });

  it("catches code TypeScript would read as a generic call", () => {
    expect(assertSameAsTsx("var a = 1, b = 2, c = 3; export const d = a < b > (c);")).toMatch(/reads differently/);
  });

  it("catches a syntax error", () => {
    expect(assertSameAsTsx("const = ;")).not.toBeNull();
  });
});
