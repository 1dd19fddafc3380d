// Recurring runs: their schedules, whether they fire, their last and next firings and runs.

import { api } from '../api.js';
import { h, link, replace, seg, when } from '../dom.js';

export async function render(main, _params, context) {
  const list = await api('/recurringruns?pageSize=1000', { signal: context.signal });
  replace(main,
    h('h1', {}, 'Recurring runs'),
    list.recurringRuns.length === 0 ? h('p', { class: 'muted' }, 'None yet.') : h('table', { class: 'list', id: 'recurring' },
      h('caption', { class: 'visually-hidden' }, 'Recurring runs'),
      h('thead', {}, h('tr', {}, ['Name', 'Pipeline', 'Schedule (UTC)', 'Enabled', 'Last firing', 'Next firing', 'Active', 'Latest runs'].map((title) => h('th', { scope: 'col' }, title)))),
      h('tbody', {}, list.recurringRuns.map((recurring) => h('tr', {},
        h('th', { scope: 'row' }, recurring.name),
        h('td', {}, recurring.pipelineName),
        h('td', {}, h('code', {}, recurring.schedule.cron),
          recurring.schedule.startTime ? ` from ${when(recurring.schedule.startTime)}` : '',
          recurring.schedule.endTime ? ` until ${when(recurring.schedule.endTime)}` : ''),
        h('td', {}, recurring.enabled ? 'yes' : 'no'),
        h('td', {}, when(recurring.lastFired)),
        h('td', {}, when(recurring.nextFiring)),
        h('td', {}, `${recurring.activeRuns} of at most ${recurring.maxConcurrency}`),
        h('td', {}, h('ul', { class: 'plain' }, recurring.runs.slice(-3).reverse().map((id) => h('li', {}, link(`/runs/${seg(id)}`, id))))))))));
}
