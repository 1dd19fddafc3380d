// The experiment's plots, drawn by Apache ECharts on canvas: one library for scatter, lines,
// bars, parallel coordinates and a contour's cells, with progressive rendering and `large`
// mode for tens of thousands of points. Each chart's container says how many points it drew
// (`data-points`) and whether it has finished drawing (`data-rendered`), for people reading
// the page source and for the browser tests.

import * as echarts from './vendor/echarts-6.1.0/echarts.esm.min.mjs';
import { h } from './dom.js';

const dark = window.matchMedia('(prefers-color-scheme: dark)');

/** A chart in `container` (made once, options replaced on each draw). */
function chart(container) {
  let instance = echarts.getInstanceByDom(container);
  if (!instance) {
    instance = echarts.init(container, dark.matches ? 'dark' : null, { renderer: 'canvas' });
    new ResizeObserver((_entries, observer) => {
      if (instance.isDisposed()) observer.disconnect(); else instance.resize();
    }).observe(container);
  }
  return instance;
}

/** Draws `option` with `points` points into `container`. */
export function draw(container, option, points) {
  const instance = chart(container);
  // Tooltips drawn on the canvas (`richText`), not as HTML: names from the server never
  // become markup there either.
  const tooltip = option.tooltip ? { ...option.tooltip, renderMode: 'richText' } : undefined;
  container.dataset.rendered = 'false';
  instance.off('finished');
  // Large series are drawn progressively, over several frames; this says when all is drawn.
  instance.on('finished', () => { container.dataset.rendered = 'true'; });
  instance.setOption({ backgroundColor: 'transparent', animation: false, ...option, tooltip }, { notMerge: true });
  container.dataset.points = String(points);
}

/** A figure with a caption and an empty chart area labelled for assistive technology. */
export function figure(id, title, description, ...controls) {
  const area = h('div', { class: 'chart', id: `chart-${id}`, role: 'img', 'aria-label': `${title}: ${description}` });
  return { element: h('figure', { class: 'plot', id }, h('figcaption', {}, h('h3', {}, title), ...controls), area), area };
}

/** An axis for a parameter: category for choices, log for log scales, else values. */
export function parameterAxis(parameter, extra = {}) {
  if (parameter.choices) return { type: 'category', data: parameter.choices, name: parameter.name, ...extra };
  return { type: parameter.log ? 'log' : 'value', name: parameter.name, scale: true, ...extra };
}

/** Frees the charts under `element`, when their page is left. */
export function dispose(element) {
  for (const area of element.querySelectorAll('.chart')) {
    const instance = echarts.getInstanceByDom(area);
    if (instance) instance.dispose();
  }
}
