import type { StatusSnapshot } from "../status";
import { summarizeConnection } from "./format";
import { useNow } from "./useStatus";

export function ConnectionPanel({ status }: { status: StatusSnapshot }) {
  const { connection } = status;
  const now = useNow(connection.state === "disconnected");
  const summary = summarizeConnection(connection, now);
  const account = connection.state === "connected" ? connection.account : "";
  return (
    <section className={`card connection tone-${summary.tone}`} aria-live="polite">
      <div className="connection-head">
        <span className={`pill tone-${summary.tone}`} data-testid="connection-status" data-state={summary.state}>
          {summary.state}
        </span>
        <span className="account">
          <span className="muted">Account</span>{" "}
          <strong data-testid="account-label">{account || "—"}</strong>
        </span>
      </div>
      <p className="connection-detail" data-testid="connection-detail">
        {summary.detail}
      </p>
    </section>
  );
}
