// Tasks as ChatKit entities. What the composer's @-mention search offers (ChatKit's
// `entities.onTagSearch`, answered from GET /api/tasks?q=), what a click on a tagged task or on a
// task the assistant's reply names does (`entities.onClick`: the task panel focuses it), and how
// the built-in console turns a message with chosen tags into ChatKit content (`input_tag` parts).
//
// The server trusts only an entity's id: it looks the task up among the signed-in user's tasks,
// so whatever else a tag carries (its text, its data) is a label for the person, nothing more.

/**
 * @typedef {import("@openai/chatkit").Entity} Entity
 * @typedef {import("@openai/chatkit").EntitiesOption} EntitiesOption
 * @typedef {import("@openai/chatkit").UserMessageContent} UserMessageContent
 * @typedef {import("@openai/chatkit").Widgets.BasicRoot} BasicRoot
 * @typedef {import("@openai/chatkit").Widgets.WidgetComponent} WidgetComponent
 * @typedef {{id: string, title: string, number: number, completed: boolean}} TaskLike  a task of GET /api/tasks (what an entity needs of it)
 * @typedef {TaskLike & {due_date?: string | null, priority: string}} TaskDetails  a task of GET /api/tasks/{id} (what a preview shows)
 */

export const TAG_SEARCH_LIMIT = 8;

/**
 * A task as a ChatKit entity (`Entity`: id, title, group, icon, interactive, data of strings).
 * @param {TaskLike} task
 * @returns {Entity}
 */
export function taskEntity(task) {
  return {
    id: task.id,
    title: task.title,
    group: task.completed ? "Done" : "Open",
    icon: task.completed ? "check-circle-filled" : "check-circle",
    interactive: true,
    data: { type: "task", task_id: task.id, number: String(task.number) },
  };
}

/**
 * The query of GET /api/tasks for a tag search: tasks matching `query` (title or description),
 * or the recent open ones when it is empty.
 * @param {unknown} query
 * @returns {{status: "open" | "all", sort: "updated_at", limit: number, q?: string}}
 */
export function tagSearchQuery(query) {
  const text = String(query ?? "").trim().slice(0, 200);
  return text ? { status: "all", sort: "updated_at", limit: TAG_SEARCH_LIMIT, q: text } : { status: "open", sort: "updated_at", limit: TAG_SEARCH_LIMIT };
}

/**
 * A page of the user's tasks (GET /api/tasks) for a query: how each front end calls its REST API.
 * @typedef {(query: ReturnType<typeof tagSearchQuery>) => Promise<{items: TaskLike[]}>} ListTasks
 */

/**
 * The user's tasks matching `query`, as entities.
 * @param {ListTasks} listTasks
 * @param {unknown} query
 * @returns {Promise<Entity[]>}
 */
export async function searchTaskEntities(listTasks, query) {
  const page = await listTasks(tagSearchQuery(query));
  return page.items.map(taskEntity);
}

/**
 * The task id an entity (or an `input_tag`, or an annotation's `EntitySource`) names, or null.
 * @param {{id?: string | null, data?: {task_id?: unknown} | null} | null | undefined} entity
 * @returns {string | null}
 */
export function entityTaskId(entity) {
  const taskId = entity?.data?.task_id;
  return typeof taskId === "string" && taskId ? taskId : entity?.id ?? null;
}

/**
 * One of the user's tasks (GET /api/tasks/{id}), or null when it is not theirs or no longer exists
 * (404): how each front end calls its REST API.
 * @typedef {(taskId: string) => Promise<TaskDetails | null>} GetTask
 */

const PRIORITY_BADGE = /** @type {const} */ ({ high: "danger", medium: "secondary", low: "info" });

/**
 * A task's hover preview (ChatKit's `entities.onRequestPreview` answers a `Basic` widget root):
 * its number and title, then whether it is done, its priority and its due date.
 * @param {TaskDetails} task
 * @returns {BasicRoot}
 */
export function taskPreview(task) {
  const priority = /** @type {keyof typeof PRIORITY_BADGE} */ (task.priority in PRIORITY_BADGE ? task.priority : "medium");
  /** @type {WidgetComponent[]} */
  const facts = [
    { type: "Badge", label: task.completed ? "Done" : "Open", color: task.completed ? "success" : "secondary", variant: "soft" },
    { type: "Badge", label: `${priority} priority`, color: PRIORITY_BADGE[priority], variant: "outline" },
    { type: "Caption", value: task.due_date ? `Due ${task.due_date}` : "No due date" },
  ];
  return {
    type: "Basic",
    direction: "col",
    gap: 2,
    padding: 3,
    children: [
      {
        type: "Row",
        gap: 2,
        align: "baseline",
        children: [
          { type: "Caption", value: `#${task.number}`, color: "secondary" },
          { type: "Text", value: task.title, weight: "semibold", lineThrough: task.completed, maxLines: 2 },
        ],
      },
      { type: "Row", gap: 2, align: "center", wrap: "wrap", children: facts },
    ],
  };
}

