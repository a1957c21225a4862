// A stand-in for the browser's EventSource, driven by the test: open(), send(), drop(), refuse().
export class FakeEventSource {
  static CONNECTING = 0;
  static OPEN = 1;
  static CLOSED = 2;
  static made = [];

  constructor(url) {
    this.url = new URL(url);
    this.readyState = FakeEventSource.CONNECTING;
    this.listeners = {};
    this.closed = false;
    FakeEventSource.made.push(this);
  }

  addEventListener(type, fn) {
    (this.listeners[type] ||= []).push(fn);
  }

  close() {
    this.closed = true;
    this.readyState = FakeEventSource.CLOSED;
  }

  open() {
    this.readyState = FakeEventSource.OPEN;
    this.onopen && this.onopen();
  }

  send(event) { // as the server would: a named event, its data the JSON
    for (const fn of this.listeners[event.type] || []) fn({ data: JSON.stringify(event), lastEventId: String(event.seq ?? '') });
  }

  drop() { // the connection broke: the browser reconnects by itself
    this.readyState = FakeEventSource.CONNECTING;
    this.onerror && this.onerror();
  }

  refuse() { // any answer but a 200 stream: the browser gives up on this EventSource
    this.readyState = FakeEventSource.CLOSED;
    this.onerror && this.onerror();
  }

  static reset() {
    FakeEventSource.made = [];
  }

  static last() {
    return FakeEventSource.made.at(-1);
  }
}

/** A fetch that answers the refusal probe (HEAD) with the next status of `statuses` (throws for 0). */
export function probeAnswering(statuses) {
  const calls = [];
  const fetch = async (url, init) => {
    calls.push({ url: new URL(url), method: init.method });
    const status = statuses.shift();
    if (status === 0) throw new TypeError('Failed to fetch');
    return { status };
  };
  return { fetch, calls };
}

/** Resolves once `check()` is true (the loop's steps after a refusal are asynchronous). */
export async function until(check, what = 'the condition') {
  for (let i = 0; i < 200; i++) {
    if (check()) return;
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
  throw new Error(`timed out waiting for ${what}`);
}
