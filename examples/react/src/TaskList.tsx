// The signed-in user's tasks, from TaskPilot's REST API through the generated client, which sends
// through the app's `fetch` (bearer token and Time-Zone, so "due today" and "overdue" are the
// user's dates). `change` changes when the assistant reports `tasks.changed` (its ids are marked
// for a moment); `focus` when a tagged task, or one an answer names, is clicked in the chat: the
// row is scrolled to, marked and focused, and the list switches to "All" when "Open" hides it.
// Each row's "Ask" puts the task in the chat's composer (`onAsk`).

import { useEffect, useRef, useState } from "react";

import { answered, type Task, type TaskPilotClient, type TaskSummary } from "./api/client.ts";

const FILTERS = [
  { id: "open", label: "Open" },
  { id: "all", label: "All" },
] as const;
type Filter = (typeof FILTERS)[number]["id"];

/** A change of the list: a counter (reload) and the task ids the assistant named (marked). */
export type TasksChange = { version: number; ids: string[] };

type Props = {
  api: TaskPilotClient; // the user's token and Time-Zone on each call
  change: TasksChange;
  focus: { id: string; at: number } | null;
  onRefresh: () => void;
  onAsk: (task: Task) => void;
};

type ListState = { loading: boolean; filter: Filter | null; tasks: Task[]; summary: TaskSummary | null; error: string | null };
type Focused = { id: string; at: number; phase: "pending" | "shown" | "missing" };

export function TaskList({ api, change, focus, onRefresh, onAsk }: Props) {
  const [filter, setFilter] = useState<Filter>("open");
  const [state, setState] = useState<ListState>({ loading: true, filter: null, tasks: [], summary: null, error: null });
  const [focused, setFocused] = useState<Focused | null>(null);
  const list = useRef<HTMLUListElement>(null);

  useEffect(() => {
    let active = true;
    setState((s) => ({ ...s, loading: true }));
    (async () => {
      try {
        const [page, summary] = await Promise.all([
          answered(api.GET("/api/tasks", { params: { query: { status: filter, sort: "due_date", order: "asc", limit: 100 } } })),
          answered(api.GET("/api/tasks/summary")),
        ]);
        if (active) setState({ loading: false, filter, tasks: page.items, summary, error: null });
      } catch (error) {
        if (active) setState((s) => ({ ...s, loading: false, error: error instanceof Error ? error.message : String(error) }));
      }
    })();
    return () => {
      active = false;
    };
  }, [api, filter, change.version]);

  useEffect(() => {
    if (focus) setFocused({ ...focus, phase: "pending" });
  }, [focus]);

  // Once the list for the current filter is there, show the asked-for task once (or say it is gone).
  useEffect(() => {
    if (focused?.phase !== "pending" || state.loading || state.filter !== filter) return;
    const row = [...(list.current?.querySelectorAll<HTMLElement>(".task") ?? [])].find((el) => el.dataset.taskId === focused.id);
    if (row) {
      row.scrollIntoView?.({ block: "nearest" });
      row.focus({ preventScroll: true });
      setFocused((f) => f && { ...f, phase: "shown" });
    } else if (filter !== "all") {
      setFilter("all");
    } else {
      setFocused((f) => f && { ...f, phase: "missing" });
    }
  }, [focused, state, filter]);

  const changed = new Set(change.ids.map(String));
  const { summary } = state;
  return (
    <aside className="tasks" aria-labelledby="tasks-title" aria-busy={state.loading}>
      <header>
        <h2 id="tasks-title">Tasks</h2>
        <button type="button" className="btn btn-ghost" onClick={() => onRefresh()} aria-label="Refresh tasks">
          ↻
        </button>
      </header>
      {summary ? (
        <p className="task-summary muted" data-today={summary.today} data-due-today={summary.due_today} data-overdue={summary.overdue}>
          {summary.open} open · {summary.due_today} due today · {summary.overdue} overdue
        </p>
      ) : null}
      <div className="filters" role="group" aria-label="Which tasks">
        {FILTERS.map((f) => (
          <button key={f.id} type="button" className="filter" data-filter={f.id} aria-pressed={f.id === filter} onClick={() => setFilter(f.id)}>
            {f.label}
          </button>
        ))}
      </div>
      {state.error ? <p className="error" role="alert">{state.error}</p> : null}
      {focused?.phase === "missing" ? <p className="muted" role="status">That task is not in your list any more.</p> : null}
      {!state.error && !state.loading && state.tasks.length === 0 ? (
        <p className="muted">{filter === "open" ? "Nothing open." : "No tasks yet."}</p>
      ) : null}
      <ul className="task-list" ref={list}>
        {state.tasks.map((task) => (
          <li
            key={task.id}
            className={["task", task.completed ? "task-done" : "", changed.has(task.id) ? "task-changed" : "", focused?.id === task.id ? "task-focused" : ""].filter(Boolean).join(" ")}
            data-task-id={task.id}
            tabIndex={-1}
          >
            <span className="task-number muted">#{task.number}</span> <span className="task-title">{task.title}</span>
            {task.due_date ? <span className="muted"> · due {task.due_date}</span> : null}
            <button type="button" className="btn btn-ghost task-ask" title="Ask about this task" aria-label={`Ask about #${task.number} ${task.title}`} onClick={() => onAsk(task)}>
              ?
            </button>
          </li>
        ))}
      </ul>
    </aside>
  );
}
