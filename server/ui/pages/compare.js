// Two pipeline runs side by side: their parameters and each step's phase and output
// parameters, the rows that differ marked.

import { api } from '../api.js';
import { badge, h, link, replace, seg } from '../dom.js';

export async function render(main, _params, context) {
  const ids = (context.query.get('runs') || '').split(',').filter(Boolean).slice(0, 2);
  if (ids.length !== 2) {
    replace(main, h('h1', {}, 'Compare runs'), h('p', {}, 'Pick two runs in ', link('/runs', 'the list of runs'), ' to compare them.'));
    return;
  }
  const runs = await Promise.all(ids.map((id) => api(`/runs/${seg(id)}`, { signal: context.signal })));
  const rows = [];
  const keys = (pick) => [...new Set(runs.flatMap((run) => Object.keys(pick(run))))].sort();
  for (const key of keys((run) => run.params)) rows.push([`param ${key}`, runs.map((run) => run.params[key] ?? '')]);
  rows.push(['phase', runs.map((run) => run.phase)]);
  const instance = (run, name) => run.steps.find((step) => `${step.step}${step.itemIndex ?? ''}` === name);
  const stepNames = [...new Set(runs.flatMap((run) => run.steps.map((step) => `${step.step}${step.itemIndex ?? ''}`)))];
  for (const name of stepNames) {
    rows.push([`step ${name}`, runs.map((run) => (instance(run, name) || {}).phase || '')]);
    const outputs = [...new Set(runs.flatMap((run) => Object.keys((instance(run, name) || { outputParams: {} }).outputParams)))].sort();
    for (const output of outputs) rows.push([`step ${name} output ${output}`, runs.map((run) => ((instance(run, name) || { outputParams: {} }).outputParams[output]) ?? '')]);
  }
  replace(main,
    h('h1', {}, 'Compare runs'),
    h('table', { class: 'list compare', id: 'compare-table' },
      h('caption', { class: 'visually-hidden' }, 'Two runs side by side'),
      h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, ''), runs.map((run) => h('th', { scope: 'col' }, link(`/runs/${seg(run.runId)}`, run.runId), ' ', badge(run.phase))))),
      h('tbody', {}, rows.map(([label, values]) => h('tr', { class: values[0] === values[1] ? '' : 'differs' },
        h('th', { scope: 'row' }, label, values[0] === values[1] ? '' : h('span', { class: 'visually-hidden' }, ' (differs)')),
        values.map((value) => h('td', {}, value)))))));
}
