// Building the page with DOM APIs only: every string from the server becomes a text node or
// an attribute value, never markup (no innerHTML anywhere in the UI).

/** An element: `h('a', {href, class}, child, ...)`; `on*` props are listeners. */
export function h(tag, props = {}, ...children) {
  const element = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'class') element.className = value;
    else if (key === 'dataset') Object.assign(element.dataset, value);
    else if (key.startsWith('on') && typeof value === 'function') element.addEventListener(key.slice(2), value);
    else if (key === 'value') element.value = value;
    else element.setAttribute(key, value === true ? '' : String(value));
  }
  append(element, children);
  return element;
}

/** An SVG element. */
export function svg(tag, attributes = {}, ...children) {
  const element = document.createElementNS('http://www.w3.org/2000/svg', tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (value !== undefined && value !== null) element.setAttribute(key, String(value));
  }
  append(element, children);
  return element;
}

/** Appends children: nodes as they are, anything else as text. */
export function append(element, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

/** Replaces an element's children. */
export function replace(element, ...children) {
  element.replaceChildren();
  return append(element, children);
}

/** A link the client router follows without reloading. */
export function link(href, ...children) {
  return h('a', { href, 'data-nav': true }, ...children);
}

/** A path segment, encoded. */
export const seg = encodeURIComponent;

/** A date, short and local; '' for none. */
export function when(value) {
  if (!value) return '';
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? String(value) : date.toLocaleString();
}

/** A number for people: up to 6 significant digits. */
export function num(value) {
  if (value === undefined || value === null || value === '') return '';
  const number = Number(value);
  if (!Number.isFinite(number)) return String(value);
  return Math.abs(number) >= 1e6 || (Math.abs(number) < 1e-4 && number !== 0)
    ? number.toExponential(4)
    : String(Number(number.toPrecision(6)));
}

/** A badge for a condition or phase, coloured by class. */
export function badge(state) {
  const text = state || 'Unknown';
  return h('span', { class: `badge state-${text.replace(/[^A-Za-z]/g, '')}` }, text);
}

/** A labelled form control. */
export function field(label, control, hint) {
  const id = control.id || `f-${Math.random().toString(36).slice(2)}`;
  control.id = id;
  return h('div', { class: 'field' }, h('label', { for: id }, label), control, hint ? h('small', { class: 'muted' }, hint) : null);
}

/** Calls `fn` at most once per `ms`; a call in between runs once the time is up. */
export function throttle(fn, ms) {
  let timer = null;
  let pending = null;
  const run = (args) => {
    fn(...args);
    timer = setTimeout(() => {
      timer = null;
      if (pending) { const next = pending; pending = null; run(next); }
    }, ms);
  };
  return (...args) => { if (timer) pending = args; else run(args); };
}

/** Says something to screen readers. */
export function announce(text) {
  const region = document.getElementById('announce');
  if (region) region.textContent = text;
}

/** Offers `content` (text or a Blob) as a file download. */
export function download(name, type, content) {
  const url = URL.createObjectURL(new Blob([content], { type }));
  const anchor = h('a', { href: url, download: name });
  document.body.append(anchor);
  anchor.click();
  anchor.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}
