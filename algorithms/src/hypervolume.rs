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

/// The hypervolume that `points` (losses, lower is better) dominate up to `reference`.
///
/// Every point must have `reference.len()` coordinates; non-finite points add nothing.
pub fn hypervolume(points: &[Vec<f64>], reference: &[f64]) -> f64 {
    let inside: Vec<&[f64]> = points
        .iter()
        .map(Vec::as_slice)
        .filter(|point| {
            point.len() == reference.len()
                && point
                    .iter()
                    .zip(reference)
                    .all(|(x, r)| x.is_finite() && x < r)
        })
        .collect();
    slice(inside, reference)
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

#[cfg(test)]
mod tests {
    use super::*;

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
