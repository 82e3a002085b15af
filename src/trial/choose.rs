//! The users' decision rules (docs/users.md, "The loop placer automates", step 5): a profile
//! must load and survive the long prompt; among those the fastest for the workload; equally
//! fast → aggressive; an aggressive profile that fails → moderate, and a re-solve with the
//! margin learned from the failure.

use super::{Kind, TrialResult};
use serde::Serialize;

/// Smallest relative difference of request time that is not a tie, when the two measured
/// turns of the workload agree more closely than this.
pub const MIN_TIE: f64 = 0.01;

/// Largest relative difference that still counts as a tie: a noisy measurement (a busy machine,
/// turns 2× apart) makes the spread large, but the medians still rank the candidates, and a tie
/// that wide would hand the choice to a profile twice as slow.
pub const MAX_TIE: f64 = 0.05;

/// The tolerance of comparing two results: the larger of their spreads, within
/// [`MIN_TIE`]..=[`MAX_TIE`].
pub fn tie_tolerance(a: &TrialResult, b: &TrialResult) -> f64 {
    a.spread()
        .unwrap_or(0.0)
        .max(b.spread().unwrap_or(0.0))
        .clamp(MIN_TIE, MAX_TIE)
}

/// What was chosen and why.
#[derive(Debug, Clone, Serialize)]
pub struct Choice {
    /// Index into the results.
    pub winner: Option<usize>,
    /// One line: why this one.
    pub reason: String,
    /// The exact command to re-solve with the learned margin (after an aggressive failure).
    pub resolve: Option<String>,
}

/// Apply the rules. `conf` is the models.conf path the sections came from (for the re-solve
/// command).
pub fn choose(results: &[TrialResult], conf: Option<&str>) -> Choice {
    let ok: Vec<usize> = (0..results.len())
        .filter(|&i| results[i].outcome.ok() && results[i].request_s().is_some())
        .collect();
    let failed_aggr: Vec<&TrialResult> = results
        .iter()
        .filter(|r| r.kind == Kind::Aggressive && !r.outcome.ok())
        .collect();
    let resolve = failed_aggr.first().map(|r| {
        let base = r
            .name
            .strip_suffix("-aggressive")
            .unwrap_or(r.name.as_str());
        match conf {
            Some(c) => format!("placer solve {c}:{base} --write"),
            None => format!("placer solve {base} --write"),
        }
    });
    let Some(&fastest) = ok.iter().min_by(|&&a, &&b| {
        results[a]
            .request_s()
            .unwrap_or(f64::INFINITY)
            .total_cmp(&results[b].request_s().unwrap_or(f64::INFINITY))
    }) else {
        return Choice {
            winner: None,
            reason: "no profile loaded and survived the long prompt".into(),
            resolve,
        };
    };
    let best = results[fastest].request_s().unwrap_or(f64::INFINITY);
    let tol = |i: usize| tie_tolerance(&results[i], &results[fastest]);
    let ties: Vec<usize> = ok
        .iter()
        .copied()
        .filter(|&i| results[i].request_s().unwrap_or(f64::INFINITY) <= best * (1.0 + tol(i)))
        .collect();
    // Never slower than llama.cpp's own choice measured in the same trial: a tie may go to the
    // aggressive profile only when it is not slower than the best baseline.
    let best_baseline = ok
        .iter()
        .filter(|&&i| results[i].kind == Kind::Baseline)
        .filter_map(|&i| results[i].request_s())
        .min_by(f64::total_cmp);
    let winner = ties
        .iter()
        .copied()
        .filter(|&i| {
            best_baseline.is_none_or(|b| results[i].request_s().unwrap_or(f64::INFINITY) <= b)
        })
        .find(|&i| results[i].kind == Kind::Aggressive)
        .unwrap_or(fastest);
    let w = &results[winner];
    let mut reason = if w.kind == Kind::Baseline {
        format!(
            "llama.cpp's own --fit [{}] is the fastest for the workload ({:.2} s per turn): no placement of placer's beat it in this trial, so it is the profile",
            w.name,
            w.request_s().unwrap_or(0.0)
        )
    } else if ties.len() > 1 && winner != fastest {
        format!(
            "[{}] ties with the fastest [{}] within the measurement spread ({:.1}%): aggressive wins a tie",
            w.name,
            results[fastest].name,
            100.0 * tol(winner)
        )
    } else if ok.len() == 1 {
        format!(
            "[{}] is the only profile that loaded and survived the long prompt",
            w.name
        )
    } else {
        let vs = best_baseline
            .map(|b| {
                format!(
                    ", {:.2}× the best --fit baseline's turn time",
                    b / w.request_s().unwrap_or(f64::INFINITY)
                )
            })
            .unwrap_or_default();
        format!(
            "[{}] is the fastest for the workload ({:.2} s per turn{vs})",
            w.name,
            w.request_s().unwrap_or(0.0)
        )
    };
    if let Some(a) = failed_aggr.first() {
        reason.push_str(&format!(
            "; aggressive [{}] failed ({}): the margin learned from it is in the calibration, re-solve with `{}`",
            a.name,
            a.outcome.label(),
            resolve.as_deref().unwrap_or("placer solve")
        ));
    }
    Choice {
        winner: Some(winner),
        reason,
        resolve,
    }
}

