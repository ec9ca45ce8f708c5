// Self-hosted mode: TaskPilot is the ChatKit server. ChatKit posts every request to
// <TaskPilot>/chatkit through `apiFetch`, which adds the user's bearer token and the browser's
// time zone. The options are the ones TaskPilot's own page gives the web component in this mode
// (src/app/static/chatkit-options.js `selfHostedOptions`), from the same shared modules:
// - `taskpilot/chatkit-options`: the `get_time_zone` client tool, feedback and retry on each
//   answer, and the composer's tools and models that GET /api/chatkit/health offers;
// - `taskpilot/entities`: @-mentions of the user's tasks (GET /api/tasks?q=); a click on a tagged
//   task, or on one an answer names, focuses it in the task list; a hover previews it (GET
//   /api/tasks/{id}); the task list's "Ask" puts it, tagged, in the composer (`setComposerValue`);
// - the composer's tools as "/" commands (`/add`, `/find`, `/today`, `/summary`): choosing one
//   selects that tool in the composer, as the tool menu does.

import { ChatKit, useChatKit, type UseChatKitReturn } from "@openai/chatkit-react";
import { afterSyncActions, answerClientTool, changedTaskIds, composerAttachments, composerChoices, composerCommands, THREAD_ITEM_ACTIONS, withClientTools } from "taskpilot/chatkit-options";
import { askAboutTask, taskEntities } from "taskpilot/entities";
import { useEffect, useMemo, useRef, useState } from "react";

import { answered, taskOrNone, type ChatKitHealth, type Task, type TaskPilotClient } from "./api/client.ts";
import { placeholder, startScreen, theme, threadMemory } from "./look.ts";

type Props = {
  apiBase: string; // TaskPilot's URL, ending in "/"
  domainKey: string;
  apiFetch: typeof fetch; // adds the bearer token and Time-Zone
  api: TaskPilotClient; // REST calls through apiFetch
  health: ChatKitHealth;
  user: string;
  onTasksChanged: (ids: string[]) => void;
  onFocusTask: (taskId: string) => void;
  onFailure: (error: unknown) => void;
  ask: { task: Task; at: number } | null; // the task list's "Ask about this task"
};

export function SelfHostedChat({ apiBase, domainKey, apiFetch, api, health, user, onTasksChanged, onFocusTask, onFailure, ask }: Props) {
  const [thread] = useState(() => threadMemory(`taskpilot-example.thread:self-hosted:${user}`));
  const [initialThread] = useState(() => thread.initial());
  const chat = useRef<UseChatKitReturn | null>(null); // for the "/" commands, which act on the composer

  // [readme:self-hosted]
  const server = health.self_hosted; // GET /api/chatkit/health: what this TaskPilot offers
  // @-mentions: the user's tasks as ChatKit entities (GET /api/tasks?q=); a click focuses one;
  // a hover previews it (GET /api/tasks/{id}; none for a task that is not the user's any more).
  const entities = useMemo(
    () => taskEntities((query) => answered(api.GET("/api/tasks", { params: { query } })), onFocusTask, (id) => taskOrNone(api, id)),
    [api, onFocusTask]
  );
  // "/add", "/today", ...: choosing one selects that composer tool (setComposerValue).
  const commands = useMemo(
    () => composerCommands(server.composer, (toolId) => chat.current?.setComposerValue({ selectedToolId: toolId })),
    [server.composer]
  );
  const chatkit = useChatKit({
    api: {
      url: new URL("chatkit", apiBase).toString(),
      domainKey,
      // apiFetch adds Authorization: Bearer <token> and Time-Zone: <the browser's IANA zone>;
      // ChatKit-Client-Tools: get_time_zone says onClientTool below answers it (else never asked).
      // Done, Reopen and edits are synchronous widget actions (no stream, so no tasks.changed
      // effect): the task list reloads on their answer.
      fetch: afterSyncActions((input, init) => apiFetch(input, withClientTools(input, init)), () => onTasksChanged([])),
      uploadStrategy: { type: "two_phase" }, // attachments.create, then a PUT to the signed URL
    },
    composer: {
      placeholder,
      attachments: composerAttachments(server.attachments), // maxSize and accept: what the server takes
      // Only when health says TRANSCRIPTION_MODEL is set: otherwise input.transcribe is 501.
      dictation: { enabled: Boolean(server.dictation) },
      ...composerChoices(server.composer), // composer.tools; composer.models with MODEL_CHOICES
    },
    startScreen,
    theme,
    history: { enabled: true },
    threadItemActions: { ...THREAD_ITEM_ACTIONS }, // feedback and retry on each answer
    onClientTool: answerClientTool, // get_time_zone: asked when a request came without Time-Zone (and said it answers)
    entities, // onTagSearch: the user's tasks from GET /api/tasks?q=; onClick: focus it in the list; onRequestPreview
    ...(commands ? { commands } : {}), // the composer's tools as "/" commands
    initialThread,
    onThreadChange: ({ threadId }) => thread.remember(threadId),
    onEffect: ({ name, data }) => {
      // The assistant changed tasks: GET /api/tasks again, marking the ones it names.
      if (name === "tasks.changed") onTasksChanged(changedTaskIds(data));
    },
    onError: ({ error }) => onFailure(error),
  });
  // [/readme:self-hosted]
  useEffect(() => {
    chat.current = chatkit;
  });

  // The task list's "Ask": the composer gets the task tagged, then focus.
  // Each press once, and only one made while this chat is shown (not one from before a switch of mode).
  const asked = useRef(Date.now());
  useEffect(() => {
    if (!ask || ask.at <= asked.current) return;
    asked.current = ask.at;
    // Resolved even before ChatKit's element is mounted (the hook then only warns).
    Promise.resolve(chatkit.setComposerValue(askAboutTask(ask.task))).then(() => chatkit.focusComposer());
  }, [ask, chatkit]);

  return <ChatKit control={chatkit.control} className="chatkit" />;
}
