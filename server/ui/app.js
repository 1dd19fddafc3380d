// The client: routes each URL to its page with the History API, so every page can be
// reloaded and shared and the back button works; each page gets a signal that aborts its
// requests and event streams when the user leaves it.

import { h, replace } from './dom.js';
import { setToken, token } from './api.js';

const ROUTES = [
  [/^\/$/, () => import('./pages/experiments.js')],
  [/^\/experiments\/?$/, () => import('./pages/experiments.js')],
  [/^\/submit\/?$/, () => import('./pages/submit.js')],
  [/^\/experiments\/([^/]+)\/trials\/([^/]+)\/?$/, () => import('./pages/trial.js')],
  [/^\/experiments\/([^/]+)\/?$/, () => import('./pages/experiment.js')],
  [/^\/runs\/?$/, () => import('./pages/runs.js')],
  [/^\/compare\/?$/, () => import('./pages/compare.js')],
  [/^\/runs\/([^/]+)\/?$/, () => import('./pages/run.js')],
  [/^\/recurring\/?$/, () => import('./pages/recurring.js')],
];

const main = document.getElementById('main');
let leave = null;

async function route() {
  if (leave) leave.abort();
  const controller = new AbortController();
  leave = controller;
  const path = location.pathname;
  const found = ROUTES.find(([pattern]) => pattern.test(path));
  for (const anchor of document.querySelectorAll('header nav a')) {
    const section = anchor.getAttribute('href');
    if (path === section || path.startsWith(`${section}/`) || (section === '/experiments' && (path === '/' || path === '/submit'))) {
      anchor.setAttribute('aria-current', 'page');
    } else {
      anchor.removeAttribute('aria-current');
    }
  }
  if (!found) {
    replace(main, h('h1', {}, 'Not found'), h('p', {}, 'No page has this address.'));
    return;
  }
  const params = path.match(found[0]).slice(1).map(decodeURIComponent);
  const context = { signal: controller.signal, query: new URLSearchParams(location.search), navigate };
  try {
    const page = await found[1]();
    if (controller.signal.aborted) return;
    main.setAttribute('aria-busy', 'true');
    await page.render(main, params, context);
  } catch (error) {
    if (controller.signal.aborted) return;
    replace(main, h('h1', {}, 'Something went wrong'), h('p', { class: 'error', role: 'alert' }, error.message || String(error)));
  } finally {
    main.removeAttribute('aria-busy');
  }
  if (context.focus !== false) {
    const heading = main.querySelector('h1');
    if (heading) {
      heading.setAttribute('tabindex', '-1');
      heading.focus({ preventScroll: true });
      document.title = `${heading.textContent} · Sextant`;
    }
  }
}

/** Goes to `href` within the client. */
export function navigate(href, { replace: replacing = false } = {}) {
  if (replacing) history.replaceState(null, '', href); else history.pushState(null, '', href);
  route();
}

document.addEventListener('click', (event) => {
  const anchor = event.target.closest('a[data-nav]');
  if (!anchor || event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
  const url = new URL(anchor.href, location.href);
  if (url.origin !== location.origin) return;
  event.preventDefault();
  if (url.pathname + url.search !== location.pathname + location.search) navigate(url.pathname + url.search);
});
window.addEventListener('popstate', route);
// A page left for another document may be kept in the back-forward cache: its event streams
// would hold connections (a browser opens six per server), so they end, and start again if
// the page comes back.
window.addEventListener('pagehide', () => { if (leave) leave.abort(); });
window.addEventListener('pageshow', (event) => { if (event.persisted) route(); });

document.getElementById('token-button').addEventListener('click', () => {
  const dialog = h('dialog', { 'aria-labelledby': 'token-title' });
  const input = h('input', { type: 'password', id: 'token-input', autocomplete: 'off', value: token() });
  const form = h('form', { method: 'dialog' },
    h('h2', { id: 'token-title' }, 'API token'),
    h('p', {}, 'A server started with --token needs it on every API request; it is kept for this tab only.'),
    h('label', { for: 'token-input' }, 'Token'), input,
    h('div', { class: 'actions' },
      h('button', { type: 'submit', value: 'save' }, 'Save'),
      h('button', { type: 'submit', value: 'cancel', class: 'quiet' }, 'Cancel')));
  dialog.append(form);
  dialog.addEventListener('close', () => {
    if (dialog.returnValue === 'save') { setToken(input.value.trim()); route(); }
    dialog.remove();
  });
  document.body.append(dialog);
  dialog.showModal();
});

route();
