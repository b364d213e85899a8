// The live event feed: `GET /events/stream` read with fetch() (EventSource
// cannot send the Authorization header) and a small `text/event-stream`
// parser, resumed with `Last-Event-ID` after a break. Views subscribe to it;
// the header's connection status says how it is.

import { apiUrl, path, requestHeaders, unauthorized } from "./api.js";

const STREAM_SILENCE_MS = 45000; // the server sends a keep-alive every 15 s

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// The header's connection status: `live`, `reconnecting` or `disconnected`.
export function setConnection(state, text) {
  const el = document.getElementById("connection");
  el.hidden = false;
  el.className = `connection ${state}`;
  el.dataset.state = state;
  el.textContent = text;
}

// Reads `text/event-stream` from fetch(): EventSource cannot send a header.
class EventFeed {
  constructor() {
    this.lastId = null;
    this.listeners = new Set();
    this.stopped = true;
    this.controller = null;
  }

  start() {
    if (!this.stopped) return;
    this.stopped = false;
    this.generation = (this.generation || 0) + 1;
    this.run(this.generation);
  }

  stop() {
    this.stopped = true;
    if (this.controller) this.controller.abort();
  }

  // A loop of an earlier start (stopped, then started again while it
  // slept) ends instead of running beside the new one.
  ended(generation) {
    return this.stopped || generation !== this.generation;
  }

  async run(generation) {
    let attempt = 0;
    while (!this.ended(generation)) {
      this.controller = new AbortController();
      try {
        const headers = requestHeaders("text/event-stream");
        if (this.lastId !== null) headers["Last-Event-ID"] = String(this.lastId);
        const response = await fetch(apiUrl(path`/events/stream`), {
          headers,
          signal: this.controller.signal,
          cache: "no-store",
          credentials: "omit",
        });
        if (response.status === 401) {
          unauthorized("the server no longer accepts this token");
          return;
        }
        if (response.status === 410 && this.lastId !== null) {
          // The server's retention removed events after the last one we had:
          // resume where its log is complete again (every view re-reads on
          // "connected", so nothing shown is stale).
          const body = await response.json().catch(() => null);
          if (body && body.code === "events_compacted" && Number.isInteger(body.earliest_seq) && body.earliest_seq - 1 > this.lastId) {
            this.lastId = body.earliest_seq - 1;
            continue;
          }
        }
        if (!response.ok || !response.body) {
          let message = `HTTP ${response.status}`;
          try {
            message = (await response.json()).error || message;
          } catch {
            // not a JSON error body; keep the status line
          }
          throw new Error(message);
        }
        attempt = 0;
        setConnection("live", "Live");
        this.emit({ type: "connected" });
        await this.read(response.body.getReader());
        throw new Error("the event stream ended");
      } catch (error) {
        if (this.ended(generation)) return;
        attempt += 1;
        const delay = Math.round(Math.min(30000, 500 * 2 ** Math.min(attempt, 6)) * (0.6 + Math.random() * 0.4));
        const why = error && error.message ? error.message : String(error);
        for (let left = Math.ceil(delay / 1000); left > 0 && !this.ended(generation); left--) {
          setConnection(attempt > 3 ? "disconnected" : "reconnecting", `Disconnected (${why}); reconnecting in ${left}s`);
          await sleep(1000);
        }
        if (!this.ended(generation)) setConnection("reconnecting", "Reconnecting…");
      }
    }
  }

  async read(reader) {
    const decoder = new TextDecoder();
    let buffer = "";
    let frame = { id: null, event: null, data: [] };
    for (;;) {
      let timer;
      const silence = new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error("the event stream went silent")), STREAM_SILENCE_MS);
      });
      let chunk;
      try {
        chunk = await Promise.race([reader.read(), silence]);
      } finally {
        clearTimeout(timer);
      }
      if (chunk.done) return;
      buffer += decoder.decode(chunk.value, { stream: true });
      let newline;
      while ((newline = buffer.indexOf("\n")) >= 0) {
        const line = buffer.slice(0, newline).replace(/\r$/, "");
        buffer = buffer.slice(newline + 1);
        if (line === "") {
          if (frame.data.length) this.dispatch(frame);
          frame = { id: null, event: null, data: [] };
          continue;
        }
        if (line.startsWith(":")) continue; // keep-alive comment
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        let value = colon < 0 ? "" : line.slice(colon + 1);
        if (value.startsWith(" ")) value = value.slice(1);
        if (field === "data") frame.data.push(value);
        else if (field === "id") frame.id = value;
        else if (field === "event") frame.event = value;
      }
    }
  }

  dispatch(frame) {
    let event;
    try {
      event = JSON.parse(frame.data.join("\n"));
    } catch {
      console.warn("hearth: an event frame that is not JSON", frame);
      return;
    }
    if (frame.id !== null && /^\d+$/.test(frame.id)) this.lastId = Number(frame.id);
    this.emit({ type: "event", event });
  }

  emit(message) {
    for (const listener of this.listeners) {
      try {
        listener(message);
      } catch (error) {
        console.error("hearth: a view failed to handle", message, error);
      }
    }
  }

  subscribe(listener) {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}

// The page's one feed: the session starts and stops it.
export const feed = new EventFeed();
