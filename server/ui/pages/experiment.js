// An experiment: its conditions and counts (live), its best trial, stop / resume / delete,
// downloads of its trials, the plots of its search, and a table that pages through its trials
// on the server (sorted and filtered there, so 100,000 trials cost one page at a time).

import { all, api, events } from '../api.js';
import { announce, badge, download, field, h, link, num, replace, seg, throttle, when } from '../dom.js';
import { bestObjective, isStopped, metricValue, objectives, parameters, progress, state } from '../katib.js';

const TRIAL_CONDITIONS = ['', 'Created', 'Running', 'Succeeded', 'Failed', 'Killed', 'EarlyStopped', 'MetricsUnavailable'];
const PAGE_SIZE = 50;
/** The most trials whose metric series the intermediate-values plot reads (one request each). */
const MAX_SERIES = 100;
/** How far before the newest change seen a refresh of the plots reads changed trials. */
const CHANGE_MARGIN_MS = 2000;

export async function render(main, [name], context) {
  const { signal } = context;
  let experiment = await api(`/experiments/${seg(name)}`, { signal });
  const summary = h('section', { id: 'summary', 'aria-labelledby': 'summary-title' });
  const actions = h('div', { class: 'actions', id: 'actions' });
  const message = h('p', { id: 'action-result', 'aria-live': 'polite' });
  const plots = h('section', { id: 'plots', 'aria-labelledby': 'plots-title' }, h('h2', { id: 'plots-title' }, 'Plots'), h('p', { class: 'muted' }, 'Loading the trials…'));
  const trials = h('section', { id: 'trials', 'aria-labelledby': 'trials-title' });
  replace(main,
    h('div', { class: 'title-row' }, h('h1', {}, name), h('span', { id: 'state' })),
    actions, message, summary, trials, plots);

  // Set while this page deletes the experiment: what the deletion's own events would make it
  // read again is gone, and reading it would only fail.
  const deleting = { now: false };
  // The actions are built once, so what the user types or arms survives the live refreshes.
  let updateActions = null;
  const showSummary = () => {
    replace(main.querySelector('#state'), badge(state(experiment)));
    drawSummary(summary, experiment);
    if (updateActions) updateActions(experiment);
    else updateActions = drawActions(actions, message, experiment, context, refresh, deleting);
  };
  const refresh = async () => {
    if (deleting.now) return;
    try {
      experiment = await api(`/experiments/${seg(name)}`, { signal });
      showSummary();
    } catch (error) {
      if (!signal.aborted) message.textContent = error.message;
    }
  };
  showSummary();
  performance.mark('sextant:summary');

  const table = trialTable(trials, experiment, signal);
  // The plots' trials, by name in creation order. After the first read only the trials changed
  // since the last one are read (from a little before the newest change seen: a write that
  // committed late with an earlier time is read again rather than missed).
  const known = new Map();
  let newest = null;
  const drawPlots = async () => {
    const since = newest === null ? '' : `?updatedSince=${encodeURIComponent(new Date(newest - CHANGE_MARGIN_MS).toISOString())}`;
    const changed = await all(`/experiments/${seg(name)}/trials${since}`, 'trials', { signal });
    let moved = newest === null;
    for (const trial of changed) {
      const before = known.get(trial.name);
      if (!before || before.updatedAt !== trial.updatedAt) moved = true;
      known.set(trial.name, trial);
      const time = Date.parse(trial.updatedAt);
      if (newest === null || time > newest) newest = time;
    }
    if (moved) await plotAll(plots, experiment, [...known.values()], signal);
  };
  const later = throttle(() => {
    if (deleting.now) return;
    table.load().catch(() => {});
    drawPlots().catch(() => {});
  }, 5000);
  const soon = throttle(refresh, 1000);
  events(`?experiment=${seg(name)}`, (kind) => {
    if (kind === 'experimentDeleted') {
      message.textContent = 'This experiment was deleted.';
      return;
    }
    soon();
    later();
  }, signal);
  await table.load();
  drawPlots().catch((error) => {
    if (!signal.aborted) replace(plots, h('h2', { id: 'plots-title' }, 'Plots'), h('p', { class: 'error' }, error.message));
  });
}

