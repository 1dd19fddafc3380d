//! Quasi-random search with a scrambled Sobol sequence: points that cover the space more evenly
//! than independent draws.
//!
//! The sequence is Sobol's with Joe & Kuo's direction numbers, Owen-scrambled by hashing as in
//! Burley, "Practical Hash-based Owen Scrambling" (JCGT 2020), through the `sobol_burley` crate.
//! The `n`-th trial of an experiment takes the `n`-th point (counting every trial in the
//! history), so the sequence continues across calls and a stateless service keeps its
//! low-discrepancy property. The scramble seed is `random_state` (default 0).

use crate::SuggestError;
use crate::algorithm::{BuildContext, SearchAlgorithm, SuggestRequest, Suggestions};
use crate::settings::{Setting, SettingsError, SettingsReader};

/// Katib's name of the algorithm.
pub const NAME: &str = "sobol";

/// The most parameters the scrambled sequence supports.
pub const MAX_DIMENSIONS: usize = sobol_burley::NUM_DIMENSIONS as usize;

/// Sobol search with its settings.
#[derive(Debug, Clone, PartialEq)]
pub struct SobolSearch {
    /// Seed of the scramble.
    pub random_state: Option<u64>,
}

/// Builds Sobol search from its settings (`random_state`).
pub fn build(
    settings: &[Setting],
    context: &BuildContext<'_>,
) -> Result<Box<dyn SearchAlgorithm>, SettingsError> {
    let mut reader = SettingsReader::new(NAME, settings);
    let random_state = reader.random_state()?;
    reader.finish()?;
    if context.space.len() > MAX_DIMENSIONS {
        return Err(SettingsError::UnsupportedSpace {
            algorithm: NAME.into(),
            reason: format!(
                "{} parameters; the sequence supports at most {MAX_DIMENSIONS}",
                context.space.len()
            ),
        });
    }
    Ok(Box::new(SobolSearch { random_state }))
}

impl SobolSearch {
    /// The `index`-th point of the scrambled sequence in `dimensions` dimensions.
    pub fn point(&self, index: u32, dimensions: usize) -> Vec<f64> {
        let seed = fold_seed(self.random_state.unwrap_or(0));
        (0..dimensions as u32)
            .map(|dimension| f64::from(sobol_burley::sample(index, dimension, seed)))
            .collect()
    }
}

impl SearchAlgorithm for SobolSearch {
    fn name(&self) -> &'static str {
        NAME
    }

    fn suggest(&self, request: &SuggestRequest<'_>) -> Result<Suggestions, SuggestError> {
        let start = request.trials.len();
        let end = start
            .checked_add(request.count)
            .filter(|end| *end <= u32::MAX as usize)
            .ok_or_else(|| {
                SuggestError::Unsupported(format!(
                    "sobol sequence holds at most {} points",
                    u32::MAX
                ))
            })?;
        let mut assignments = Vec::with_capacity(request.count);
        for index in start..end {
            request.cancel.check()?;
            assignments.push(
                request
                    .space
                    .from_quantiles(&self.point(index as u32, request.space.len())),
            );
        }
        Ok(Suggestions::from_assignments(assignments))
    }
}

fn fold_seed(random_state: u64) -> u32 {
    (random_state ^ (random_state >> 32)) as u32
}
