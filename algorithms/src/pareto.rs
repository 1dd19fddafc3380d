//! Pareto dominance among trial outcomes: the non-dominated sort that ranks them into fronts,
//! Deb's constraint domination, the crowding distance that spreads a front, and the Pareto
//! front an experiment reports.
//!
//! Every objective is a loss (lower is better; see [`crate::objective`]). The sort is the fast
//! non-dominated sort of Deb et al., "A Fast and Elitist Multiobjective Genetic Algorithm:
//! NSGA-II" (IEEE TEC 2002), `O(M N^2)` for `N` points in `M` objectives, with the
//! dominance relation passed in so that constraint domination (§VI of the same paper) reuses
//! it.

use crate::objective::Outcome;

/// Whether `a` Pareto-dominates `b`: no worse in every loss and better in at least one.
pub fn dominates(a: &[f64], b: &[f64]) -> bool {
    let mut better_somewhere = false;
    for (x, y) in a.iter().zip(b) {
        if x > y {
            return false;
        }
        if x < y {
            better_somewhere = true;
        }
    }
    better_somewhere
}

/// Deb's constraint domination: a feasible outcome dominates an infeasible one, of two
/// infeasible ones the smaller violation dominates, and two feasible ones compare by Pareto
/// dominance.
pub fn constrained_dominates(a: &Outcome, b: &Outcome) -> bool {
    match (a.is_feasible(), b.is_feasible()) {
        (true, true) => dominates(&a.losses, &b.losses),
        (true, false) => true,
        (false, true) => false,
        (false, false) => a.violation < b.violation,
    }
}

/// Ranks `count` items into fronts by the dominance relation `dominates(i, j)`: the first
/// front is every item nothing dominates, the next every item only the first front dominates,
/// and so on. Each front lists indices in increasing order.
pub fn non_dominated_sort(
    count: usize,
    dominates: impl Fn(usize, usize) -> bool,
) -> Vec<Vec<usize>> {
    let mut dominated_by_count = vec![0usize; count];
    let mut dominated: Vec<Vec<usize>> = vec![Vec::new(); count];
    for i in 0..count {
        for j in (i + 1)..count {
            if dominates(i, j) {
                dominated[i].push(j);
                dominated_by_count[j] += 1;
            } else if dominates(j, i) {
                dominated[j].push(i);
                dominated_by_count[i] += 1;
            }
        }
    }
    let mut fronts = Vec::new();
    let mut current: Vec<usize> = (0..count).filter(|&i| dominated_by_count[i] == 0).collect();
    while !current.is_empty() {
        let mut next = Vec::new();
        for &i in &current {
            for &j in &dominated[i] {
                dominated_by_count[j] -= 1;
                if dominated_by_count[j] == 0 {
                    next.push(j);
                }
            }
        }
        next.sort_unstable();
        fronts.push(std::mem::replace(&mut current, next));
    }
    fronts
}

/// The fronts of `outcomes` under constraint domination: feasible trials first by Pareto rank,
/// then infeasible ones by increasing violation.
pub fn constrained_fronts(outcomes: &[Outcome]) -> Vec<Vec<usize>> {
    non_dominated_sort(outcomes.len(), |i, j| {
        constrained_dominates(&outcomes[i], &outcomes[j])
    })
}

/// The Pareto front: indices of the feasible outcomes no other feasible outcome dominates, in
/// increasing order. An infeasible outcome is never on it.
pub fn pareto_front(outcomes: &[Outcome]) -> Vec<usize> {
    let feasible: Vec<usize> = (0..outcomes.len())
        .filter(|&i| outcomes[i].is_feasible())
        .collect();
    feasible
        .iter()
        .copied()
        .filter(|&i| {
            !feasible
                .iter()
                .any(|&j| dominates(&outcomes[j].losses, &outcomes[i].losses))
        })
        .collect()
}

/// The crowding distance of each member of `front` (indices into `losses`), in `front` order:
/// the sum over objectives of the gap between its two neighbours, normalized by the front's
/// range in that objective; the extremes of each objective get infinity so they are kept.
pub fn crowding_distance(losses: &[Vec<f64>], front: &[usize]) -> Vec<f64> {
    let size = front.len();
    let mut distance = vec![0.0; size];
    if size <= 2 {
        return vec![f64::INFINITY; size];
    }
    // One column of the front's losses per objective.
    let columns: Vec<Vec<f64>> = (0..losses[front[0]].len())
        .map(|objective| {
            front
                .iter()
                .map(|&member| losses[member][objective])
                .collect()
        })
        .collect();
    let mut order: Vec<usize> = (0..size).collect();
    for column in &columns {
        let value = |position: usize| column[position];
        order.sort_by(|&a, &b| value(a).total_cmp(&value(b)));
        let range = value(order[size - 1]) - value(order[0]);
        distance[order[0]] = f64::INFINITY;
        distance[order[size - 1]] = f64::INFINITY;
        if range <= 0.0 || !range.is_finite() {
            continue;
        }
        for window in 1..size - 1 {
            distance[order[window]] +=
                (value(order[window + 1]) - value(order[window - 1])) / range;
        }
    }
    distance
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(losses: &[f64], violation: f64) -> Outcome {
        Outcome {
            losses: losses.to_vec(),
            violation,
        }
    }

    #[test]
    fn dominance_needs_no_worse_everywhere_and_better_somewhere() {
        assert!(dominates(&[1.0, 2.0], &[1.0, 3.0]));
        assert!(!dominates(&[1.0, 3.0], &[1.0, 3.0]));
        assert!(!dominates(&[0.0, 4.0], &[1.0, 3.0]));
    }

    #[test]
    fn constraint_domination_puts_feasible_first_then_smaller_violations() {
        let outcomes = [
            outcome(&[0.0, 0.0], 2.0),
            outcome(&[5.0, 5.0], 0.0),
            outcome(&[1.0, 1.0], 0.5),
            outcome(&[4.0, 6.0], 0.0),
            outcome(&[6.0, 4.0], 0.0),
        ];
        assert_eq!(
            constrained_fronts(&outcomes),
            vec![vec![1, 3, 4], vec![2], vec![0]]
        );
        assert_eq!(pareto_front(&outcomes), vec![1, 3, 4]);
    }

    #[test]
    fn crowding_keeps_extremes_and_favours_isolated_points() {
        let losses = vec![
            vec![0.0, 4.0],
            vec![1.0, 3.0],
            vec![1.1, 2.9],
            vec![4.0, 0.0],
        ];
        let distance = crowding_distance(&losses, &[0, 1, 2, 3]);
        assert!(distance[0].is_infinite() && distance[3].is_infinite());
        assert!(distance[2] > distance[1]);
    }
}
