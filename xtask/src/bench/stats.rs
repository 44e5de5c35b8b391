//! Median and range of a figure's samples (pure).

/// What the benchmark document shows of a figure's runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    pub runs: usize,
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

impl Summary {
    /// `None` for no samples. The median of an even count is the mean of the
    /// two middle samples. NaNs are dropped (a clock that cannot be read is no sample).
    pub fn of(samples: &[f64]) -> Option<Summary> {
        let mut sorted: Vec<f64> = samples.iter().copied().filter(|s| !s.is_nan()).collect();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        let median = match n {
            0 => return None,
            _ if n % 2 == 1 => sorted[n / 2],
            _ => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
        };
        Some(Summary {
            runs: n,
            median,
            min: sorted[0],
            max: sorted[n - 1],
        })
    }
}

/// `numerator / denominator` of two medians; `None` when it means nothing
/// (a zero or negative denominator).
pub fn ratio(numerator: &Summary, denominator: &Summary) -> Option<f64> {
    (denominator.median > 0.0).then(|| numerator.median / denominator.median)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn odd_even_and_empty() {
        let odd = Summary::of(&[3.0, 1.0, 2.0]).unwrap();
        assert_eq!(
            odd,
            Summary {
                runs: 3,
                median: 2.0,
                min: 1.0,
                max: 3.0
            }
        );
        let even = Summary::of(&[4.0, 1.0, 3.0, 2.0]).unwrap();
        assert_eq!((even.median, even.min, even.max), (2.5, 1.0, 4.0));
        assert_eq!(Summary::of(&[]), None);
        assert_eq!(Summary::of(&[f64::NAN]), None);
        assert_eq!(Summary::of(&[f64::NAN, 5.0]).unwrap().runs, 1);
    }

    #[test]
    fn ratio_of_medians() {
        let a = Summary::of(&[10.0, 30.0, 20.0]).unwrap();
        let b = Summary::of(&[4.0, 5.0, 6.0]).unwrap();
        assert_eq!(ratio(&a, &b), Some(4.0));
        let zero = Summary::of(&[0.0]).unwrap();
        assert_eq!(ratio(&a, &zero), None);
    }
}
