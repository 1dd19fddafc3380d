// A new experiment: paste or upload its YAML (or JSON), have the server check it (a dry run
// of the submission: every problem by field path, nothing created), then submit it.

import { api } from '../api.js';
import { field, h, replace, seg } from '../dom.js';

export async function render(main, _params, context) {
  const text = h('textarea', { name: 'spec', rows: 24, spellcheck: 'false', class: 'code', placeholder: 'apiVersion: kubeflow.org/v1beta1\nkind: Experiment\n...' });
  const file = h('input', { type: 'file', accept: '.yaml,.yml,.json,application/yaml,application/json' });
  const result = h('div', { id: 'result', 'aria-live': 'polite' });
  const check = h('button', { type: 'button', id: 'check' }, 'Check');
  const create = h('button', { type: 'submit', id: 'create' }, 'Create');
  file.addEventListener('change', async () => {
    if (file.files.length) text.value = await file.files[0].text();
  });
  const send = async (dryRun) => {
    const body = text.value;
    const type = body.trimStart().startsWith('{') ? 'application/json' : 'application/yaml';
    try {
      const experiment = await api(`/experiments${dryRun ? '?dryRun=true' : ''}`, { method: 'POST', body, type, signal: context.signal });
      if (dryRun) {
        replace(result, h('p', { class: 'ok', role: 'status' }, `Valid: experiment ${experiment.metadata.name} can be created.`));
      } else {
        context.navigate(`/experiments/${seg(experiment.metadata.name)}`);
      }
    } catch (error) {
      if (context.signal.aborted) return;
      replace(result, h('div', { class: 'error', role: 'alert' },
        h('p', {}, error.message),
        error.fields && error.fields.length
          ? h('ul', { class: 'problems' }, error.fields.map((problem) =>
            h('li', {}, h('code', { class: 'path' }, problem.path), ' ', h('span', {}, problem.rule))))
          : null));
    }
  };
  check.addEventListener('click', () => send(true));
  replace(main,
    h('h1', {}, 'New experiment'),
    h('p', {}, 'A Katib Experiment (kubeflow.org/v1beta1 or sextant.dev/v1beta1). Check asks the server to validate it without creating anything.'),
    h('form', { id: 'submit-form', onsubmit: (event) => { event.preventDefault(); send(false); } },
      field('Upload a file', file),
      field('Spec', text),
      h('div', { class: 'actions' }, check, create)),
    result);
}
