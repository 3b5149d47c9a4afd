//! Means with 95% intervals over simulated users (Student's t).

/// The mean of `xs` and the half-width of its 95% interval (0 with fewer than two values).
pub fn mean_ci(xs: &[f32]) -> (f32, f32) {
    let n = xs.len();
    if n == 0 {
        return (0.0, 0.0);
    }
    let mean = xs.iter().map(|x| f64::from(*x)).sum::<f64>() / n as f64;
    if n < 2 {
        return (mean as f32, 0.0);
    }
    let var = xs
        .iter()
        .map(|x| (f64::from(*x) - mean).powi(2))
        .sum::<f64>()
        / (n - 1) as f64;
    let half = t975(n - 1) * (var / n as f64).sqrt();
    (mean as f32, half as f32)
}

/// The 0.975 quantile of Student's t with `df` degrees of freedom (Cornish-Fisher expansion;
/// within 0.01 of the exact value from 3 degrees of freedom on).
pub fn t975(df: usize) -> f64 {
    let z = 1.959_964f64;
    let v = df.max(1) as f64;
    z + (z.powi(3) + z) / (4.0 * v)
        + (5.0 * z.powi(5) + 16.0 * z.powi(3) + 3.0 * z) / (96.0 * v * v)
        + (3.0 * z.powi(7) + 19.0 * z.powi(5) + 17.0 * z.powi(3) - 15.0 * z) / (384.0 * v.powi(3))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn t_quantiles_match_the_tables() {
        for (df, t) in [
            (4, 2.776),
            (9, 2.262),
            (39, 2.023),
            (59, 2.001),
            (1000, 1.962),
        ] {
            assert!((t975(df) - t).abs() < 0.01, "df {df}: {}", t975(df));
        }
    }

    #[test]
    fn intervals_shrink_with_more_users_and_centre_on_the_mean() {
        let few: Vec<f32> = (0..10).map(|i| (i % 2) as f32).collect();
        let many: Vec<f32> = (0..100).map(|i| (i % 2) as f32).collect();
        let (m1, h1) = mean_ci(&few);
        let (m2, h2) = mean_ci(&many);
        assert!((m1 - 0.5).abs() < 1e-6 && (m2 - 0.5).abs() < 1e-6);
        assert!(h2 < h1 && h2 > 0.0);
        assert_eq!(mean_ci(&[0.3]), (0.3, 0.0));
    }
}
