//! Pure rate arithmetic of the quota benchmark: when an overload started and ended in
//! a series of cumulative samples, sliding-window rates, when those rates settled
//! into a band around the quota (time to converge), and the steady rate after that.
//!
//! A series is cumulative amounts (bytes or records) at increasing times in seconds,
//! as sampled from the pool or printed by a tool.

use serde::Serialize;

/// One cumulative reading.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Point {
    pub t: f64,
    pub amount: f64,
}

/// The rate over `[start, end]`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Window {
    pub start: f64,
    pub end: f64,
    /// Amount per second over the window.
    pub rate: f64,
}

/// Bands tried, narrowest first, when reporting how close the rate settled.
pub const BANDS: [f64; 5] = [0.05, 0.10, 0.20, 0.30, 0.50];

/// Slack on the window width: sample times jitter by a few milliseconds, so a pair
/// 0.99 s apart still counts as a 1 s window.
const WIDTH_SLACK: f64 = 0.02;

/// When the amount started and stopped moving: `start` is halfway between the last
/// reading still at `base` and the first one above it (the first records landed in
/// between); `last_active` is the last reading before `base + total` was reached
/// (every reading up to it was taken while the load was still arriving); `done` is
/// the first reading at or past `base + total`. `None` when the series never moves,
/// or never reaches the total.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Span {
    pub start: f64,
    pub last_active: f64,
    pub done: f64,
}

pub fn span(points: &[Point], base: f64, total: f64) -> Option<Span> {
    let first = points.iter().position(|p| p.amount > base)?;
    let start = if first == 0 {
        points[0].t
    } else {
        (points[first - 1].t + points[first].t) / 2.0
    };
    let done_i = points.iter().position(|p| p.amount >= base + total)?;
    let done = points[done_i].t;
    let last_active = if done_i == 0 {
        done
    } else {
        points[done_i - 1].t
    };
    Some(Span {
        start,
        last_active,
        done,
    })
}

/// Sliding windows at least `width` seconds wide: one per reading, from it to the first
/// later reading `width` (less a little slack) after it. Only readings within
/// `[from, to]` are used.
pub fn windows(points: &[Point], width: f64, from: f64, to: f64) -> Vec<Window> {
    let p: Vec<&Point> = points
        .iter()
        .filter(|p| p.t >= from - 1e-9 && p.t <= to + 1e-9)
        .collect();
    let mut out = Vec::new();
    for (i, a) in p.iter().enumerate() {
        let Some(b) = p[i + 1..].iter().find(|b| b.t - a.t >= width - WIDTH_SLACK) else {
            break;
        };
        out.push(Window {
            start: a.t,
            end: b.t,
            rate: (b.amount - a.amount) / (b.t - a.t),
        });
    }
    out
}

/// Whether `rate` is within ±`band` (a fraction) of `target`.
pub fn within(rate: f64, target: f64, band: f64) -> bool {
    target > 0.0 && ((rate / target) - 1.0).abs() <= band + 1e-12
}

/// Seconds from `start` to the end of the first window from which on every window
/// stays within ±`band` of `target`, or `None` if the last window is outside the
/// band (or there is none). The earliest possible answer is one window width.
pub fn converged_after(windows: &[Window], start: f64, target: f64, band: f64) -> Option<f64> {
    let mut first_in = None;
    for (i, w) in windows.iter().enumerate() {
        if within(w.rate, target, band) {
            first_in.get_or_insert(i);
        } else {
            first_in = None;
        }
    }
    first_in.map(|i| windows[i].end - start)
}

/// The narrowest of [`BANDS`] the windows settled into, with its time to converge.
pub fn nearest_band(windows: &[Window], start: f64, target: f64) -> Option<(f64, f64)> {
    BANDS
        .iter()
        .find_map(|b| converged_after(windows, start, target, *b).map(|t| (*b, t)))
}

/// The average rate between the first reading at or after `from` and the last one at
/// or before `to`; `None` with fewer than two such readings.
pub fn average_rate(points: &[Point], from: f64, to: f64) -> Option<Window> {
    let a = points.iter().find(|p| p.t >= from - 1e-9)?;
    let b = points.iter().rev().find(|p| p.t <= to + 1e-9)?;
    (b.t > a.t).then(|| Window {
        start: a.t,
        end: b.t,
        rate: (b.amount - a.amount) / (b.t - a.t),
    })
}

/// Where the steady state starts, in seconds after the overload started: after
/// convergence into ±`band` when that came, but never before `settle` (the quota's
/// one-second burst and the client's reaction) nor after half of the `active`
/// seconds (so at least half the run is averaged, even if it never converged).
pub fn steady_from(converged: Option<f64>, settle: f64, active: f64) -> f64 {
    converged.unwrap_or(settle).max(settle).min(active / 2.0)
}

