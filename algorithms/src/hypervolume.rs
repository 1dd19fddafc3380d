//! The hypervolume indicator: the volume of the region that a set of loss vectors dominates
//! and a reference point bounds. It measures a Pareto front in one number (higher is better),
//! so the quality runner, the experiment status and MOTPE's split all use this module.
//!
//! Exact for any number of objectives by slicing (Hypervolume by Slicing Objectives, While et
//! al., IEEE TEC 2006): sort by the last objective and sum, over the slabs between consecutive
//! values, the slab's height times the hypervolume of the points below it in one dimension
//! less. Two dimensions end in a sweep, `O(n log n)`; three cost `O(n^2 log n)`, which at a
//! few hundred points is well under a millisecond. Points that do not strictly dominate the
//! reference point add nothing and are dropped first.
//!
//! [`non_dominated_boxes`] cuts the complement, the region below the reference point that no
//! point dominates, into disjoint boxes: what the expected hypervolume improvement of the GP
//! integrates over (Emmerich, Deutz & Klinkenberg, "Hypervolume-based Expected Improvement",
//! IEEE CEC 2011; Lacour, Klamroth & Fonseca, "A box decomposition algorithm to compute the
//! hypervolume indicator", Computers & Operations Research 2017, on such decompositions).
//! It slices as [`hypervolume`] does: the region between two consecutive values of the last
//! objective is the decomposition, in one dimension less, of the points below it, and a box
//! that stays the same from one slice to the next is extended rather than cut, so a front of
//! `n` points gives `n + 1` boxes in two objectives and about `2n` to `3n` in three.

use std::collections::BTreeMap;

/// One box of [`non_dominated_boxes`]: `lower <= y < upper` in every objective; a lower
/// corner may be minus infinity.
#[derive(Debug, Clone, PartialEq)]
pub struct Cell {
    /// The lower corner.
    pub lower: Vec<f64>,
    /// The upper corner, at most the reference point.
    pub upper: Vec<f64>,
}

/// The region below `reference` that no point of `points` weakly dominates, as disjoint
/// boxes, in a fixed order for given points. Points not strictly below the reference in every
/// objective, or not finite, are ignored (they dominate nothing below it).
pub fn non_dominated_boxes(points: &[Vec<f64>], reference: &[f64]) -> Vec<Cell> {
    if reference.is_empty() {
        return Vec::new();
    }
    decompose(below(points, reference), reference)
}

/// The hypervolume that `points` (losses, lower is better) dominate up to `reference`.
///
/// Every point must have `reference.len()` coordinates; non-finite points add nothing.
pub fn hypervolume(points: &[Vec<f64>], reference: &[f64]) -> f64 {
    slice(below(points, reference), reference)
}

/// The finite points strictly below `reference` in every objective: the only ones that
/// dominate any of the region below it.
fn below<'a>(points: &'a [Vec<f64>], reference: &[f64]) -> Vec<&'a [f64]> {
    points
        .iter()
        .map(Vec::as_slice)
        .filter(|point| {
            point.len() == reference.len()
                && point
                    .iter()
                    .zip(reference)
                    .all(|(x, r)| x.is_finite() && x < r)
        })
        .collect()
}

fn slice(mut points: Vec<&[f64]>, reference: &[f64]) -> f64 {
    let dimensions = reference.len();
    if points.is_empty() || dimensions == 0 {
        return 0.0;
    }
    match dimensions {
        1 => reference[0] - points.iter().map(|p| p[0]).fold(f64::INFINITY, f64::min),
        2 => sweep_2d(&mut points, reference),
        _ => {
            let last = dimensions - 1;
            points.sort_by(|a, b| a[last].total_cmp(&b[last]));
            let mut volume = 0.0;
            let mut below: Vec<&[f64]> = Vec::with_capacity(points.len());
            for (index, point) in points.iter().enumerate() {
                below.push(&point[..last]);
                let top = points
                    .get(index + 1)
                    .map_or(reference[last], |next| next[last]);
                let height = top - point[last];
                if height > 0.0 {
                    volume += height * slice(below.clone(), &reference[..last]);
                }
            }
            volume
        }
    }
}

/// Two dimensions: sort by the first loss and add the strip each point adds below the best
/// second loss so far.
fn sweep_2d(points: &mut [&[f64]], reference: &[f64]) -> f64 {
    points.sort_by(|a, b| a[0].total_cmp(&b[0]).then(a[1].total_cmp(&b[1])));
    let mut volume = 0.0;
    let mut best_second = reference[1];
    for (index, point) in points.iter().enumerate() {
        if point[1] < best_second {
            best_second = point[1];
        }
        let right = points.get(index + 1).map_or(reference[0], |next| next[0]);
        volume += (right - point[0]) * (reference[1] - best_second);
    }
    volume
}

