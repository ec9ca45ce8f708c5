// Hosted mode: OpenAI runs the Agent Builder workflow; TaskPilot mints the short-lived sessions.
// `secrets` is TaskPilot's shared module (src/app/static/hosted-session.js, the one the page at
// `/` uses): a secret this tab holds is reused while it has more than a minute left, ChatKit's
// expired one is refreshed (and cancelled upstream), and failures come back in words.

import { ChatKit, useChatKit } from "@openai/chatkit-react";
import { changedTaskIds, THREAD_ITEM_ACTIONS } from "taskpilot/chatkit-options";
import { askAboutTask } from "taskpilot/entities";
import { describeClientSecretError, type ClientSecretError, type createClientSecretProvider } from "taskpilot/hosted-session";
import { useCallback, useEffect, useRef, useState } from "react";

import type { Task } from "./api/client.ts";
import { CHATKIT_SCRIPT } from "./chatkit-script.js";
import { placeholder, startScreen, theme, threadMemory } from "./look.ts";
import { Notice, RetryButton } from "./Notice.tsx";

/** TaskPilot's shared provider of hosted sessions (`createClientSecretProvider`). */
type Secrets = ReturnType<typeof createClientSecretProvider>;

type Props = {
  secrets: Secrets;
  script: "loading" | "loaded" | "failed";
  configured: boolean; // GET /api/chatkit/health: hosted.ready
  user: string;
  onTasksChanged: (ids: string[]) => void;
  onFailure: (error: unknown) => void;
  onUseSelfHosted: () => void;
  ask: { task: Task; at: number } | null; // the task list's "Ask about this task"
};

type StartState = { phase: "starting" | "ready"; attempt: number } | { phase: "error"; attempt: number; error: ClientSecretError };

export function HostedChat({ secrets, script, configured, user, onTasksChanged, onFailure, onUseSelfHosted, ask }: Props) {
  const [state, setState] = useState<StartState>({ phase: "starting", attempt: 0 });
  // The first secret is fetched before ChatKit is shown, so a failure reads as words rather than
  // as an empty widget; ChatKit's own first call then reuses it.
  const start = useCallback(async () => {
    setState((s) => ({ phase: "starting", attempt: s.attempt + 1 }));
    try {
      await secrets.getClientSecret(null);
      setState((s) => ({ ...s, phase: "ready" }));
    } catch (error) {
      setState((s) => ({ ...s, phase: "error", error: error as ClientSecretError }));
    }
  }, [secrets]);
  // Not configured (health says so): ask anyway without waiting for the CDN; the answer names the variables.
  const canStart = script === "loaded" || configured === false;
  useEffect(() => {
    if (canStart) start();
  }, [canStart, start]);

  const selfHosted = (
    <button type="button" className="btn btn-outline" data-action="self-hosted" onClick={onUseSelfHosted}>
      Use self-hosted mode
    </button>
  );
  if (script === "failed" && configured !== false) {
    return (
      <Notice title="Hosted mode needs ChatKit's script" actions={selfHosted}>
        ChatKit's web component could not be loaded from OpenAI's CDN ({new URL(CHATKIT_SCRIPT).origin}). In hosted mode
        the conversation runs on OpenAI's servers, so there is nothing to fall back to here. Self-hosted mode needs the
        same script; TaskPilot's own page has a built-in console that works without it.
      </Notice>
    );
  }
  if (state.phase === "error") {
    return (
      <Notice
        title="Hosted ChatKit could not start"
        actions={
          <>
            <RetryButton key={state.attempt} after={state.error.retryAfter ?? 0} onRetry={start} />
            {selfHosted}
          </>
        }
      >
        {describeClientSecretError(state.error)}
      </Notice>
    );
  }
  if (state.phase !== "ready") {
    return (
      <div className="center">
        <p className="muted" role="status">
          Starting hosted ChatKit…
        </p>
      </div>
    );
  }
  return <HostedChatKit secrets={secrets} user={user} onTasksChanged={onTasksChanged} onFailure={onFailure} ask={ask} />;
}

function HostedChatKit({ secrets, user, onTasksChanged, onFailure, ask }: Pick<Props, "secrets" | "user" | "onTasksChanged" | "onFailure" | "ask">) {
  const [thread] = useState(() => threadMemory(`taskpilot-example.thread:hosted:${user}`));
  const [initialThread] = useState(() => thread.initial());

  // [readme:hosted]
  const chatkit = useChatKit({
    api: {
      // POST /api/chatkit/sessions (or .../refresh with the expired secret) with the bearer token.
      getClientSecret: (current) =>
        secrets.getClientSecret(current).catch((error: unknown) => {
          onFailure(error); // shown in words; ChatKit is told too
          throw error;
        }),
    },
    composer: { placeholder },
    startScreen,
    theme,
    history: { enabled: true },
    threadItemActions: { ...THREAD_ITEM_ACTIONS }, // feedback and retry, handled by OpenAI here
    // No `entities` or `onClientTool`: the workflow runs on OpenAI's servers, which know nothing
    // of TaskPilot's tasks; they are self-hosted only.
    initialThread,
    onThreadChange: ({ threadId }) => thread.remember(threadId),
    onEffect: ({ name, data }) => {
      if (name === "tasks.changed") onTasksChanged(changedTaskIds(data));
    },
    onError: ({ error }) => onFailure(error),
  });
  // [/readme:hosted]

  // The task list's "Ask": its number and title in the composer (OpenAI's workflow cannot resolve
  // a tag of TaskPilot's tasks), then focus.
  // Each press once, and only one made while this chat is shown (not one from before a switch of mode).
  const asked = useRef(Date.now());
  useEffect(() => {
    if (!ask || ask.at <= asked.current) return;
    asked.current = ask.at;
    // Resolved even before ChatKit's element is mounted (the hook then only warns).
    Promise.resolve(chatkit.setComposerValue(askAboutTask(ask.task, { tagged: false }))).then(() => chatkit.focusComposer());
  }, [ask, chatkit]);

  return <ChatKit control={chatkit.control} className="chatkit" />;
}