#[cfg(test)]
mod tests {
    use super::super::{measure::Measurement, measure::Workload, Outcome};
    use super::*;

    fn r(name: &str, t: &[f64], outcome: Outcome) -> TrialResult {
        TrialResult {
            name: name.into(),
            kind: Kind::of_name(name),
            outcome,
            failure_lines: vec![],
            measurements: t
                .iter()
                .enumerate()
                .map(|(i, s)| Measurement {
                    what: if i == 0 { "workload" } else { "workload-2" }.into(),
                    cache_n: 0,
                    prompt_n: 100,
                    prompt_ms: s * 500.0,
                    predicted_n: 10,
                    predicted_ms: s * 500.0,
                })
                .collect(),
            memory: vec![],
            load_s: None,
            port: None,
            argv: vec![],
            predicted: None,
            workload: Workload {
                prefix: 0,
                chunk: 100,
                gen: 10,
            },
            long_tokens: 0,
            run_dir: None,
            build: None,
            ports_skipped: vec![],
            prefix: super::super::measure::PrefixSource::None,
        }
    }

    #[test]
    fn fastest_wins_tie_goes_to_aggressive() {
        let a = r("x-aggressive", &[1.00, 1.00], Outcome::Ok);
        let m = r("x-moderate", &[0.995, 0.995], Outcome::Ok);
        let c = choose(&[a.clone(), m.clone()], Some("m.conf"));
        assert_eq!(c.winner, Some(0), "{}", c.reason);
        assert!(c.reason.contains("tie"));
        let m = r("x-moderate", &[0.5, 0.5], Outcome::Ok);
        let c = choose(&[a, m], Some("m.conf"));
        assert_eq!(c.winner, Some(1));
        assert!(c.resolve.is_none());
    }

    #[test]
    fn never_slower_than_the_best_baseline() {
        let a = r("x-aggressive", &[1.00, 1.00], Outcome::Ok);
        let mut b = r("x~fit-tuned", &[0.995, 0.995], Outcome::Ok);
        b.kind = Kind::Baseline;
        // Within the spread, but slower than the baseline: the baseline wins.
        let c = choose(&[a.clone(), b.clone()], None);
        assert_eq!(c.winner, Some(1), "{}", c.reason);
        assert!(c.reason.contains("--fit"), "{}", c.reason);
        // Faster than the baseline: aggressive, with the ratio.
        let mut slow = b.clone();
        slow.measurements.iter_mut().for_each(|m| {
            m.prompt_ms *= 1.2;
            m.predicted_ms *= 1.2;
        });
        let c = choose(&[a, slow], None);
        assert_eq!(c.winner, Some(0));
        assert!(c.reason.contains("1.19×"), "{}", c.reason);
    }

    /// The confirmation pairs the fastest candidate with the fastest of the other side (a
    /// `--fit` baseline against placer's), only when they are within 10 % and two more runs fit.
    #[test]
    fn the_confirmation_pairs_the_best_baseline_with_the_best_placement() {
        use crate::trial::tune::confirm_pair;
        use std::time::Duration;
        let s = Duration::from_secs;
        let a = r("x-aggressive", &[1.08, 1.08], Outcome::Ok);
        let m = r("x-moderate", &[1.02, 1.02], Outcome::Ok);
        let mut b = r("x~fit-tuned", &[1.00, 1.00], Outcome::Ok);
        b.kind = Kind::Baseline;
        let all = [a.clone(), m.clone(), b.clone()];
        assert_eq!(confirm_pair(&all, s(60), s(30), s(300)), Some((2, 1)));
        // two more runs do not fit the budget
        assert_eq!(confirm_pair(&all, s(250), s(30), s(300)), None);
        // more than 10 % apart: the first loads decide
        let mut far = b.clone();
        far.measurements.iter_mut().for_each(|x| {
            x.prompt_ms *= 0.8;
            x.predicted_ms *= 0.8;
        });
        assert_eq!(confirm_pair(&[a.clone(), far], s(0), s(30), s(300)), None);
        // no baseline (--no-baseline): nothing to confirm against
        assert_eq!(confirm_pair(&[a, m], s(0), s(30), s(300)), None);
    }

    #[test]
    fn aggressive_failure_falls_back_with_a_resolve_command() {
        let a = r(
            "x-aggressive",
            &[],
            Outcome::LoadFailed {
                why: "exit".into(),
                oom: true,
            },
        );
        let m = r("x-moderate", &[1.0, 1.0], Outcome::Ok);
        let c = choose(&[a, m], Some("models.conf"));
        assert_eq!(c.winner, Some(1));
        assert_eq!(
            c.resolve.as_deref(),
            Some("placer solve models.conf:x --write")
        );
        assert!(c.reason.contains("re-solve"));
        let none = choose(&[], None);
        assert!(none.winner.is_none());
    }
}