/// Largest relative deviation of the window rates from `target` (0.07 = 7%).
pub fn max_deviation(windows: &[Window], target: f64) -> Option<f64> {
    windows
        .iter()
        .map(|w| (w.rate / target - 1.0).abs())
        .max_by(f64::total_cmp)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(rates: &[(f64, f64)], step: f64) -> Vec<Point> {
        // (duration, rate) segments sampled every `step` seconds, starting at 0 with 0.
        let mut out = vec![Point {
            t: 0.0,
            amount: 0.0,
        }];
        let mut t = 0.0;
        let mut amount = 0.0;
        for &(dur, rate) in rates {
            let steps = (dur / step).round() as usize;
            for _ in 0..steps {
                t += step;
                amount += rate * step;
                out.push(Point { t, amount });
            }
        }
        out
    }

    #[test]
    fn span_finds_start_and_end() {
        let pts = series(&[(1.0, 0.0), (4.0, 100.0), (1.0, 0.0)], 0.25);
        let s = span(&pts, 0.0, 400.0).unwrap();
        assert!((s.start - 1.125).abs() < 1e-9, "{s:?}");
        assert!((s.done - 5.0).abs() < 1e-9, "{s:?}");
        assert!((s.last_active - 4.75).abs() < 1e-9, "{s:?}");
        assert!(span(&pts, 0.0, 401.0).is_none());
        assert!(span(&series(&[(2.0, 0.0)], 0.5), 0.0, 1.0).is_none());
        // A base already in the topic is skipped.
        let shifted: Vec<Point> = pts
            .iter()
            .map(|p| Point {
                t: p.t,
                amount: p.amount + 50.0,
            })
            .collect();
        assert_eq!(span(&shifted, 50.0, 400.0), Some(s));
    }

    #[test]
    fn windows_slide_one_per_reading() {
        let pts = series(&[(3.0, 10.0)], 0.5);
        let w = windows(&pts, 1.0, 0.0, 3.0);
        assert_eq!(w.len(), 5); // starts 0, 0.5, 1, 1.5, 2
        assert!(w
            .iter()
            .all(|w| (w.rate - 10.0).abs() < 1e-9 && (w.end - w.start - 1.0).abs() < 1e-9));
        assert!(windows(&pts, 1.0, 1.0, 1.5).is_empty());
        // A missed reading widens one window rather than dropping it.
        let mut gap = pts.clone();
        gap.remove(3);
        let w = windows(&gap, 1.0, 0.0, 3.0);
        assert!(w.iter().any(|w| (w.end - w.start - 1.5).abs() < 1e-9));
    }

    #[test]
    fn convergence_needs_every_later_window_in_band() {
        // Burst at 2x for a second, then 1.3x for 2 s, then at the quota.
        let pts = series(&[(1.0, 200.0), (2.0, 130.0), (5.0, 100.0)], 0.25);
        let w = windows(&pts, 1.0, 0.0, 8.0);
        // The first window wholly at the quota is [3, 4]: 4 s after the start.
        assert_eq!(converged_after(&w, 0.0, 100.0, 0.05), Some(4.0));
        // Within ±20% from [2.5, 3.5] on (115).
        assert_eq!(converged_after(&w, 0.0, 100.0, 0.20), Some(3.5));
        assert_eq!(nearest_band(&w, 0.0, 100.0), Some((0.05, 4.0)));
        // A late excursion resets it.
        let pts = series(&[(3.0, 100.0), (1.0, 130.0), (2.0, 100.0)], 0.25);
        let w = windows(&pts, 1.0, 0.0, 6.0);
        assert_eq!(converged_after(&w, 0.0, 100.0, 0.05), Some(5.0));
        // Never settling: the nearest band it did reach is reported.
        let pts = series(&[(4.0, 100.0), (4.0, 115.0)], 0.25);
        let w = windows(&pts, 1.0, 0.0, 8.0);
        assert_eq!(converged_after(&w, 0.0, 100.0, 0.05), None);
        assert_eq!(nearest_band(&w, 0.0, 100.0).map(|b| b.0), Some(0.20));
        assert_eq!(converged_after(&[], 0.0, 100.0, 0.05), None);
    }

    #[test]
    fn band_edges_and_deviation() {
        assert!(within(105.0, 100.0, 0.05));
        assert!(within(95.0, 100.0, 0.05));
        assert!(!within(105.1, 100.0, 0.05));
        assert!(!within(1.0, 0.0, 0.05));
        let w = [
            Window {
                start: 0.0,
                end: 1.0,
                rate: 93.0,
            },
            Window {
                start: 1.0,
                end: 2.0,
                rate: 104.0,
            },
        ];
        assert!((max_deviation(&w, 100.0).unwrap() - 0.07).abs() < 1e-9);
        assert_eq!(max_deviation(&[], 100.0), None);
    }

    #[test]
    fn average_and_steady_start() {
        let pts = series(&[(2.0, 200.0), (10.0, 100.0)], 0.25);
        let a = average_rate(&pts, 2.0, 12.0).unwrap();
        assert!((a.rate - 100.0).abs() < 1e-9, "{a:?}");
        let whole = average_rate(&pts, 0.0, 12.0).unwrap();
        assert!((whole.rate - 1400.0 / 12.0).abs() < 1e-9);
        assert!(average_rate(&pts, 13.0, 14.0).is_none());
        // After convergence, but not before the settle time nor past half the run.
        assert_eq!(steady_from(Some(4.0), 3.0, 20.0), 4.0);
        assert_eq!(steady_from(Some(1.0), 3.0, 20.0), 3.0);
        assert_eq!(steady_from(None, 3.0, 20.0), 3.0);
        assert_eq!(steady_from(Some(15.0), 3.0, 20.0), 10.0);
        // A run shorter than twice the settle time still averages its second half.
        assert_eq!(steady_from(None, 3.0, 4.0), 2.0);
    }
}
