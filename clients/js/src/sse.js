// The text/event-stream format read from text: for recorded streams, tests, and runtimes without
// EventSource (read a fetch body, feed the text here). The browser path uses EventSource, which
// does this itself. Follows the HTML standard's parsing rules (a leading BOM, CRLF/CR/LF, comments,
// `field` with no colon, one optional space after the colon, `data` lines joined by "\n", an id
// with NUL ignored, a message without data not dispatched).

/** Every message of an event-stream text, in order: {event, data, id, retry?}. `id` is the last
 * event id in effect (as EventSource's lastEventId), `event` defaults to "message". */
export function parseSse(text) {
  const messages = [];
  let data = [];
  let event = '';
  let lastId = '';
  let retry;
  const lines = text.replace(/^\uFEFF/, '').split(/\r\n|\r|\n/);
  for (const line of lines) {
    if (line === '') {
      if (data.length > 0) {
        const message = { event: event || 'message', data: data.join('\n'), id: lastId };
        if (retry !== undefined) message.retry = retry;
        messages.push(message);
      }
      data = [];
      event = '';
      retry = undefined;
      continue;
    }
    if (line.startsWith(':')) continue;
    const colon = line.indexOf(':');
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'data') data.push(value);
    else if (field === 'event') event = value;
    else if (field === 'id' && !value.includes('\0')) lastId = value;
    else if (field === 'retry' && /^\d+$/.test(value)) retry = Number(value);
  }
  return messages;
}
