// A trial: its parameters, labels, each metric over its reports, its output log (the tail, followed
// while it runs) and its pipeline runs when its template is a Pipeline.

import { api, stream } from '../api.js';
import { badge, h, link, num, replace, seg, when } from '../dom.js';

const TAIL_LINES = 500;

export async function render(main, [experimentName, name], context) {
  const { signal } = context;
  const [trial, log, runs] = await Promise.all([
    api(`/trials/${seg(name)}`, { signal }),
    api(`/trials/${seg(name)}/observations`, { signal }),
    api(`/trials/${seg(name)}/runs`, { signal }),
  ]);
  const facts = (pairs) => h('dl', { class: 'facts' }, pairs.map(([term, value]) => [h('dt', {}, term), h('dd', {}, value)]));
  const output = h('pre', { class: 'log', id: 'log', tabindex: '0', 'aria-label': 'Output log' });
  const metrics = h('div', { class: 'chart', id: 'chart-metrics', role: 'img', 'aria-label': 'Each metric over time' });
  replace(main,
    h('p', { class: 'crumbs' }, link(`/experiments/${seg(experimentName)}`, experimentName), ' / trial'),
    h('div', { class: 'title-row' }, h('h1', {}, trial.name), badge(trial.condition)),
    h('div', { class: 'cards' },
      h('section', { 'aria-labelledby': 'parameters-title' }, h('h2', { id: 'parameters-title' }, 'Parameters'),
        facts(trial.parameterAssignments.map((assignment) => [assignment.name, assignment.value]))),
      h('section', { 'aria-labelledby': 'status-title' }, h('h2', { id: 'status-title' }, 'Status'),
        facts([
          ['Objective', num(trial.objectiveValue)],
          ['Reason', `${trial.reason} ${trial.message}`],
          ['Created', when(trial.createdAt)],
          ['Started', when(trial.startTime)],
          ['Completed', when(trial.completionTime)],
          ...trial.observation.map((metric) => [metric.name, `latest ${metric.latest}, min ${metric.min}, max ${metric.max}`]),
        ])),
      h('section', { 'aria-labelledby': 'labels-title' }, h('h2', { id: 'labels-title' }, 'Labels'),
        Object.keys(trial.labels).length ? facts(Object.entries(trial.labels)) : h('p', { class: 'muted' }, 'None.'))),
    runs.runIds.length
      ? h('section', { id: 'pipeline-runs' }, h('h2', {}, 'Pipeline runs'), h('ul', {}, runs.runIds.map((id) => h('li', {}, link(`/runs/${seg(id)}`, id)))))
      : null,
    h('section', { 'aria-labelledby': 'metrics-title' }, h('h2', { id: 'metrics-title' }, 'Metrics over time'), h('p', { class: 'muted' }, 'Each metric by report, in the order reported.'), metrics),
    h('section', { 'aria-labelledby': 'log-title' }, h('h2', { id: 'log-title' }, 'Output'), output));

  const series = new Map();
  for (const entry of log.metricLogs) {
    const value = Number(entry.metric.value);
    if (!Number.isFinite(value)) continue;
    if (!series.has(entry.metric.name)) series.set(entry.metric.name, []);
    const points = series.get(entry.metric.name);
    points.push([points.length + 1, value, entry.timeStamp]);
  }
  const charts = await import('../charts.js');
  signal.addEventListener('abort', () => charts.dispose(main), { once: true });
  charts.draw(metrics, {
    tooltip: { trigger: 'axis' },
    legend: { top: 0 },
    xAxis: { type: 'value', name: 'report', minInterval: 1 },
    yAxis: { type: 'value', scale: true, axisLine: { onZero: false } },
    series: [...series].map(([metric, data]) => ({ name: metric, type: 'line', data, showSymbol: data.length < 50 })),
  }, log.metricLogs.length);

  const running = ['Created', 'Running'].includes(trial.condition);
  const follow = running ? '&follow=true' : '';
  stream(`/trials/${seg(name)}/log?tail=${TAIL_LINES}${follow}`, (text) => {
    const atEnd = output.scrollTop + output.clientHeight >= output.scrollHeight - 4;
    output.append(text);
    if (atEnd) output.scrollTop = output.scrollHeight;
  }, signal).catch((error) => {
    if (!signal.aborted) output.textContent = error.status === 404 ? 'No output kept for this trial.' : error.message;
  });
}
