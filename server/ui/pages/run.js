// A pipeline run: its DAG laid out by dagre, steps coloured by state (live), cache hits and
// retries marked; a step's logs, outputs and artifacts.

import dagre from '../vendor/dagre-3.1.3/dagre.esm.js';
import { api, events } from '../api.js';
import { badge, download, h, replace, seg, svg, throttle, when } from '../dom.js';

const NODE_WIDTH = 170;
const NODE_HEIGHT = 46;

export async function render(main, [id], context) {
  const { signal } = context;
  const [graph, initial] = await Promise.all([
    api(`/runs/${seg(id)}/graph`, { signal }),
    api(`/runs/${seg(id)}`, { signal }),
  ]);
  let run = initial;
  let selected = context.query.get('step') || null;
  const header = h('div', { class: 'title-row' });
  const facts = h('dl', { class: 'facts' });
  const picture = h('div', { class: 'dag', id: 'dag' });
  const panel = h('section', { id: 'step', 'aria-live': 'polite' });
  replace(main, header, facts,
    h('section', { 'aria-labelledby': 'graph-title' }, h('h2', { id: 'graph-title' }, 'Graph'),
      h('p', { class: 'muted legend' }, 'Select a step (click, or Tab and Enter) for its logs, outputs and artifacts. ',
        h('span', { class: 'mark-cached' }, 'dashed: from the cache'), ' · ', h('span', {}, '↻ N: attempts')),
      picture),
    panel);

  const layout = layoutGraph(graph);
  const nodes = new Map();
  const drawing = svg('svg', { width: layout.width, height: layout.height, viewBox: `0 0 ${layout.width} ${layout.height}`, role: 'group', 'aria-label': `Steps of ${graph.pipelineName}` },
    svg('defs', {}, svg('marker', { id: 'arrow', viewBox: '0 0 10 10', refX: 10, refY: 5, markerWidth: 8, markerHeight: 8, orient: 'auto-start-reverse' }, svg('path', { d: 'M 0 0 L 10 5 L 0 10 z', class: 'arrow' }))),
    layout.edges.map((points) => svg('path', { class: 'edge', d: `M ${points.map((point) => `${point.x} ${point.y}`).join(' L ')}`, 'marker-end': 'url(#arrow)' })),
    graph.steps.map((step) => {
      const place = layout.nodes.get(step.name);
      const label = svg('text', { x: 10, y: 19, class: 'name' }, step.name);
      const detail = svg('text', { x: 10, y: 36, class: 'detail' });
      const node = svg('g', { class: 'node', transform: `translate(${place.x - NODE_WIDTH / 2} ${place.y - NODE_HEIGHT / 2})`, tabindex: 0, role: 'button', 'data-step': step.name },
        svg('rect', { width: NODE_WIDTH, height: NODE_HEIGHT, rx: 6 }), label, detail);
      const choose = () => { selected = step.name; history.replaceState(null, '', `/runs/${seg(id)}?step=${seg(step.name)}`); refresh(); };
      node.addEventListener('click', choose);
      node.addEventListener('keydown', (event) => { if (event.key === 'Enter' || event.key === ' ') { event.preventDefault(); choose(); } });
      nodes.set(step.name, { node, detail });
      return node;
    }));
  picture.append(drawing);

  const refresh = () => {
    replace(header, h('h1', {}, run.runId), badge(run.phase));
    replace(facts, [['Pipeline', run.pipelineName], ['Parameters', Object.entries(run.params).map(([key, value]) => `${key}=${value}`).join(', ')],
      ['Cache', run.cacheEnabled ? 'on' : 'off'], ['Started', when(run.startedAt)], ['Finished', when(run.finishedAt)], ['Message', run.message || '']]
      .map(([term, value]) => [h('dt', {}, term), h('dd', {}, value)]));
    for (const step of graph.steps) {
      const instances = run.steps.filter((instance) => instance.step === step.name);
      const phase = summarize(instances);
      const { node, detail } = nodes.get(step.name);
      const cached = instances.length > 0 && instances.every((instance) => instance.cached);
      const attempts = Math.max(0, ...instances.map((instance) => instance.attempt));
      node.setAttribute('class', `node state-${phase}${cached ? ' cached' : ''}${selected === step.name ? ' selected' : ''}`);
      node.dataset.phase = phase;
      node.setAttribute('aria-label', `step ${step.name}: ${phase}${cached ? ', from the cache' : ''}${attempts > 1 ? `, ${attempts} attempts` : ''}`);
      node.setAttribute('aria-pressed', String(selected === step.name));
      detail.textContent = `${phase}${cached && phase !== 'Cached' ? ' · cached' : ''}${attempts > 1 ? ` · ↻ ${attempts}` : ''}${step.itemCount ? ` · ×${step.itemCount}` : ''}`;
    }
    if (selected) showStep(panel, id, run, selected, signal);
  };
  refresh();
  const reload = throttle(async () => {
    try { run = await api(`/runs/${seg(id)}`, { signal }); refresh(); } catch { /* shown on the next change */ }
  }, 700);
  events(`?run=${seg(id)}`, reload, signal);
}