function drawSummary(section, experiment) {
  const spec = experiment.spec;
  const status = experiment.status || {};
  const { succeeded, max } = progress(experiment);
  const latest = (status.conditions || []).slice(-1)[0];
  const best = status.currentOptimalTrial || {};
  const objective = spec.objective || {};
  const rows = [
    ['Algorithm', (spec.algorithm && spec.algorithm.algorithmName) || ''],
    ['Objective', objectives(experiment).map((entry) => `${entry.type} ${entry.name}`).join(', ')],
    ['Progress', `${succeeded} of ${max} trials succeeded`],
    ['Trials', `${status.trials || 0} in all: ${status.trialsRunning || 0} running, ${status.trialsPending || 0} pending, ${status.trialsFailed || 0} failed, ${status.trialsKilled || 0} killed, ${status.trialsEarlyStopped || 0} early stopped, ${status.trialMetricsUnavailable || 0} without metrics`],
    ['Parallel trials', String(spec.parallelTrialCount || '')],
    ['Failed trials allowed', String(spec.maxFailedTrialCount ?? 'not set')],
    ['Started', when(status.startTime)],
    ['Completed', when(status.completionTime)],
    ['Condition', latest ? `${latest.type}: ${latest.reason || ''} ${latest.message || ''}` : ''],
  ];
  replace(section,
    h('h2', { id: 'summary-title', class: 'visually-hidden' }, 'Summary'),
    h('div', { class: 'cards' },
      h('dl', { class: 'facts' }, rows.map(([term, value]) => [h('dt', {}, term), h('dd', {}, value)])),
      h('div', { class: 'best', id: 'best' },
        h('h2', {}, 'Best trial'),
        best.bestTrialName
          ? [h('p', {}, link(`/experiments/${seg(experiment.metadata.name)}/trials/${seg(best.bestTrialName)}`, best.bestTrialName),
            ' ', h('strong', {}, `${objective.objectiveMetricName} = ${num(bestObjective(experiment))}`)),
          h('dl', { class: 'facts' }, (best.parameterAssignments || []).map((assignment) => [h('dt', {}, assignment.name), h('dd', {}, assignment.value)]))]
          : h('p', { class: 'muted' }, 'None yet.'))));
}

/** Builds the action buttons; returns what brings them up to date with `experiment`. */
function drawActions(container, message, experiment, context, refresh, deleting) {
  const name = experiment.metadata.name;
  const run = (label, action) => async () => {
    try {
      await action();
      announce(`${label}: done`);
      message.textContent = `${label}: done.`;
      await refresh();
    } catch (error) {
      message.textContent = `${label}: ${error.message}`;
    }
  };
  const budget = h('input', { type: 'number', min: 1, id: 'budget', value: experiment.spec.maxTrialCount || '', class: 'narrow' });
  const remove = h('button', { type: 'button', id: 'delete', class: 'danger' }, 'Delete');
  remove.addEventListener('click', async () => {
    if (remove.dataset.armed !== 'true') {
      remove.dataset.armed = 'true';
      remove.textContent = 'Really delete?';
      return;
    }
    deleting.now = true;
    try {
      await api(`/experiments/${seg(name)}`, { method: 'DELETE' });
      context.navigate('/experiments');
    } catch (error) {
      deleting.now = false;
      message.textContent = `Delete: ${error.message}`;
    }
  });
  const csv = h('button', { type: 'button', id: 'download-csv' }, 'Trials as CSV');
  const json = h('button', { type: 'button', id: 'download-json' }, 'Trials as JSON');
  const fetchTrials = () => all(`/experiments/${seg(name)}/trials`, 'trials');
  csv.addEventListener('click', async () => download(`${name}-trials.csv`, 'text/csv', toCsv(experiment, await fetchTrials())));
  json.addEventListener('click', async () => download(`${name}-trials.json`, 'application/json', JSON.stringify(await fetchTrials(), null, 2)));
  const stop = h('button', { type: 'button', id: 'stop', onclick: run('Stop', () => api(`/experiments/${seg(name)}/stop`, { method: 'POST' })) }, 'Stop');
  replace(container,
    stop,
    h('span', { class: 'inline-field' },
      h('label', { for: 'budget' }, 'Max trials'), budget,
      h('button', { type: 'button', id: 'resume', onclick: run('Resume', () => api(`/experiments/${seg(name)}/resume`, { method: 'POST', body: { maxTrialCount: Number(budget.value) } })) }, 'Resume')),
    remove, csv, json);
  const update = (current) => {
    stop.disabled = ['Succeeded', 'Failed'].includes(state(current)) || isStopped(current);
  };
  update(experiment);
  return update;
}

