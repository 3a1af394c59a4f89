import type { TaskLogEntry } from "../status";
import { clock, duration, size } from "./format";

function outcomeText(entry: TaskLogEntry): string {
  if (entry.outcome === "running") return "running";
  if (entry.outcome === "served") return String(entry.status ?? "");
  return entry.outcome;
}

function outcomeTone(entry: TaskLogEntry): string {
  if (entry.outcome === "running") return "busy";
  if (entry.outcome === "cancelled") return "quiet";
  if (entry.outcome === "failed" || (entry.status ?? 0) >= 500) return "bad";
  if ((entry.status ?? 0) >= 400) return "warn";
  return "good";
}

/** The row's tooltip: why it failed, and the gateway's request id to find the call in its log. */
function titleOf(entry: TaskLogEntry): string | undefined {
  const parts = [entry.detail, entry.requestId ? `request ${entry.requestId}` : ""].filter(Boolean);
  return parts.length ? parts.join(" · ") : undefined;
}

export function TaskLog({ entries }: { entries: readonly TaskLogEntry[] }) {
  return (
    <section className="card log" aria-label="Recent tasks">
      <h2>Recent tasks</h2>
      <div className="table-wrap">
        <table data-testid="task-log">
          <thead>
            <tr>
              <th>Time</th>
              <th>Call</th>
              <th>Model</th>
              <th>Status</th>
              <th className="num">Duration</th>
              <th className="num">Size</th>
            </tr>
          </thead>
          <tbody>
            {entries.length === 0 && (
              <tr className="empty">
                <td colSpan={6}>No tasks yet. They appear here as the gateway sends them.</td>
              </tr>
            )}
            {entries.map((entry) => (
              <tr
                key={entry.id}
                data-testid="task-log-entry"
                data-task-id={entry.id}
                data-outcome={entry.outcome}
                data-status={entry.status ?? ""}
                data-request-id={entry.requestId || undefined}
                title={titleOf(entry)}
              >
                <td className="muted">{clock(entry.startedAt)}</td>
                <td>
                  <span className="method">{entry.method}</span> {entry.operation}
                </td>
                <td className="model">{entry.model || "—"}</td>
                <td>
                  <span className={`badge tone-${outcomeTone(entry)}`}>{outcomeText(entry)}</span>
                </td>
                <td className="num">{duration(entry.durationMs)}</td>
                <td className="num">{entry.outcome === "running" ? "" : size(entry.bytes)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </section>
  );
}
