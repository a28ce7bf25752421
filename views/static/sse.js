// A small Server-Sent Events parser, for a stream read with fetch() (EventSource
// cannot show the response's headers, nor send Last-Event-ID on the first request).
//
// Feed it text as it arrives, in chunks cut anywhere; it calls onEvent({event, id, data})
// once per event. Lines end with LF, CRLF or CR; a line starting with ":" is a comment;
// the fields read are event, id, data (several data lines join with "\n") and retry (kept
// as retryMs: the reconnection delay the server asks for); other fields are ignored.
// Unlike the HTML standard, an event with a name and no data (such as a bare
// "event: reconnect") is still dispatched, with data "".

export class SseParser {
  constructor(onEvent) {
    this.onEvent = onEvent;
    this.buffer = "";
    this.lastEventId = "";
    this.retryMs = null;
    this.reset();
  }

  reset() {
    this.eventType = "";
    this.dataLines = [];
  }

  feed(text) {
    this.buffer += text;
    let start = 0;
    for (;;) {
      const end = this.lineEnd(start);
      if (end === null) break;
      this.line(this.buffer.slice(start, end.at));
      start = end.next;
    }
    this.buffer = this.buffer.slice(start);
  }

  // The end of the line that starts at `start`, or null when it has not fully arrived:
  // a CR at the very end of the buffer may still be followed by an LF.
  lineEnd(start) {
    for (let i = start; i < this.buffer.length; i += 1) {
      const c = this.buffer[i];
      if (c === "\n") return { at: i, next: i + 1 };
      if (c === "\r") {
        if (i + 1 === this.buffer.length) return null;
        return { at: i, next: this.buffer[i + 1] === "\n" ? i + 2 : i + 1 };
      }
    }
    return null;
  }

  line(text) {
    if (text === "") {
      this.dispatch();
      return;
    }
    if (text.startsWith(":")) return;
    const colon = text.indexOf(":");
    const field = colon === -1 ? text : text.slice(0, colon);
    let value = colon === -1 ? "" : text.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    this.field(field, value);
  }

  field(name, value) {
    if (name === "event") this.eventType = value;
    else if (name === "data") this.dataLines.push(value);
    else if (name === "id" && !value.includes("\0")) this.lastEventId = value;
    else if (name === "retry" && /^\d+$/.test(value)) this.retryMs = Number(value);
  }

  dispatch() {
    const hasEvent = this.eventType !== "" || this.dataLines.length > 0;
    if (hasEvent) {
      this.onEvent({
        event: this.eventType || "message",
        id: this.lastEventId,
        data: this.dataLines.join("\n"),
      });
    }
    this.reset();
  }
}
