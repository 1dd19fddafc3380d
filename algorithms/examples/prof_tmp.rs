//! Temporary profile (deleted before finishing).
struct Instant(u64);
impl Instant {
    fn now() -> Instant {
        Instant(cpu())
    }
    fn elapsed(&self) -> std::time::Duration {
        std::time::Duration::from_nanos(cpu() - self.0)
    }
}
fn cpu() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}
use sextant_algorithms::bayesopt::gp::{self, FitEffort, GaussianProcess};
fn main() {
    use sextant_algorithms::algorithm::{BuildContext, SuggestRequest};
    use sextant_algorithms::test_functions::TestFunction;
    use sextant_algorithms::*;
    let objective = Objective::new(Direction::Minimize, "value");
    for function in [TestFunction::Branin, TestFunction::Hartmann6] {
        let space = function.space();
        let algorithm = build_algorithm(
            "bayesianoptimization",
            &[Setting::new("random_state", "1")],
            &BuildContext {
                space: &space,
                objective: &objective,
                max_trial_count: None,
                parallel_trial_count: None,
            },
        )
        .unwrap();
        for n in [10usize, 100, 1000] {
            let mut s = 7u64;
            let mut r = || {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (s >> 11) as f64 / (1u64 << 53) as f64
            };
            let past: Vec<TrialRecord> = (0..n)
                .map(|i| {
                    let q: Vec<f64> = (0..space.len()).map(|_| r()).collect();
                    let a = space.from_quantiles(&q);
                    let v = function.evaluate_assignment(&a);
                    let mut t = TrialRecord::new(format!("t{i}"), a, TrialCondition::Succeeded);
                    t.objective_value = Some(v);
                    t
                })
                .collect();
            let reps = if n == 1000 { 5 } else { 40 };
            let t = Instant::now();
            for _ in 0..reps {
                algorithm
                    .suggest(&SuggestRequest {
                        space: &space,
                        objective: &objective,
                        trials: &past,
                        count: 1,
                    })
                    .unwrap();
            }
            println!(
                "suggest {}-d n={n}: {:?} CPU",
                space.len(),
                t.elapsed() / reps
            );
        }
    }
    if std::env::var("FULL").is_err() {
        return;
    }
    for (n, w) in [(100usize, 6usize), (100, 2), (160, 6), (1000, 6)] {
        let mut s = 1u64;
        let mut r = || {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (s >> 11) as f64 / (1u64 << 53) as f64
        };
        let points: Vec<f64> = (0..n * w).map(|_| r()).collect();
        let targets: Vec<f64> = points
            .chunks(w)
            .map(|p| p.iter().map(|x| (5.0 * x).sin()).sum::<f64>())
            .collect();
        let fit_n = n.min(160);
        let t = Instant::now();
        let reps = if n >= 1000 { 3 } else { 20 };
        let mut h = None;
        for _ in 0..reps {
            h = Some(gp::fit(
                &points[..fit_n * w],
                &targets[..fit_n],
                w,
                FitEffort {
                    starts: 1,
                    max_iterations: 30,
                },
            ));
        }
        let h = h.unwrap();
        let fit = t.elapsed() / reps;
        let t = Instant::now();
        for _ in 0..reps {
            let _ = GaussianProcess::new(points.clone(), &targets, w, h.clone()).unwrap();
        }
        let p = GaussianProcess::new(points.clone(), &targets, w, h.clone()).unwrap();
        let new = t.elapsed() / reps;
        let cands: Vec<f64> = (0..1000 * w).map(|_| r()).collect();
        let t = Instant::now();
        for _ in 0..reps {
            let _ = p.predict_batch(&cands);
        }
        let batch = t.elapsed() / reps;
        let t = Instant::now();
        let (mut a, mut b) = (vec![0.0; w], vec![0.0; w]);
        for _ in 0..reps {
            for c in cands.chunks(w).take(100) {
                p.predict_with_gradient(c, &mut a, &mut b);
            }
        }
        let grad = t.elapsed() / reps;
        println!("n={n} w={w} fit {fit:?} new {new:?} batch1000 {batch:?} grad100 {grad:?}");
    }
}
#[allow(dead_code)]
fn unused() {}
