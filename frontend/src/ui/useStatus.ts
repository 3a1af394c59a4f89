import { useEffect, useState, useSyncExternalStore } from "react";

import type { StatusSnapshot, StatusStore } from "../status";

export function useStatus(store: StatusStore): StatusSnapshot {
  return useSyncExternalStore(store.subscribe, store.getSnapshot);
}

/** The current time, refreshed every `intervalMs` while `active`: for countdowns. */
export function useNow(active: boolean, intervalMs = 1000): number {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    if (!active) return undefined;
    setNow(Date.now());
    const timer = setInterval(() => setNow(Date.now()), intervalMs);
    return () => clearInterval(timer);
  }, [active, intervalMs]);
  return now;
}