/**
 * ChatKit's `entities.onRequestPreview` for a task entity: the task as the REST API has it now, or
 * no preview (`{preview: null}`) when it is not the user's, was deleted, or could not be read (a
 * preview is a nicety: hovering never shows an error).
 * @param {GetTask} getTask
 * @param {Entity} entity
 * @returns {Promise<{preview: BasicRoot | null}>}
 */
export async function previewTaskEntity(getTask, entity) {
  const id = entityTaskId(entity);
  if (!id) return { preview: null };
  try {
    const task = await getTask(id);
    return { preview: task ? taskPreview(task) : null };
  } catch {
    return { preview: null };
  }
}

/**
 * What "Ask about this task" puts in the composer (ChatKit's `setComposerValue`): the task tagged,
 * as the tag menu would (the server resolves the tag to this task), then a space to type after. For
 * hosted mode (`tagged: false`, OpenAI's workflow knows nothing of TaskPilot's tasks), its number
 * and title as text.
 * @param {TaskLike} task
 * @param {{tagged?: boolean}} [options]
 * @returns {{content: UserMessageContent[]} | {text: string}}
 */
export function askAboutTask(task, { tagged = true } = {}) {
  if (!tagged) return { text: `About task #${task.number} "${task.title}": ` };
  const entity = taskEntity(task);
  return { content: [{ type: "input_tag", id: entity.id, text: entity.title, data: entity.data ?? {}, interactive: true }, { type: "input_text", text: " " }] };
}

/**
 * ChatKit's `entities` option: tag search from the REST API, clicks focus the task, and a hover
 * previews it (when `getTask` is given).
 * @param {ListTasks} listTasks
 * @param {(taskId: string) => void} focusTask
 * @param {GetTask} [getTask]
 * @returns {EntitiesOption}
 */
export function taskEntities(listTasks, focusTask, getTask) {
  return {
    onTagSearch: (query) => searchTaskEntities(listTasks, query),
    onClick: (entity) => {
      const id = entityTaskId(entity);
      if (id) focusTask(id);
    },
    ...(getTask ? { onRequestPreview: (entity) => previewTaskEntity(getTask, entity) } : {}),
  };
}

/**
 * The content of a user message: `text` split at each "@<tag text>" of the chosen `tags`
 * ({id, text, data}, in the order chosen) into `input_text` and `input_tag` parts. Two tags of the
 * same text (two tasks sharing a title) are matched to its mentions in order; a tag whose mention
 * was edited away is dropped.
 * @param {string} text
 * @param {ReadonlyArray<{id: string, text: string, data?: Record<string, unknown>}>} [tags]
 * @returns {UserMessageContent[]}
 */
export function taggedContent(text, tags = []) {
  const pending = [...tags];
  /** @type {UserMessageContent[]} */
  const content = [];
  let rest = String(text);
  while (rest) {
    /** @type {{at: number, tag: (typeof pending)[number]} | null} */
    let best = null;
    for (const tag of pending) {
      const at = rest.indexOf(`@${tag.text}`);
      if (at !== -1 && (!best || at < best.at || (at === best.at && tag.text.length > best.tag.text.length))) best = { at, tag };
    }
    if (!best) {
      content.push({ type: "input_text", text: rest });
      break;
    }
    if (best.at > 0) content.push({ type: "input_text", text: rest.slice(0, best.at) });
    content.push({ type: "input_tag", id: best.tag.id, text: best.tag.text, data: best.tag.data ?? {}, interactive: true });
    pending.splice(pending.indexOf(best.tag), 1);
    rest = rest.slice(best.at + best.tag.text.length + 1);
  }
  return content;
}

/**
 * An assistant message's annotation source, as ChatKit's server sends it (`EntitySource` when
 * `type` is "entity").
 * @typedef {{type?: string, id?: string, title?: string, data?: Record<string, unknown>, [key: string]: unknown}} AnnotationSource
 */

/**
 * The entity sources (tasks) annotated on an assistant message, once each, in order.
 * @param {{content?: Array<{annotations?: Array<{source?: AnnotationSource | null}>}>} | null | undefined} item
 * @returns {AnnotationSource[]}
 */
export function entitySources(item) {
  /** @type {Map<string, AnnotationSource>} */
  const seen = new Map();
  for (const part of item?.content ?? []) {
    for (const annotation of part.annotations ?? []) {
      const source = annotation.source;
      if (source?.type === "entity" && typeof source.id === "string" && !seen.has(source.id)) seen.set(source.id, source);
    }
  }
  return [...seen.values()];
}
