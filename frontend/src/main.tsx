import { StrictMode } from "react";
import { createRoot } from "react-dom/client";

import { openIdChannel } from "./identity";
import { ExecutorRuntime } from "./runtime";
import { safeStore, servedGateway } from "./settings";
import { App } from "./ui/App";
import "./styles.css";

const runtime = new ExecutorRuntime({
  pageProtocol: window.location.protocol,
  fragment: window.location.hash,
  clearFragment: () => {
    try {
      window.history.replaceState(null, "", window.location.pathname + window.location.search);
    } catch {
      // Some sandboxed frames refuse history changes; the fragment then stays.
    }
  },
  local: safeStore(() => window.localStorage),
  session: safeStore(() => window.sessionStorage),
  channel: openIdChannel(),
  servedGateway: servedGateway(document, window.location),
});

// A laptop waking up or a network coming back should not wait out a 30 s backoff.
window.addEventListener("online", () => runtime.retryNow());

const booted = runtime.boot();

const root = document.getElementById("root");
if (root) {
  createRoot(root).render(
    <StrictMode>
      <App runtime={runtime} booted={booted} />
    </StrictMode>,
  );
}
