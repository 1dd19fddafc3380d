// Pipeline runs: a list filtered by phase, live; pick two to compare.

import { api, events } from '../api.js';
import { badge, field, h, link, replace, seg, throttle, when } from '../dom.js';

const PHASES = ['', 'Pending', 'Running', 'Succeeded', 'Failed', 'Cancelled'];

export async function render(main, _params, context) {
  const phase = h('select', { id: 'run-phase' }, PHASES.map((value) => h('option', { value }, value || 'Any')));
  phase.value = context.query.get('phase') || '';
  const body = h('tbody');
  const compare = h('button', { type: 'button', id: 'compare', disabled: true }, 'Compare the two selected');
  const chosen = new Set();
  compare.addEventListener('click', () => context.navigate(`/compare?runs=${[...chosen].map(seg).join(',')}`));
  replace(main,
    h('h1', {}, 'Pipeline runs'),
    h('div', { class: 'filters' }, field('Phase', phase), compare),
    h('table', { class: 'list', id: 'runs' },
      h('caption', { class: 'visually-hidden' }, 'Pipeline runs'),
      h('thead', {}, h('tr', {}, ['Compare', 'Run', 'Pipeline', 'Phase', 'Started', 'Finished', 'Message'].map((title) => h('th', { scope: 'col' }, title)))),
      body));
  const load = async () => {
    const query = phase.value ? `&phase=${seg(phase.value)}` : '';
    history.replaceState(null, '', `/runs${phase.value ? `?phase=${seg(phase.value)}` : ''}`);
    const list = await api(`/runs?pageSize=1000${query}`, { signal: context.signal });
    replace(body, list.runs.slice().reverse().map((run) => {
      const box = h('input', { type: 'checkbox', 'aria-label': `Compare ${run.runId}`, checked: chosen.has(run.runId) });
      box.addEventListener('change', () => {
        if (box.checked) chosen.add(run.runId); else chosen.delete(run.runId);
        compare.disabled = chosen.size !== 2;
      });
      return h('tr', {},
        h('td', {}, box),
        h('th', { scope: 'row' }, link(`/runs/${seg(run.runId)}`, run.runId)),
        h('td', {}, run.pipelineName),
        h('td', {}, badge(run.phase)),
        h('td', {}, when(run.startedAt)),
        h('td', {}, when(run.finishedAt)),
        h('td', {}, run.message || ''));
    }));
  };
  const reload = throttle(() => load().catch(() => {}), 1000);
  phase.addEventListener('change', reload);
  await load();
  events('', (kind, data) => { if (kind === 'run' && ['runStarted', 'runFinished'].includes(data.change)) reload(); }, context.signal);
}
