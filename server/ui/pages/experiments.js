// The experiments: condition, algorithm, progress, best objective and start, filtered by
// condition and name, kept live by the event stream.

import { api, events } from '../api.js';
import { badge, field, h, link, num, replace, seg, throttle, when } from '../dom.js';
import { bestObjective, progress, state } from '../katib.js';

const CONDITIONS = ['', 'Created', 'Running', 'Restarting', 'Succeeded', 'Failed'];

export async function render(main, _params, context) {
  const conditionSelect = h('select', { name: 'condition' },
    CONDITIONS.map((value) => h('option', { value }, value || 'Any')));
  conditionSelect.value = context.query.get('condition') || '';
  const nameInput = h('input', { type: 'search', name: 'name', value: context.query.get('name') || '', placeholder: 'part of a name' });
  const body = h('tbody');
  const count = h('p', { class: 'muted', 'aria-live': 'polite' });
  const table = h('table', { class: 'list', id: 'experiments' },
    h('caption', { class: 'visually-hidden' }, 'Experiments'),
    h('thead', {}, h('tr', {}, ['Name', 'Condition', 'Algorithm', 'Progress', 'Best objective', 'Started']
      .map((title) => h('th', { scope: 'col' }, title)))),
    body);
  replace(main,
    h('div', { class: 'title-row' }, h('h1', {}, 'Experiments'), link('/submit', 'New experiment')),
    h('form', { class: 'filters', role: 'search', onsubmit: (event) => event.preventDefault() },
      field('Condition', conditionSelect), field('Name', nameInput)),
    count, table);

  const load = async () => {
    const query = new URLSearchParams();
    if (conditionSelect.value) query.set('condition', conditionSelect.value);
    if (nameInput.value) query.set('name', nameInput.value);
    const search = query.toString();
    history.replaceState(null, '', `${location.pathname}${search ? `?${search}` : ''}`);
    const list = await api(`/experiments?pageSize=1000${search ? `&${search}` : ''}`, { signal: context.signal });
    replace(body, list.experiments.map(row));
    count.textContent = `${list.experiments.length} experiment${list.experiments.length === 1 ? '' : 's'}${list.nextPageToken ? ' (the first 1000)' : ''}`;
  };
  const reload = throttle(() => load().catch(() => {}), 1000);
  conditionSelect.addEventListener('change', reload);
  nameInput.addEventListener('input', reload);
  await load();
  events('', (kind) => { if (kind === 'experiment' || kind === 'experimentDeleted') reload(); }, context.signal);
}

function row(experiment) {
  const name = experiment.metadata.name;
  const { succeeded, max } = progress(experiment);
  const best = bestObjective(experiment);
  const objective = experiment.spec.objective || {};
  return h('tr', { dataset: { name } },
    h('th', { scope: 'row' }, link(`/experiments/${seg(name)}`, name)),
    h('td', {}, badge(state(experiment))),
    h('td', {}, (experiment.spec.algorithm && experiment.spec.algorithm.algorithmName) || ''),
    h('td', {},
      h('progress', { max: max || 1, value: Math.min(succeeded, max || succeeded), 'aria-label': `${succeeded} of ${max} trials succeeded` }),
      ` ${succeeded} / ${max}`),
    h('td', { class: 'number' }, best === null ? '' : `${num(best)} (${objective.objectiveMetricName}, ${objective.type})`),
    h('td', {}, when((experiment.status && experiment.status.startTime) || experiment.metadata.creationTimestamp)));
}
