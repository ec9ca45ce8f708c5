// The ChatKit protocol over fetch: JSON requests (threads.list, items.list, ...) and streamed ones
// (threads.create, threads.add_user_message, threads.custom_action, ...) whose answers are
// Server-Sent Events: `data: <event JSON>` frames and `: keepalive` comments.

import { errorFromResponse } from "./api.js";
import { CLIENT_TOOLS, CLIENT_TOOLS_HEADER } from "./chatkit-options.js";
import { taggedContent } from "./entities.js";

/**
 * A user message's input. `tags` ({id, text, data}) become `input_tag` parts where "@text" is;
 * `inferenceOptions` carries the composer's choices ({tool_choice: {id}, model}).
 */
export function userInput(text, { tags = [], inferenceOptions = {} } = {}) {
  return {
    content: tags.length ? taggedContent(text, tags) : [{ type: "input_text", text }],
    attachments: [],
    inference_options: inferenceOptions,
  };
}

/** Split an SSE byte stream into parsed `data:` payloads; comments (keepalives) are skipped. */
export async function* sseEvents(body) {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  try {
    while (true) {
      const { value, done } = await reader.read();
      buffer += decoder.decode(value ?? new Uint8Array(), { stream: !done });
      let boundary;
      while ((boundary = buffer.search(/\r?\n\r?\n/)) !== -1) {
        const block = buffer.slice(0, boundary);
        buffer = buffer.slice(boundary).replace(/^\r?\n\r?\n/, "");
        const data = block
          .split(/\r?\n/)
          .filter((line) => line.startsWith("data:"))
          .map((line) => line.slice(5).replace(/^ /, ""))
          .join("\n");
        if (data) yield JSON.parse(data);
      }
      if (done) break;
    }
  } finally {
    reader.releaseLock();
  }
}

export class ChatKitConnection {
  /** @param {import("./api.js").Api} api */
  constructor(api, path = "/chatkit") {
    this.api = api;
    this.url = api.url(path);
  }

  async #post(type, params, signal) {
    const response = await this.api.fetch(this.url, {
      method: "POST",
      // The console answers get_time_zone (its onClientTool): only then may the server ask it.
      headers: { "Content-Type": "application/json", Accept: "text/event-stream, application/json", [CLIENT_TOOLS_HEADER]: CLIENT_TOOLS },
      body: JSON.stringify({ type, params }),
      signal,
    });
    if (!response.ok) throw await errorFromResponse(response);
    return response;
  }

  /** A non-streaming request: its JSON answer. */
  async request(type, params) {
    const response = await this.#post(type, params);
    return response.json();
  }

  /** A streaming request: calls `onEvent` for each event in order; resolves when the stream ends. */
  async stream(type, params, onEvent, { signal } = {}) {
    const response = await this.#post(type, params, signal);
    const kind = response.headers.get("content-type") ?? "";
    if (!kind.startsWith("text/event-stream")) {
      return response.json();
    }
    for await (const event of sseEvents(response.body)) {
      onEvent(event);
    }
    return null;
  }
}
