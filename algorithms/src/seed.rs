//! Reproducible random streams.
//!
//! A stateless suggestion service sees the same request again after a retry and a new history
//! on every call, so an algorithm's random stream is derived from `random_state` *and* the
//! history: the same seed and history give the same suggestions, and a grown history gives
//! fresh ones instead of repeating the first draw (a fault of Katib's random service, which
//! reseeds identically on every call).

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::history::TrialRecord;
use crate::space::{Assignment, Value};

/// A random stream for one call of an algorithm.
pub fn rng_for(random_state: Option<u64>, trials: &[TrialRecord], purpose: &str) -> ChaCha8Rng {
    let mut hasher = Fnv1a::default();
    hasher.write(purpose.as_bytes());
    hasher.write_u64(random_state.unwrap_or(0));
    hasher.write_u64(trials.len() as u64);
    for trial in trials {
        hasher.write(trial.name.as_bytes());
        hash_assignment(&mut hasher, &trial.assignment);
    }
    ChaCha8Rng::seed_from_u64(hasher.finish())
}

fn hash_assignment(hasher: &mut Fnv1a, assignment: &Assignment) {
    for value in &assignment.values {
        match value {
            Value::Double(x) => hasher.write_u64(x.to_bits()),
            Value::Int(x) => hasher.write_u64(*x as u64),
            Value::Choice(index) => hasher.write_u64(*index as u64 ^ 0x9e37_79b9),
        }
    }
}

/// 64-bit FNV-1a: stable across Rust releases and platforms, unlike `DefaultHasher`.
#[derive(Debug)]
struct Fnv1a(u64);

impl Default for Fnv1a {
    fn default() -> Self {
        Fnv1a(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv1a {
    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 ^= u64::from(*byte);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    fn write_u64(&mut self, value: u64) {
        self.write(&value.to_le_bytes());
    }

    fn finish(&self) -> u64 {
        self.0
    }
}
