import type { ExecutorRuntime } from "../runtime";
import type { SettingsError } from "../settings";
import { ConnectionPanel } from "./ConnectionPanel";
import { Counters } from "./Counters";
import { SelfTest } from "./SelfTest";
import { SettingsForm } from "./SettingsForm";
import { TaskLog } from "./TaskLog";
import { useStatus } from "./useStatus";

interface AppProps {
  runtime: ExecutorRuntime;
  /** The outcome of connecting with remembered settings when the page loaded. */
  booted: Promise<SettingsError | null>;
}

export function App({ runtime, booted }: AppProps) {
  const status = useStatus(runtime.store);
  const identity = status.identity;
  return (
    <div className="page">
      <header className="masthead">
        <div className="brand">
          <span className="logo" aria-hidden="true" />
          <div>
            <h1>gemproxy executor</h1>
            <p className="tagline">This tab performs Gemini API calls for your team&rsquo;s gateway.</p>
          </div>
        </div>
      </header>

      <main className="layout">
        <div className="column">
          <ConnectionPanel status={status} />
          <Counters status={status} />
          <TaskLog entries={status.log} />
        </div>
        <aside className="column">
          <SettingsForm runtime={runtime} booted={booted} connection={status.connection} />
          <SelfTest runtime={runtime} />
        </aside>
      </main>

      <footer className="footer">
        <span>
          Executor id <code data-testid="executor-id">{identity?.executorId ?? "…"}</code>
        </span>
        <span data-testid="software">{identity?.software ?? ""}</span>
      </footer>
    </div>
  );
}
