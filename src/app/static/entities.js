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
 * @typedef {{id: string, title: string, number: number, completed: boolean}} TaskLike  a task of GET /api/tasks (what an entity needs of it)
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
 * ChatKit's `entities` option: tag search from the REST API, clicks focus the task.
 * @param {ListTasks} listTasks
 * @param {(taskId: string) => void} focusTask
 * @returns {EntitiesOption}
 */
export function taskEntities(listTasks, focusTask) {
  return {
    onTagSearch: (query) => searchTaskEntities(listTasks, query),
    onClick: (entity) => {
      const id = entityTaskId(entity);
      if (id) focusTask(id);
    },
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
