// Reading Katib's Experiment as the server answers it: its latest condition, its budget and
// its best trial's objective value.

/** The latest condition whose status is True, or null. */
export function condition(experiment) {
  const conditions = (experiment.status && experiment.status.conditions) || [];
  for (let index = conditions.length - 1; index >= 0; index -= 1) {
    if (conditions[index].status === 'True') return conditions[index];
  }
  return null;
}

/** Whether the server was told to stop it (the annotation the server writes). */
export function isStopped(experiment) {
  const annotations = (experiment.metadata && experiment.metadata.annotations) || {};
  return Object.keys(annotations).some((key) => key.endsWith('/stopped'));
}

/** Its state for people: the latest condition, or Stopped. */
export function state(experiment) {
  const latest = condition(experiment);
  if (isStopped(experiment) && !(latest && ['Succeeded', 'Failed'].includes(latest.type))) return 'Stopped';
  return latest ? latest.type : 'Created';
}

/** The best trial's objective value, or null. */
export function bestObjective(experiment) {
  const objective = experiment.spec.objective || {};
  const best = experiment.status && experiment.status.currentOptimalTrial;
  return metricValue(experiment, best && best.observation && best.observation.metrics, objective.objectiveMetricName);
}

/** The objectives: [{name, type}] (several, or Katib's one). */
export function objectives(experiment) {
  const objective = experiment.spec.objective || {};
  if (objective.objectives && objective.objectives.length) {
    return objective.objectives.map((entry) => ({ name: entry.metricName, type: entry.type }));
  }
  return [{ name: objective.objectiveMetricName, type: objective.type }];
}

/** Trials that count towards the budget, and the budget. */
export function progress(experiment) {
  const status = experiment.status || {};
  return { succeeded: status.trialsSucceeded || 0, max: experiment.spec.maxTrialCount || 0 };
}

/**
 * The value of metric `name` among a trial's observed metrics ({name, min, max, latest}),
 * picked by the metric's strategy; null when absent or not a number.
 */
export function metricValue(experiment, metrics, name) {
  const metric = (metrics || []).find((candidate) => candidate.name === name);
  if (!metric) return null;
  const objective = experiment.spec.objective || {};
  const strategy = (objective.metricStrategies || []).find((candidate) => candidate.name === name);
  const value = Number({ min: metric.min, max: metric.max, latest: metric.latest }[strategy ? strategy.value : 'latest']);
  return Number.isFinite(value) ? value : null;
}

/** The parameters: name, type, the choices of a categorical one, and whether on a log scale. */
export function parameters(experiment) {
  return (experiment.spec.parameters || []).map((parameter) => {
    const space = parameter.feasibleSpace || {};
    return {
      name: parameter.name,
      type: parameter.parameterType,
      choices: parameter.parameterType === 'categorical' ? space.list || [] : null,
      log: ['logUniform', 'logNormal'].includes(space.distribution),
    };
  });
}