fn decompose(mut points: Vec<&[f64]>, reference: &[f64]) -> Vec<Cell> {
    let last = reference.len() - 1;
    if last == 0 {
        let upper = points.iter().map(|p| p[0]).fold(reference[0], f64::min);
        return vec![Cell {
            lower: vec![f64::NEG_INFINITY],
            upper: vec![upper],
        }];
    }
    points.sort_by(|a, b| a[last].total_cmp(&b[last]));
    // The boxes of the current slice, keyed by their corners' bits (a deterministic order),
    // with the value of the last objective where each began.
    let key = |cell: &Cell| -> Vec<u64> {
        cell.lower
            .iter()
            .chain(&cell.upper)
            .map(|v| v.to_bits())
            .collect()
    };
    let mut open: BTreeMap<Vec<u64>, (Cell, f64)> = decompose(Vec::new(), &reference[..last])
        .into_iter()
        .map(|cell| (key(&cell), (cell, f64::NEG_INFINITY)))
        .collect();
    let mut boxes = Vec::new();
    let close = |cell: Cell, start: f64, end: f64, boxes: &mut Vec<Cell>| {
        if end > start {
            let (mut lower, mut upper) = (cell.lower, cell.upper);
            lower.push(start);
            upper.push(end);
            boxes.push(Cell { lower, upper });
        }
    };
    let mut index = 0;
    while index < points.len() {
        let level = points[index][last];
        let mut end = index;
        while end < points.len() && points[end][last] == level {
            end += 1;
        }
        let below: Vec<&[f64]> = points[..end].iter().map(|p| &p[..last]).collect();
        let mut next: BTreeMap<Vec<u64>, (Cell, f64)> = BTreeMap::new();
        for cell in decompose(below, &reference[..last]) {
            let cell_key = key(&cell);
            let start = match open.remove(&cell_key) {
                Some((_, start)) => start,
                None => level,
            };
            next.insert(cell_key, (cell, start));
        }
        for (_, (cell, start)) in std::mem::replace(&mut open, next) {
            close(cell, start, level, &mut boxes);
        }
        index = end;
    }
    for (_, (cell, start)) in open {
        close(cell, start, reference[last], &mut boxes);
    }
    boxes
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The volume of the boxes with lower corners raised to `floor`.
    fn boxes_volume(boxes: &[Cell], floor: f64) -> f64 {
        boxes
            .iter()
            .map(|cell| {
                cell.lower
                    .iter()
                    .zip(&cell.upper)
                    .map(|(l, u)| (u - l.max(floor)).max(0.0))
                    .product::<f64>()
            })
            .sum()
    }

    #[test]
    fn boxes_fill_what_the_front_leaves_of_the_reference_box() {
        let front2 = vec![
            vec![0.0, 2.0],
            vec![1.0, 1.0],
            vec![2.0, 0.0],
            vec![2.5, 2.5],
        ];
        let boxes = non_dominated_boxes(&front2, &[3.0, 3.0]);
        assert_eq!(boxes.len(), 4, "{boxes:?}");
        let volume = 9.0 - hypervolume(&front2, &[3.0, 3.0]);
        assert!((boxes_volume(&boxes, 0.0) - volume).abs() < 1e-12);

        let front3 = vec![
            vec![0.1, 0.5, 0.9],
            vec![0.5, 0.1, 0.6],
            vec![0.9, 0.6, 0.1],
            vec![0.4, 0.4, 0.4],
            vec![0.7, 0.7, 0.7],
        ];
        let reference = [1.0, 1.0, 1.0];
        let boxes = non_dominated_boxes(&front3, &reference);
        let volume = 1.0 - hypervolume(&front3, &reference);
        assert!((boxes_volume(&boxes, 0.0) - volume).abs() < 1e-12);
        // Disjoint: no two boxes overlap.
        for (i, a) in boxes.iter().enumerate() {
            for b in &boxes[i + 1..] {
                let overlap =
                    (0..3).all(|m| a.lower[m].max(b.lower[m]) < a.upper[m].min(b.upper[m]));
                assert!(!overlap, "{a:?} {b:?}");
            }
        }
        assert_eq!(non_dominated_boxes(&[], &[1.0, 2.0]).len(), 1);
    }

    #[test]
    fn known_volumes() {
        assert_eq!(hypervolume(&[vec![1.0, 1.0]], &[2.0, 3.0]), 2.0);
        assert_eq!(
            hypervolume(
                &[vec![0.0, 2.0], vec![1.0, 1.0], vec![2.0, 0.0]],
                &[3.0, 3.0]
            ),
            6.0
        );
        assert_eq!(
            hypervolume(
                &[vec![0.0, 0.0, 0.0], vec![5.0, 5.0, 5.0]],
                &[1.0, 1.0, 1.0]
            ),
            1.0
        );
        assert_eq!(hypervolume(&[], &[1.0, 1.0]), 0.0);
        assert_eq!(hypervolume(&[vec![f64::NAN, 0.0]], &[1.0, 1.0]), 0.0);
    }
}
