// TaskPilot from React: a chat (ChatKit through @openai/chatkit-react) beside the user's open
// tasks, in either mode:
// - self-hosted (SelfHostedChat.tsx): TaskPilot answers ChatKit at /chatkit;
// - hosted (HostedChat.tsx): OpenAI runs the Agent Builder workflow, TaskPilot mints the sessions.
// The default is whichever mode TaskPilot has configured (self-hosted when both); `?mode=` picks.

import { browserTimeZone } from "taskpilot/chatkit-options";
import { createClientSecretProvider, describeClientSecretError } from "taskpilot/hosted-session";
import { useCallback, useEffect, useMemo, useState, type FormEvent, type ReactNode } from "react";

import { answered, sessionRoutes, taskPilotClient, type ChatKitHealth, type Task, type TaskPilotClient } from "./api/client.ts";
import { bearerFetch, createTokenSource, devToken, tokenFromUrl, type FetchToken } from "./auth.ts";
import { loadChatKitScript } from "./chatkit-script.js";
import { config } from "./config.js";
import { HostedChat } from "./HostedChat.tsx";
import { Notice } from "./Notice.tsx";
import { SelfHostedChat } from "./SelfHostedChat.tsx";
import { TaskList, type TasksChange } from "./TaskList.tsx";

const MODES = ["self-hosted", "hosted"] as const;
type Mode = (typeof MODES)[number];
const DEV_USER_KEY = "taskpilot-example.devUser";

declare global {
  interface Window {
    /** A page embedding the app may say where its tokens come from (see README.md). */
    taskpilotToken?: FetchToken;
  }
}

function isMode(value: string | null): value is Mode {
  return MODES.some((mode) => mode === value);
}

function chooseMode(health: ChatKitHealth): Mode {
  const asked = new URLSearchParams(window.location.search).get("mode");
  if (isMode(asked)) return asked;
  return health.hosted.ready && !health.self_hosted.ready ? "hosted" : "self-hosted";
}

function storedDevUser() {
  try {
    return window.localStorage.getItem(DEV_USER_KEY);
  } catch {
    return null;
  }
}

