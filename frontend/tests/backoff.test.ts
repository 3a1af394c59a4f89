import { describe, expect, it } from "vitest";

import { backoffCeiling, backoffDelayMs } from "../src/backoff";

describe("reconnect backoff", () => {
  it("doubles from 0.5 s and stops at 30 s", () => {
    expect([0, 1, 2, 3, 4, 5, 6, 7, 100].map(backoffCeiling)).toEqual([0.5, 1, 2, 4, 8, 16, 30, 30, 30]);
  });

  it("waits anywhere from nothing up to the ceiling (full jitter)", () => {
    expect(backoffDelayMs(3, () => 0)).toBe(0);
    expect(backoffDelayMs(3, () => 0.5)).toBe(2000);
    expect(backoffDelayMs(3, () => 0.999999)).toBeLessThan(4000);
  });

  it("stays within bounds with real randomness", () => {
    for (let attempt = 0; attempt < 12; attempt++) {
      for (let i = 0; i < 200; i++) {
        const delay = backoffDelayMs(attempt);
        expect(delay).toBeGreaterThanOrEqual(0);
        expect(delay).toBeLessThan(backoffCeiling(attempt) * 1000);
      }
    }
  });

  it("never exceeds 30 s, however many attempts failed", () => {
    expect(backoffDelayMs(10_000, () => 0.999999)).toBeLessThan(30_000);
  });
});
