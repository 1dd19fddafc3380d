//! The Pareto front and the hypervolume against brute force: the front by the definition
//! (no point dominates a member, some member dominates every other point), the hypervolume by
//! counting the unit cells that integer points dominate, and by inclusion and exclusion over
//! every subset for real-valued points.

use proptest::prelude::*;
use sextant_algorithms::Outcome;
use sextant_algorithms::hypervolume::hypervolume;
use sextant_algorithms::pareto::{dominates, non_dominated_sort, pareto_front};

fn integer_points(dimensions: usize) -> impl Strategy<Value = Vec<Vec<f64>>> {
    proptest::collection::vec(
        proptest::collection::vec((0u8..8).prop_map(f64::from), dimensions),
        0..12,
    )
}

/// The number of unit cells of `[0, side)^d` that some point dominates (a cell dominated when
/// its lower corner is no better than a point in every coordinate).
fn counted_cells(points: &[Vec<f64>], dimensions: usize, side: usize) -> f64 {
    let mut count = 0usize;
    let cells = side.pow(dimensions as u32);
    for cell in 0..cells {
        let corner: Vec<f64> = (0..dimensions)
            .map(|d| ((cell / side.pow(d as u32)) % side) as f64)
            .collect();
        if points
            .iter()
            .any(|p| p.iter().zip(&corner).all(|(x, c)| x <= c))
        {
            count += 1;
        }
    }
    count as f64
}

/// Inclusion and exclusion: the union of the boxes `[p, reference]` as the signed sum of the
/// volumes of every subset's intersection box.
fn inclusion_exclusion(points: &[Vec<f64>], reference: &[f64]) -> f64 {
    let mut total = 0.0;
    for subset in 1u32..(1 << points.len()) {
        let members: Vec<&Vec<f64>> = (0..points.len())
            .filter(|i| subset & (1 << i) != 0)
            .map(|i| &points[i])
            .collect();
        let volume: f64 = (0..reference.len())
            .map(|d| {
                let corner = members
                    .iter()
                    .map(|p| p[d])
                    .fold(f64::NEG_INFINITY, f64::max);
                (reference[d] - corner).max(0.0)
            })
            .product();
        if members.len() % 2 == 1 {
            total += volume;
        } else {
            total -= volume;
        }
    }
    total
}

fn real_points(dimensions: usize) -> impl Strategy<Value = Vec<Vec<f64>>> {
    proptest::collection::vec(proptest::collection::vec(0.0f64..1.0, dimensions), 0..9)
}

proptest! {
    #[test]
    fn hypervolume_2d_counts_cells(points in integer_points(2)) {
        prop_assert_eq!(hypervolume(&points, &[8.0, 8.0]), counted_cells(&points, 2, 8));
    }

    #[test]
    fn hypervolume_3d_counts_cells(points in integer_points(3)) {
        prop_assert_eq!(hypervolume(&points, &[8.0, 8.0, 8.0]), counted_cells(&points, 3, 8));
    }

    #[test]
    fn hypervolume_4d_counts_cells(points in integer_points(4)) {
        prop_assert_eq!(
            hypervolume(&points, &[8.0, 8.0, 8.0, 8.0]),
            counted_cells(&points, 4, 8)
        );
    }

    #[test]
    fn hypervolume_matches_inclusion_exclusion(
        points_2d in real_points(2),
        points_3d in real_points(3),
    ) {
        for (points, reference) in [(points_2d, vec![1.1, 1.1]), (points_3d, vec![1.1, 1.1, 1.1])] {
            let exact = inclusion_exclusion(&points, &reference);
            prop_assert!((hypervolume(&points, &reference) - exact).abs() < 1e-9);
        }
    }

    #[test]
    fn front_matches_the_definition(
        points in proptest::collection::vec(
            (proptest::collection::vec(0u8..6, 2..4), proptest::bool::weighted(0.3)),
            0..40,
        ),
    ) {
        let dimensions = points.first().map_or(2, |(losses, _)| losses.len());
        let outcomes: Vec<Outcome> = points
            .iter()
            .filter(|(losses, _)| losses.len() == dimensions)
            .map(|(losses, infeasible)| Outcome {
                losses: losses.iter().map(|x| f64::from(*x)).collect(),
                violation: if *infeasible { 1.0 } else { 0.0 },
            })
            .collect();
        let brute: Vec<usize> = (0..outcomes.len())
            .filter(|&i| {
                outcomes[i].is_feasible()
                    && !outcomes.iter().any(|other| {
                        other.is_feasible() && dominates(&other.losses, &outcomes[i].losses)
                    })
            })
            .collect();
        prop_assert_eq!(pareto_front(&outcomes), brute);

        // Every point of a later front is dominated by one of the front before it and by none
        // of its own or later fronts.
        let losses: Vec<&Vec<f64>> = outcomes.iter().map(|o| &o.losses).collect();
        let fronts = non_dominated_sort(losses.len(), |i, j| dominates(losses[i], losses[j]));
        prop_assert_eq!(fronts.iter().map(Vec::len).sum::<usize>(), losses.len());
        for (rank, front) in fronts.iter().enumerate() {
            for &member in front {
                let rest = fronts[rank..].iter().flatten();
                prop_assert!(!rest.clone().any(|&j| dominates(losses[j], losses[member])));
                if rank > 0 {
                    prop_assert!(fronts[rank - 1].iter().any(|&j| dominates(losses[j], losses[member])));
                }
            }
        }
    }
}
