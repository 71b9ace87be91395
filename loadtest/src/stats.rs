//! Small summary statistics for benchmark rounds: medians, ratios and differences.
//!
//! Rounds are few (three by default), so the median is the summary: one round
//! disturbed by a neighbour on a shared machine moves it less than it moves a mean.

/// The median of `values`, or `None` for an empty slice or one holding NaN.
///
/// An even count gives the mean of the two middle values.
pub fn median(values: &[f64]) -> Option<f64> {
    if values.is_empty() || values.iter().any(|v| v.is_nan()) {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    Some(if sorted.len() % 2 == 1 {
        sorted[mid]
    } else {
        (sorted[mid - 1] + sorted[mid]) / 2.0
    })
}

/// `measured / baseline`, or `None` when the baseline is zero or not finite.
pub fn ratio(measured: f64, baseline: f64) -> Option<f64> {
    if baseline == 0.0 || !baseline.is_finite() || !measured.is_finite() {
        return None;
    }
    Some(measured / baseline)
}

/// Median of the per-round ratios `measured[i] / baseline[i]`.
///
/// Pairing within a round cancels drift that hits both sides of that round alike
/// (a neighbour's compile, page-cache state), which a ratio of medians would not.
/// `None` when the slices differ in length or no pair has a usable baseline.
pub fn median_of_ratios(measured: &[f64], baseline: &[f64]) -> Option<f64> {
    if measured.len() != baseline.len() {
        return None;
    }
    let ratios: Vec<f64> = measured
        .iter()
        .zip(baseline)
        .filter_map(|(m, b)| ratio(*m, *b))
        .collect();
    median(&ratios)
}

/// Median of the per-round differences `measured[i] - baseline[i]`.
pub fn median_of_differences(measured: &[f64], baseline: &[f64]) -> Option<f64> {
    if measured.len() != baseline.len() {
        return None;
    }
    let diffs: Vec<f64> = measured.iter().zip(baseline).map(|(m, b)| m - b).collect();
    median(&diffs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_odd_even_empty() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&[7.5]), Some(7.5));
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[1.0, f64::NAN]), None);
    }

    #[test]
    fn ratio_guards_zero_baseline() {
        assert_eq!(ratio(97.0, 100.0), Some(0.97));
        assert_eq!(ratio(1.0, 0.0), None);
        assert_eq!(ratio(f64::INFINITY, 1.0), None);
    }

    #[test]
    fn paired_ratios_and_differences() {
        // Round 2 is slow on both sides; pairing keeps the ratio at 0.9.
        let gateway = [90.0, 45.0, 90.0];
        let direct = [100.0, 50.0, 100.0];
        let r = median_of_ratios(&gateway, &direct).unwrap();
        assert!((r - 0.9).abs() < 1e-12);
        assert_eq!(
            median_of_differences(&[1.5, 2.0, 1.2], &[1.0, 1.0, 1.0]),
            Some(0.5)
        );
        assert_eq!(median_of_ratios(&[1.0], &[1.0, 2.0]), None);
        assert_eq!(median_of_ratios(&[1.0], &[0.0]), None);
    }
}