export function App() {
  const { apiBase, pageUrl, tokenUrl, domainKey } = config;
  // Health, development tokens and hosted sessions: calls without the user's token (the session
  // routes add it themselves, from `tokens`).
  const publicApi = useMemo(() => taskPilotClient(apiBase), [apiBase]);
  const [health, setHealth] = useState<ChatKitHealth | null>(null);
  const [healthError, setHealthError] = useState<string | null>(null);
  const [mode, setModeState] = useState<Mode | null>(null);
  const [devUser, setDevUser] = useState(storedDevUser);
  const [script, setScript] = useState<"loading" | "loaded" | "failed">("loading");
  // Each change of the list: a counter (reload) and the task ids the assistant named (marked).
  const [tasksChange, setTasksChange] = useState<TasksChange>({ version: 0, ids: [] });
  const [focus, setFocus] = useState<{ id: string; at: number } | null>(null); // the task an entity click asked for
  const [ask, setAsk] = useState<{ task: Task; at: number } | null>(null); // the task list's "Ask about this task"
  const [failure, setFailure] = useState<unknown>(null);

  useEffect(() => {
    loadChatKitScript().then(setScript);
  }, []);

  const loadHealth = useCallback(async () => {
    setHealthError(null);
    try {
      const body = await answered(publicApi.GET("/api/chatkit/health"));
      setHealth(body);
      setModeState((current) => current ?? chooseMode(body));
    } catch (error) {
      setHealthError(`Cannot reach TaskPilot at ${apiBase} (${error instanceof Error ? error.message : String(error)}). Is it running (make run)?`);
    }
  }, [apiBase, publicApi]);
  useEffect(() => {
    loadHealth();
  }, [loadHealth]);

  // Who is signed in, and where their tokens come from. Replace this with your sign-in service:
  // with Better Auth, `createTokenSource(async () => (await authClient.token()).data?.token)`.
  const hostToken = typeof window.taskpilotToken === "function" ? window.taskpilotToken : null;
  const source = hostToken ? "host" : tokenUrl ? "url" : "dev";
  const user = source === "dev" ? devUser : "you";
  const tokens = useMemo(() => {
    if (source === "host" && hostToken) return createTokenSource(hostToken);
    if (source === "url") return createTokenSource(tokenFromUrl(tokenUrl));
    return devUser ? createTokenSource(devToken(publicApi, devUser)) : null;
  }, [source, hostToken, tokenUrl, publicApi, devUser]);
  // Every call to TaskPilot (ChatKit's and the task list's) says where the user is: "today" and
  // "tomorrow" are their dates, not UTC's.
  const apiFetch = useMemo(() => (tokens ? bearerFetch(tokens, { timeZone: browserTimeZone() }) : null), [tokens]);
  // The task list's and the tag search's REST calls: the user's token and Time-Zone on each.
  const api = useMemo(() => (apiFetch ? taskPilotClient(apiBase, apiFetch) : null), [apiBase, apiFetch]);

  // [readme:secrets]
  const secrets = useMemo(
    () =>
      tokens &&
      createClientSecretProvider({
        baseUrl: apiBase, // TaskPilot, which holds the API key and the workflow id
        getToken: () => tokens.token(), // the user's bearer token; null when signed out
        invalidateToken: (token) => tokens.invalidate(token),
        storage: window.sessionStorage, // this tab only: never a cookie or the URL
        routes: sessionRoutes(publicApi), // mint, refresh, cancel: the spec's calls, typed
      }),
    [apiBase, publicApi, tokens]
  );
  // [/readme:secrets]

  const setMode = (next: Mode) => {
    setFailure(null);
    setModeState(next);
    const search = new URLSearchParams(window.location.search);
    search.set("mode", next);
    window.history.replaceState(null, "", `${window.location.pathname}?${search}`);
  };

  const signOut = async () => {
    await secrets?.release(); // cancel this user's hosted session while the token still works
    window.localStorage.removeItem(DEV_USER_KEY);
    setDevUser(null);
  };

  const onTasksChanged = useCallback((ids: string[] = []) => setTasksChange((c) => ({ version: c.version + 1, ids })), []);
  const onFocusTask = useCallback((id: string) => setFocus({ id: String(id), at: Date.now() }), []);
  const onFailure = useCallback((error: unknown) => setFailure(error), []);
  const onAsk = useCallback((task: Task) => setAsk({ task, at: Date.now() }), []);

  if (healthError) {
    return (
      <Shell>
        <Notice title="TaskPilot is not reachable" actions={<button type="button" className="btn btn-solid" onClick={loadHealth}>Retry</button>}>
          {healthError}
        </Notice>
      </Shell>
    );
  }
  if (!health || !mode) {
    return <Shell><p className="muted center">Connecting to TaskPilot…</p></Shell>;
  }
  if (!tokens || !secrets || !apiFetch || !api || !user) {
    return (
      <Shell>
        {health.auth_mode === "dev" ? (
          <DevSignIn api={publicApi} onSignedIn={setDevUser} />
        ) : (
          <Notice title="Sign in through your application">
            TaskPilot accepts JWTs from your sign-in service. Set VITE_TASKPILOT_TOKEN_URL (Better Auth:
            https://app.example.com/api/auth/token) or define window.taskpilotToken; see README.md.
          </Notice>
        )}
      </Shell>
    );
  }

  return (
    <Shell
      mode={mode}
      onMode={setMode}
      hostedReady={health.hosted.ready}
      user={user}
      onSignOut={source === "dev" ? signOut : null}
    >
      {failure ? (
        <p className="status error" role="alert">
          {describeClientSecretError(failure)}
        </p>
      ) : null}
      <div className="body">
        <main className="chat" aria-label="Assistant" data-mode={mode} data-script={script}>
          {mode === "hosted" ? (
            <HostedChat
              key={`hosted:${user}`}
              secrets={secrets}
              script={script}
              configured={health.hosted.ready}
              user={user}
              onTasksChanged={onTasksChanged}
              onFailure={onFailure}
              onUseSelfHosted={() => setMode("self-hosted")}
              ask={ask}
            />
          ) : script === "failed" ? (
            <Notice title="ChatKit's script could not load">
              ChatKit's web component comes from OpenAI's CDN, which this browser cannot reach.{" "}
              {pageUrl ? (
                <>
                  TaskPilot's own page (<a href={pageUrl}>{pageUrl}</a>) has a built-in console that works without it.
                </>
              ) : (
                <>TaskPilot's own page (its `/`) has a built-in console that works without it.</>
              )}
            </Notice>
          ) : script === "loaded" ? (
            <SelfHostedChat
              key={`self-hosted:${user}`}
              apiBase={apiBase}
              domainKey={domainKey}
              apiFetch={apiFetch}
              health={health}
              user={user}
              api={api}
              onTasksChanged={onTasksChanged}
              onFocusTask={onFocusTask}
              onFailure={onFailure}
              ask={ask}
            />
          ) : (
            <p className="muted center">Loading ChatKit…</p>
          )}
        </main>
        <TaskList api={api} change={tasksChange} focus={focus} onRefresh={onTasksChanged} onAsk={onAsk} />
      </div>
    </Shell>
  );
}

type ShellProps = {
  children: ReactNode;
  mode?: Mode;
  onMode?: (mode: Mode) => void;
  hostedReady?: boolean;
  user?: string | null;
  onSignOut?: (() => void) | null;
};

function Shell({ children, mode, onMode, hostedReady, user, onSignOut }: ShellProps) {
  return (
    <div className="app" data-ready={mode ? "true" : "false"}>
      <header className="topbar">
        <strong className="brand">TaskPilot</strong>
        <span className="muted">React example</span>
        {mode && (hostedReady || mode === "hosted") ? (
          <div className="modes" role="group" aria-label="ChatKit mode">
            {MODES.map((m) => (
              <button key={m} type="button" className="mode" data-mode={m} aria-pressed={m === mode} onClick={() => onMode?.(m)}>
                {m === "hosted" ? "Hosted" : "Self-hosted"}
              </button>
            ))}
          </div>
        ) : null}
        {user ? (
          <span className="user">
            {user}
            {onSignOut ? (
              <button type="button" className="btn btn-ghost" onClick={onSignOut}>
                Switch user
              </button>
            ) : null}
          </span>
        ) : null}
      </header>
      {children}
    </div>
  );
}

function DevSignIn({ api, onSignedIn }: { api: TaskPilotClient; onSignedIn: (user: string) => void }) {
  const [name, setName] = useState("");
  const [error, setError] = useState<string | null>(null);
  const submit = async (event: FormEvent<HTMLFormElement>) => {
    event.preventDefault();
    const user = name.trim();
    if (!user) return;
    try {
      await devToken(api, user)(); // refused names are reported before anything changes
      window.localStorage.setItem(DEV_USER_KEY, user);
      onSignedIn(user);
    } catch (failure) {
      setError(failure instanceof Error ? failure.message : String(failure));
    }
  };
  return (
    <div className="center">
      <form className="signin" onSubmit={submit}>
        <h2>Sign in for development</h2>
        <p className="muted">TaskPilot runs with AUTH_MODE=dev: any user name gets a development token.</p>
        <label htmlFor="user-name">User name</label>
        <div className="row">
          <input id="user-name" value={name} onChange={(e) => setName(e.target.value)} autoComplete="username" required />
          <button type="submit" className="btn btn-solid">
            Continue
          </button>
        </div>
        {error ? <p className="error" role="alert">{error}</p> : null}
      </form>
    </div>
  );
}