/** The trials as CSV: one row each, parameters and metrics in columns. */
function toCsv(experiment, trials) {
  const parameterNames = parameters(experiment).map((parameter) => parameter.name);
  const metricNames = [...new Set(trials.flatMap((trial) => trial.observation.map((metric) => metric.name)))];
  const header = ['name', 'condition', 'objectiveValue', ...parameterNames, ...metricNames, 'createdAt', 'completionTime'];
  const lines = [header.map(cell).join(',')];
  for (const trial of trials) {
    const values = Object.fromEntries(trial.parameterAssignments.map((assignment) => [assignment.name, assignment.value]));
    lines.push([trial.name, trial.condition, trial.objectiveValue ?? '',
      ...parameterNames.map((parameter) => values[parameter] ?? ''),
      ...metricNames.map((metric) => metricValue(experiment, trial.observation, metric) ?? ''),
      trial.createdAt, trial.completionTime || ''].map(cell).join(','));
  }
  return `${lines.join('\n')}\n`;
}

/** A CSV cell, quoted when it must be; text a spreadsheet would read as a formula is defused. */
function cell(value) {
  let text = String(value);
  if (/^[=+\-@\t\r]/.test(text) && !Number.isFinite(Number(text))) text = `'${text}`;
  return /[",\n\r]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

// === The trial table ===

function trialTable(section, experiment, signal) {
  const name = experiment.metadata.name;
  const parameterNames = parameters(experiment).map((parameter) => parameter.name);
  const condition = h('select', { id: 'trial-condition' }, TRIAL_CONDITIONS.map((value) => h('option', { value }, value || 'Any')));
  const order = h('select', { id: 'trial-order' },
    h('option', { value: 'created' }, 'Creation order'),
    h('option', { value: 'objective' }, 'Best objective first'),
    h('option', { value: 'objectiveDescending' }, 'Worst objective first'),
    h('option', { value: 'name' }, 'Name'),
    h('option', { value: 'condition' }, 'Condition'),
    h('option', { value: 'completionTime' }, 'Completion time'),
    parameterNames.map((parameter) => h('option', { value: `parameter:${parameter}` }, `Parameter ${parameter}`)));
  const descending = h('input', { type: 'checkbox', id: 'trial-descending' });
  // Each column's header orders the table by it; a second click reverses the order.
  const columns = [['Trial', 'name'], ['Condition', 'condition'], ['Objective', 'objective'],
    ...parameterNames.map((parameter) => [parameter, `parameter:${parameter}`]), ['Completed', 'completionTime']];
  const headers = columns.map(([title, value]) => {
    const button = h('button', { type: 'button', class: 'sort', dataset: { order: value } }, title);
    const header = h('th', { scope: 'col' }, button);
    button.addEventListener('click', () => {
      if (order.value === value) descending.checked = !descending.checked;
      else { order.value = value; descending.checked = false; }
      restart();
    });
    return [header, value];
  });
  const body = h('tbody');
  const status = h('span', { class: 'muted', 'aria-live': 'polite', id: 'trial-page' });
  const previous = h('button', { type: 'button', id: 'trial-previous' }, 'Previous');
  const next = h('button', { type: 'button', id: 'trial-next' }, 'Next');
  const scroller = h('div', { class: 'table-scroll', tabindex: '0', 'aria-label': 'Trials table' },
    h('table', { class: 'list', id: 'trial-table' },
      h('caption', { class: 'visually-hidden' }, 'Trials'),
      h('thead', {}, h('tr', {}, headers.map(([header]) => header))),
      body));
  replace(section,
    h('h2', { id: 'trials-title' }, 'Trials'),
    h('div', { class: 'filters' }, field('Condition', condition), field('Order', order), field('Descending', descending),
      h('div', { class: 'pager' }, previous, status, next)),
    scroller);
  const tokens = [null];
  let page = 0;
  const load = async () => {
    const query = new URLSearchParams({ pageSize: String(PAGE_SIZE) });
    if (order.value.startsWith('parameter:')) {
      query.set('orderBy', 'parameter');
      query.set('parameter', order.value.slice('parameter:'.length));
    } else query.set('orderBy', order.value);
    if (descending.checked) query.set('descending', 'true');
    for (const [header, value] of headers) {
      const sorted = order.value === value || (value === 'objective' && order.value === 'objectiveDescending');
      if (!sorted) header.removeAttribute('aria-sort');
      else if (value === 'objective') header.setAttribute('aria-sort', 'other');
      else header.setAttribute('aria-sort', descending.checked ? 'descending' : 'ascending');
    }
    if (condition.value) query.set('condition', condition.value);
    if (tokens[page]) query.set('pageToken', tokens[page]);
    const list = await api(`/experiments/${seg(name)}/trials?${query}`, { signal });
    tokens[page + 1] = list.nextPageToken || null;
    const pages = Math.max(1, Math.ceil(list.total / PAGE_SIZE));
    status.textContent = `Page ${page + 1} of ${pages} (${list.total} trials)`;
    previous.disabled = page === 0;
    next.disabled = !list.nextPageToken;
    replace(body, list.trials.map((trial) => {
      const values = Object.fromEntries(trial.parameterAssignments.map((assignment) => [assignment.name, assignment.value]));
      return h('tr', {},
        h('th', { scope: 'row' }, link(`/experiments/${seg(name)}/trials/${seg(trial.name)}`, trial.name)),
        h('td', {}, badge(trial.condition)),
        h('td', { class: 'number' }, num(trial.objectiveValue)),
        parameterNames.map((parameter) => h('td', {}, values[parameter] ?? '')),
        h('td', {}, when(trial.completionTime)));
    }));
  };
  const restart = () => { page = 0; tokens.length = 1; load().catch(() => {}); };
  condition.addEventListener('change', restart);
  order.addEventListener('change', restart);
  descending.addEventListener('change', restart);
  previous.addEventListener('click', () => { page = Math.max(0, page - 1); load().catch(() => {}); });
  next.addEventListener('click', () => { if (tokens[page + 1]) { page += 1; load().catch(() => {}); } });
  return { load };
}

// === The plots ===

async function plotAll(section, experiment, trials, signal) {
  const charts = await import('../charts.js');
  if (signal.aborted) return;
  if (!section.dataset.disposes) {
    section.dataset.disposes = 'true';
    signal.addEventListener('abort', () => charts.dispose(section), { once: true });
  }
  const params = parameters(experiment);
  const objectiveName = (experiment.spec.objective || {}).objectiveMetricName;
  const scored = trials.filter((trial) => trial.objectiveValue !== null && trial.objectiveValue !== undefined);
  const maximize = (experiment.spec.objective || {}).type === 'maximize';
  const value = (trial, parameter) => {
    const assignment = trial.parameterAssignments.find((entry) => entry.name === parameter.name);
    if (!assignment) return null;
    return parameter.choices ? assignment.value : Number(assignment.value);
  };
  if (!section.querySelector('#history')) {
    const figures = {
      history: charts.figure('history', 'Optimization history', 'each trial\'s objective value and the best so far'),
      parallel: charts.figure('parallel', 'Parallel coordinates', 'each trial as a line through its parameter values to its objective value'),
      importance: charts.figure('importance', 'Parameter importance', 'the share of the objective\'s variance each parameter explains (fANOVA)'),
    };
    const sliceSelect = h('select', { id: 'slice-parameter', 'aria-label': 'Parameter of the slice plot' }, params.map((parameter) => h('option', { value: parameter.name }, parameter.name)));
    const xSelect = h('select', { id: 'contour-x', 'aria-label': 'Contour x parameter' }, params.map((parameter) => h('option', { value: parameter.name }, parameter.name)));
    const ySelect = h('select', { id: 'contour-y', 'aria-label': 'Contour y parameter' }, params.map((parameter) => h('option', { value: parameter.name }, parameter.name)));
    if (params.length > 1) ySelect.value = params[1].name;
    figures.slice = charts.figure('slice', 'Slice', 'the objective against one parameter', sliceSelect);
    figures.contour = charts.figure('contour', 'Contour', 'the objective over two parameters', xSelect, ySelect);
    figures.intermediate = charts.figure('intermediate', 'Intermediate values', 'each trial\'s objective metric over its reports; early-stopped trials dashed');
    const list = [figures.history, figures.parallel, figures.importance, figures.slice, figures.contour, figures.intermediate];
    if (objectives(experiment).length > 1) {
      figures.pareto = charts.figure('pareto', 'Pareto front', 'the first two objectives of each trial, the Pareto-optimal ones marked');
      list.push(figures.pareto);
    }
    replace(section, h('h2', { id: 'plots-title' }, 'Plots'), h('div', { class: 'plots' }, list.map((entry) => entry.element)));
    for (const select of [sliceSelect, xSelect, ySelect]) select.addEventListener('change', () => section.redraw && section.redraw());
  }
  const area = (id) => section.querySelector(`#chart-${id}`);

  // History: each trial in creation order, and the best so far.
  let best = null;
  const points = [];
  const bestLine = [];
  trials.forEach((trial, index) => {
    if (trial.objectiveValue === null || trial.objectiveValue === undefined) return;
    points.push([index + 1, trial.objectiveValue, trial.name]);
    if (best === null || (maximize ? trial.objectiveValue > best : trial.objectiveValue < best)) best = trial.objectiveValue;
    bestLine.push([index + 1, best]);
  });
  charts.draw(area('history'), {
    tooltip: { trigger: 'item' },
    legend: { top: 0 },
    xAxis: { type: 'value', name: 'trial', minInterval: 1 },
    yAxis: { type: 'value', name: objectiveName, scale: true, axisLine: { onZero: false } },
    series: [
      { name: 'trial', type: 'scatter', data: points, symbolSize: 6, large: true, largeThreshold: 5000 },
      { name: 'best so far', type: 'line', step: 'end', data: bestLine, showSymbol: false },
    ],
  }, points.length);

  // Parallel coordinates: parameters, then the objective.
  const rows = scored.map((trial) => [...params.map((parameter) => value(trial, parameter)), trial.objectiveValue]);
  charts.draw(area('parallel'), {
    parallelAxis: [...params.map((parameter, index) => charts.parameterAxis(parameter, { dim: index })),
      { dim: params.length, name: objectiveName, type: 'value', scale: true }],
    parallel: { left: 60, right: 80, top: 40, bottom: 30 },
    visualMap: rows.length ? { show: false, dimension: params.length, ...extent(rows.map((row) => row.at(-1))), inRange: { color: maximize ? ['#d94e5d', '#eac736', '#50a3ba'] : ['#50a3ba', '#eac736', '#d94e5d'] } } : undefined,
    series: [{ type: 'parallel', data: rows, lineStyle: { width: 1, opacity: 0.5 }, progressive: 2000 }],
  }, rows.length);

  // Importance, computed by the server once there is something to learn from.
  if (scored.some((trial) => trial.condition === 'Succeeded')) {
    const importance = await api(`/experiments/${seg(experiment.metadata.name)}/importance`, { signal });
    const ordered = [...importance.parameters].reverse();
    charts.draw(area('importance'), {
      tooltip: { trigger: 'axis' },
      grid: { left: 120, right: 30, top: 20, bottom: 30 },
      xAxis: { type: 'value', name: 'share of variance', max: 1 },
      yAxis: { type: 'category', data: ordered.map((entry) => entry.name) },
      series: [{ type: 'bar', data: ordered.map((entry) => Number(entry.importance.toFixed(4))) }],
    }, ordered.length);
  }

  section.redraw = () => {
    const slice = params.find((parameter) => parameter.name === section.querySelector('#slice-parameter').value) || params[0];
    if (slice) {
      const data = scored.map((trial) => [value(trial, slice), trial.objectiveValue, trial.name]);
      charts.draw(area('slice'), {
        tooltip: { trigger: 'item' },
        xAxis: charts.parameterAxis(slice),
        yAxis: { type: 'value', name: objectiveName, scale: true, axisLine: { onZero: false } },
        series: [{ type: 'scatter', data, symbolSize: 6, large: true, largeThreshold: 5000 }],
      }, data.length);
    }
    const x = params.find((parameter) => parameter.name === section.querySelector('#contour-x').value);
    const y = params.find((parameter) => parameter.name === section.querySelector('#contour-y').value);
    if (x && y) drawContour(charts, area('contour'), x, y, scored, value, objectiveName, maximize);
  };
  section.redraw();

  await drawIntermediate(charts, area('intermediate'), experiment, trials, objectiveName, signal);
  if (section.querySelector('#pareto')) drawPareto(charts, area('pareto'), experiment, trials);
}

/** The smallest and largest of `values` (a loop: spreading 100,000 arguments overflows the stack). */
function extent(values) {
  let min = Infinity;
  let max = -Infinity;
  for (const value of values) {
    if (value < min) min = value;
    if (value > max) max = value;
  }
  return { min, max };
}

/** The contour: cells coloured by the objective interpolated from the trials (inverse distance
 * weighting on each axis's scale), and the trials themselves on top. */
function drawContour(charts, container, x, y, scored, value, objectiveName, maximize) {
  const toAxis = (parameter, raw) => (parameter.choices ? parameter.choices.indexOf(raw) : parameter.log ? Math.log10(raw) : raw);
  const points = scored.map((trial) => [toAxis(x, value(trial, x)), toAxis(y, value(trial, y)), trial.objectiveValue]);
  const range = (index, parameter) => {
    if (parameter.choices) return [-0.5, parameter.choices.length - 0.5];
    const { min, max } = extent(points.map((point) => point[index]));
    const margin = (max - min) * 0.05 || 0.5;
    return [min - margin, max + margin];
  };
  const [x0, x1] = range(0, x);
  const [y0, y1] = range(1, y);
  const cells = [];
  const resolution = 24;
  if (points.length && x1 > x0 && y1 > y0) {
    const dx = (x1 - x0) / resolution;
    const dy = (y1 - y0) / resolution;
    for (let i = 0; i < resolution; i += 1) {
      for (let j = 0; j < resolution; j += 1) {
        const cx = x0 + (i + 0.5) * dx;
        const cy = y0 + (j + 0.5) * dy;
        let weights = 0;
        let sum = 0;
        for (const [px, py, pv] of points) {
          const distance = ((px - cx) / (x1 - x0)) ** 2 + ((py - cy) / (y1 - y0)) ** 2;
          const weight = 1 / (distance + 1e-6) ** 2;
          weights += weight;
          sum += weight * pv;
        }
        cells.push([cx, cy, sum / weights, cx - dx / 2, cx + dx / 2, cy - dy / 2, cy + dy / 2]);
      }
    }
  }
  const values = points.map((point) => point[2]);
  const axis = (parameter, [low, high]) => ({
    type: 'value', name: parameter.log ? `log10 ${parameter.name}` : parameter.name, min: low, max: high,
    axisLabel: { formatter: parameter.choices ? (tick) => parameter.choices[Math.round(tick)] ?? '' : (tick) => num(tick) },
    interval: parameter.choices ? 1 : undefined,
  });
  charts.draw(container, {
    tooltip: { trigger: 'item' },
    grid: { right: 90 },
    xAxis: axis(x, [x0, x1]),
    yAxis: axis(y, [y0, y1]),
    visualMap: values.length === 0 ? undefined : { ...extent(values), dimension: 2, right: 0, top: 'middle', calculable: true, text: [objectiveName, ''], inRange: { color: maximize ? ['#313695', '#74add1', '#fee090', '#f46d43'] : ['#f46d43', '#fee090', '#74add1', '#313695'] } },
    series: [
      {
        type: 'custom', silent: true, data: cells,
        renderItem: (_params, api) => {
          const [left, bottom] = api.coord([api.value(3), api.value(5)]);
          const [right, top] = api.coord([api.value(4), api.value(6)]);
          return { type: 'rect', shape: { x: left, y: top, width: right - left + 1, height: bottom - top + 1 }, style: { fill: api.visual('color') } };
        },
      },
      { type: 'scatter', data: points.map(([px, py, pv]) => [px, py, pv]), symbolSize: 6, itemStyle: { borderColor: '#000', borderWidth: 1 } },
    ],
  }, points.length);
}

/** A finished trial's metric series, by trial name: read once per change of the trial, since
 * a finished trial reports nothing more. */
const finishedSeries = new WeakMap();
const FINISHED = new Set(['Succeeded', 'Failed', 'Killed', 'EarlyStopped', 'MetricsUnavailable']);

/** Each trial's objective metric over its reports (the first MAX_SERIES trials). */
async function drawIntermediate(charts, container, experiment, trials, objectiveName, signal) {
  const chosen = trials.filter((trial) => trial.condition !== 'Created').slice(0, MAX_SERIES);
  if (!finishedSeries.has(container)) finishedSeries.set(container, new Map());
  const cache = finishedSeries.get(container);
  const logs = await Promise.all(chosen.map(async (trial) => {
    const kept = cache.get(trial.name);
    if (kept && kept.updatedAt === trial.updatedAt) return kept.log;
    const log = await api(`/trials/${seg(trial.name)}/observations?metricName=${seg(objectiveName)}`, { signal });
    if (FINISHED.has(trial.condition)) cache.set(trial.name, { updatedAt: trial.updatedAt, log });
    return log;
  }));
  let points = 0;
  const series = chosen.map((trial, index) => {
    const values = logs[index].metricLogs
      .map((entry) => Number(entry.metric.value))
      .filter((number) => Number.isFinite(number))
      .map((number, step) => [step + 1, number]);
    points += values.length;
    const stopped = trial.condition === 'EarlyStopped';
    return {
      name: trial.name, type: 'line', data: values, showSymbol: false,
      lineStyle: { width: 1, type: stopped ? 'dashed' : 'solid' },
      markPoint: stopped && values.length ? { symbol: 'triangle', symbolSize: 10, data: [{ coord: values.at(-1), name: 'early stopped' }] } : undefined,
    };
  });
  charts.draw(container, {
    tooltip: { trigger: 'item' },
    xAxis: { type: 'value', name: 'report', minInterval: 1 },
    yAxis: { type: 'value', name: objectiveName, scale: true },
    series,
  }, points);
  container.dataset.series = String(series.length);
  container.dataset.earlyStopped = String(chosen.filter((trial) => trial.condition === 'EarlyStopped').length);
}

/** The first two objectives of every trial that has both, the Pareto-optimal ones marked. */
function drawPareto(charts, container, experiment, trials) {
  const [first, second] = objectives(experiment);
  const front = new Set(((experiment.status && experiment.status.paretoOptimalTrials) || []).map((trial) => trial.bestTrialName));
  const others = [];
  const optimal = [];
  for (const trial of trials) {
    const a = metricValue(experiment, trial.observation, first.name);
    const b = metricValue(experiment, trial.observation, second.name);
    if (a === null || b === null) continue;
    (front.has(trial.name) ? optimal : others).push([a, b, trial.name]);
  }
  optimal.sort((left, right) => left[0] - right[0]);
  charts.draw(container, {
    tooltip: { trigger: 'item' },
    legend: { top: 0 },
    xAxis: { type: 'value', name: `${first.name} (${first.type})`, scale: true },
    yAxis: { type: 'value', name: `${second.name} (${second.type})`, scale: true },
    series: [
      { name: 'trial', type: 'scatter', data: others, symbolSize: 6 },
      { name: 'Pareto optimal', type: 'line', data: optimal, symbolSize: 9, step: false },
    ],
  }, others.length + optimal.length);
  container.dataset.front = String(optimal.length);
}
