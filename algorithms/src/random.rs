//! Random search: independent draws from each parameter's prior (Bergstra & Bengio, "Random
//! Search for Hyper-Parameter Optimization", JMLR 2012).

use rand::Rng;

use crate::SuggestError;
use crate::algorithm::{BuildContext, SearchAlgorithm, SuggestRequest, Suggestions};
use crate::seed::rng_for;
use crate::settings::{Setting, SettingsError, SettingsReader};

/// Katib's name of the algorithm.
pub const NAME: &str = "random";

/// Random search with its settings.
#[derive(Debug, Clone, PartialEq)]
pub struct RandomSearch {
    /// Seed of the random stream; draws also depend on the history (see [`crate::seed`]).
    pub random_state: Option<u64>,
}

/// Builds random search from Katib's settings (`random_state`).
pub fn build(
    settings: &[Setting],
    _context: &BuildContext<'_>,
) -> Result<Box<dyn SearchAlgorithm>, SettingsError> {
    let mut reader = SettingsReader::new(NAME, settings);
    let random_state = reader.random_state()?;
    reader.finish()?;
    Ok(Box::new(RandomSearch { random_state }))
}

impl SearchAlgorithm for RandomSearch {
    fn name(&self) -> &'static str {
        NAME
    }

    fn suggest(&self, request: &SuggestRequest<'_>) -> Result<Suggestions, SuggestError> {
        let mut rng = rng_for(self.random_state, request.trials, NAME);
        let dimensions = request.space.len();
        let mut quantiles = vec![0.0; dimensions];
        let mut assignments = Vec::with_capacity(request.count);
        for _ in 0..request.count {
            request.cancel.check()?;
            for quantile in quantiles.iter_mut() {
                *quantile = rng.random::<f64>();
            }
            assignments.push(request.space.from_quantiles(&quantiles));
        }
        Ok(Suggestions::from_assignments(assignments))
    }
}