/** One phase for a step's instances (a fanned-out step has several). */
function summarize(instances) {
  if (!instances.length) return 'Pending';
  const phases = instances.map((instance) => instance.phase);
  for (const phase of ['Failed', 'Running', 'Pending', 'Cancelled']) if (phases.includes(phase)) return phase;
  if (phases.every((phase) => phase === 'Skipped')) return 'Skipped';
  return phases.every((phase) => phase === 'Cached') ? 'Cached' : 'Succeeded';
}

function layoutGraph(graph) {
  const layout = new dagre.graphlib.Graph();
  layout.setGraph({ rankdir: 'TB', nodesep: 30, ranksep: 50, marginx: 10, marginy: 10 });
  layout.setDefaultEdgeLabel(() => ({}));
  for (const step of graph.steps) layout.setNode(step.name, { width: NODE_WIDTH, height: NODE_HEIGHT });
  for (const step of graph.steps) for (const dependency of step.dependencies) layout.setEdge(dependency, step.name);
  dagre.layout(layout);
  const nodes = new Map(layout.nodes().map((name) => [name, layout.node(name)]));
  const edges = layout.edges().map((edge) => layout.edge(edge).points);
  const { width, height } = layout.graph();
  return { nodes, edges, width: Math.ceil(width), height: Math.ceil(height) };
}

/** A step's instances: phase, message, outputs, artifacts and logs. */
async function showStep(panel, id, run, name, signal) {
  const instances = run.steps.filter((instance) => instance.step === name);
  const sections = await Promise.all(instances.map(async (instance) => {
    const item = instance.itemIndex === null || instance.itemIndex === undefined ? '' : `item=${instance.itemIndex}`;
    const query = (extra) => [item, extra].filter(Boolean).join('&');
    const started = !['Pending', 'Skipped'].includes(instance.phase) && !instance.cached;
    const [stdout, stderr] = started
      ? await Promise.all(['stdout', 'stderr'].map((stream) =>
        api(`/runs/${seg(id)}/steps/${seg(name)}/log?${query(`stream=${stream}`)}`, { text: true, signal }).catch((error) => `(${error.message})`)))
      : ['', ''];
    return h('article', { class: 'instance', dataset: { phase: instance.phase } },
      h('h3', {}, item ? `${name} [${instance.itemIndex}]` : name, ' ', badge(instance.phase)),
      h('dl', { class: 'facts' },
        [['Attempt', String(instance.attempt)], ['From the cache', instance.cached ? 'yes' : 'no'], ['Message', instance.message || ''],
          ['Started', when(instance.startedAt)], ['Finished', when(instance.finishedAt)]].map(([term, value]) => [h('dt', {}, term), h('dd', {}, value)])),
      h('h4', {}, 'Output parameters'),
      Object.keys(instance.outputParams).length
        ? h('dl', { class: 'facts outputs' }, Object.entries(instance.outputParams).map(([key, value]) => [h('dt', {}, key), h('dd', {}, value)]))
        : h('p', { class: 'muted' }, 'None.'),
      h('h4', {}, 'Artifacts'),
      instance.outputArtifacts.length
        ? h('ul', {}, instance.outputArtifacts.map((artifact) => {
          const button = h('button', { type: 'button', class: 'linkish' }, `Download ${artifact}`);
          button.addEventListener('click', async () => {
            const blob = await api(`/runs/${seg(id)}/artifacts/${seg(name)}/${seg(artifact)}?${query('')}`, { blob: true });
            download(artifact, blob.type, blob);
          });
          return h('li', {}, button);
        }))
        : h('p', { class: 'muted' }, 'None.'),
      h('h4', {}, 'Standard output'), h('pre', { class: 'log stdout', tabindex: 0 }, stdout || '(empty)'),
      h('h4', {}, 'Standard error'), h('pre', { class: 'log stderr', tabindex: 0 }, stderr || '(empty)'));
  }));
  if (signal.aborted) return;
  replace(panel, h('h2', {}, `Step ${name}`), sections.length ? sections : h('p', { class: 'muted' }, 'Not started.'));
}
