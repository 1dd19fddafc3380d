// The API under /api/v1: JSON requests with the bearer token when one is set, errors with
// their field problems, and the event stream.

const BASE = '/api/v1';
const TOKEN_KEY = 'sextant.token';

export function token() { return sessionStorage.getItem(TOKEN_KEY) || ''; }
export function setToken(value) {
  if (value) sessionStorage.setItem(TOKEN_KEY, value); else sessionStorage.removeItem(TOKEN_KEY);
}

/** A refusal of the API: its status, code, message and field problems. */
export class ApiError extends Error {
  constructor(status, body) {
    const error = (body && body.error) || {};
    super(error.message || `HTTP ${status}`);
    this.status = status;
    this.code = error.code || '';
    this.fields = error.fields || [];
  }
}

function headers(extra = {}) {
  const result = { ...extra };
  const bearer = token();
  if (bearer) result.Authorization = `Bearer ${bearer}`;
  return result;
}

/** A request; answers parsed JSON (text with `{text: true}`, a Blob with `{blob: true}`), throws ApiError. */
export async function api(path, { method = 'GET', body, type, text = false, blob = false, signal } = {}) {
  const init = { method, signal, headers: headers() };
  if (body !== undefined) {
    init.headers['Content-Type'] = type || 'application/json';
    init.body = typeof body === 'string' ? body : JSON.stringify(body);
  }
  const response = await fetch(BASE + path, init);
  if (!response.ok) {
    let payload = null;
    try { payload = await response.json(); } catch { /* not JSON */ }
    throw new ApiError(response.status, payload);
  }
  if (response.status === 204) return null;
  if (blob) return response.blob();
  return text ? response.text() : response.json();
}

/** Every page of a list, `key` naming its items. */
export async function all(path, key, { signal, pageSize = 10000 } = {}) {
  const items = [];
  let pageToken = null;
  const join = path.includes('?') ? '&' : '?';
  do {
    const page = await api(`${path}${join}pageSize=${pageSize}${pageToken ? `&pageToken=${encodeURIComponent(pageToken)}` : ''}`, { signal });
    items.push(...page[key]);
    pageToken = page.nextPageToken;
  } while (pageToken);
  return items;
}

/** Reads a streamed text response chunk by chunk until `signal` aborts or it ends. */
export async function stream(path, onText, signal) {
  const response = await fetch(BASE + path, { headers: headers(), signal });
  if (!response.ok) throw new ApiError(response.status, await response.json().catch(() => null));
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    onText(value);
  }
}

/**
 * Follows the server's events (SSE over fetch, so the token can go in a header) and calls
 * `onEvent(kind, data)` for each, reconnecting after a drop until `signal` aborts.
 */
export function events(query, onEvent, signal) {
  const connect = async () => {
    let buffer = '';
    try {
      await stream(`/events${query}`, (text) => {
        buffer += text;
        let end;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          let kind = 'message';
          let data = '';
          for (const line of block.split('\n')) {
            if (line.startsWith('event:')) kind = line.slice(6).trim();
            else if (line.startsWith('data:')) data += line.slice(5).trim();
          }
          if (data) {
            try { onEvent(kind, JSON.parse(data)); } catch (error) { console.warn('event', error); }
          }
        }
      }, signal);
    } catch (error) {
      if (signal.aborted) return;
    }
    if (!signal.aborted) setTimeout(connect, 2000);
  };
  connect();
}
