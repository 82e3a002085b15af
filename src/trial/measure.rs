//! The requests a trial sends and the speeds read from the server's own answer.
//!
//! `POST /completion` (`tools/server/server.cpp: main` routes it to
//! `server-context.cpp: server_routes::handle_completions_impl`) answers with a `timings` object
//! (`tools/server/server-common.cpp: server_slot_stats::to_json`): `cache_n` (prompt tokens
//! reused from the slot's cache), `prompt_n` / `prompt_ms` (tokens processed and their time),
//! `predicted_n` / `predicted_ms` (tokens generated and their time). Prompts are token arrays
//! cut from `POST /tokenize` of a deterministic text (`server-context.cpp: post_tokenize`), so
//! every count is exact; `n_predict` with `ignore_eos` and a fixed seed makes the generated
//! count exact too. The per-slot context comes from `GET /v1/models` (`meta.n_ctx`,
//! `server-context.cpp: server_routes` model list).

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The solve's workload as requests: a cached prefix (a long-lived conversation's context,
/// sent first with `cache_prompt`), then the measured turn that appends `chunk` new tokens and
/// generates `gen`. `prefix` = 0 is a fresh prompt of `chunk` tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Workload {
    pub prefix: u32,
    pub chunk: u32,
    pub gen: u32,
}

impl Workload {
    /// From the solve's request (`solver::SolveRequest::tokens`: the workload preset and its
    /// overrides): the cached prefix, the turn's new prompt tokens and its generated tokens,
    /// exactly what the solve priced; a decode depth set beyond them (`--depth`) grows the
    /// prefix.
    pub fn from_request(
        req: &crate::solver::SolveRequest,
        anatomy: &crate::anatomy::Anatomy,
    ) -> Workload {
        let (prefix, chunk, gen) = req.tokens(anatomy);
        let prefix = match req.decode_depth {
            Some(d) => prefix.max(d.saturating_sub(chunk).saturating_sub(gen / 2)),
            None => prefix,
        };
        Workload { prefix, chunk, gen }
    }

    /// Capped so that prefix + chunk + gen fits a slot of `n_ctx` tokens (the prefix gives way
    /// first).
    pub fn fit_into(self, n_ctx: u32) -> Workload {
        let room = n_ctx.saturating_sub(8);
        let gen = self.gen.min(room / 2);
        let chunk = self.chunk.min(room - gen);
        let prefix = self.prefix.min(room - gen - chunk);
        Workload { prefix, chunk, gen }
    }
}

/// One request's measurement, from the response's `timings`: the type run records read back
/// from a trial manifest (src/calibrate/records.rs).
pub use crate::calibrate::records::TrialRequest as Measurement;

impl Measurement {
    pub fn prefill_tps(&self) -> Option<f64> {
        (self.prompt_ms > 0.0 && self.prompt_n > 0)
            .then(|| self.prompt_n as f64 * 1000.0 / self.prompt_ms)
    }
    pub fn decode_tps(&self) -> Option<f64> {
        (self.predicted_ms > 0.0 && self.predicted_n > 0)
            .then(|| self.predicted_n as f64 * 1000.0 / self.predicted_ms)
    }
    /// Server-side time of the request, seconds.
    pub fn request_s(&self) -> f64 {
        (self.prompt_ms + self.predicted_ms) / 1000.0
    }
}

/// A llama-server's HTTP API.
pub struct Client {
    base: String,
    agent: ureq::Agent,
}

/// Words of the synthetic prompt text: ordinary English and code words, so the tokenizer sees
/// the kind of text the users send (a deterministic stream, not a real document).
const WORDS: &[&str] = &[
    "the",
    "function",
    "returns",
    "a",
    "value",
    "when",
    "called",
    "with",
    "arguments",
    "let",
    "mut",
    "buffer",
    "size",
    "model",
    "layer",
    "device",
    "memory",
    "fn",
    "struct",
    "impl",
    "for",
    "in",
    "if",
    "else",
    "match",
    "Some",
    "None",
    "error",
    "result",
    "vector",
    "index",
    "cache",
    "token",
    "prompt",
    "context",
    "expert",
    "tensor",
    "weights",
    "split",
    "offload",
    "kernel",
    "thread",
    "batch",
    "queue",
    "server",
    "request",
    "response",
    "parse",
    "write",
    "read",
    "file",
    "path",
    "config",
    "test",
    "assert",
    "equal",
    "length",
    "count",
    "sum",
];

/// `n_words` words from a linear congruential stream seeded by `seed`, with punctuation and
/// line breaks.
pub fn synthetic_text(seed: u64, n_words: usize) -> String {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut s = String::with_capacity(n_words * 7);
    for i in 0..n_words {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let w = WORDS[((x >> 33) as usize) % WORDS.len()];
        s.push_str(w);
        s.push(match (x >> 20) % 23 {
            0 => '\n',
            1 | 2 => '.',
            3 => ',',
            _ => ' ',
        });
        if i % 97 == 96 {
            s.push('\n');
        }
    }
    s
}

impl Client {
    pub fn new(base: String, request_timeout: Duration) -> Client {
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(5))
            .timeout(request_timeout)
            .build();
        Client { base, agent }
    }

    fn post(&self, path: &str, body: &serde_json::Value) -> anyhow::Result<serde_json::Value> {
        let url = format!("{}{path}", self.base);
        let resp = match self
            .agent
            .post(&url)
            .set("Content-Type", "application/json")
            .send_string(&body.to_string())
        {
            Ok(r) => r,
            Err(ureq::Error::Status(code, r)) => {
                let text = r.into_string().unwrap_or_default();
                anyhow::bail!(
                    "POST {path}: HTTP {code}: {}",
                    text.chars().take(300).collect::<String>()
                )
            }
            Err(e) => anyhow::bail!("POST {path}: {e}"),
        };
        let text = resp.into_string()?;
        Ok(serde_json::from_str(&text)?)
    }

    /// Tokens of `text` as this server's model tokenizes it (no special tokens added).
    pub fn tokenize(&self, text: &str) -> anyhow::Result<Vec<i64>> {
        let v = self.post("/tokenize", &serde_json::json!({ "content": text }))?;
        let toks = v
            .get("tokens")
            .and_then(|t| t.as_array())
            .ok_or_else(|| anyhow::anyhow!("/tokenize answered without `tokens`"))?;
        Ok(toks.iter().filter_map(|t| t.as_i64()).collect())
    }

    /// Exactly `n` tokens of synthetic text for stream `seed`.
    pub fn tokens(&self, seed: u64, n: u32) -> anyhow::Result<Vec<i64>> {
        let mut words = (n as usize).max(16);
        loop {
            let t = self.tokenize(&synthetic_text(seed, words))?;
            if t.len() >= n as usize {
                return Ok(t[..n as usize].to_vec());
            }
            anyhow::ensure!(words < 1 << 24, "/tokenize returns too few tokens");
            words *= 2;
        }
    }

    /// Context of one slot (`GET /v1/models` → `data[0].meta.n_ctx`), when the server says.
    pub fn slot_ctx(&self) -> Option<u32> {
        let r = self
            .agent
            .get(&format!("{}/v1/models", self.base))
            .call()
            .ok()?;
        let v: serde_json::Value = serde_json::from_str(&r.into_string().ok()?).ok()?;
        v.pointer("/data/0/meta/n_ctx")?.as_u64().map(|n| n as u32)
    }

    /// Save slot 0's cache to `file` in the server's `--slot-save-path` (`POST
    /// /slots/0?action=save`); the tokens saved (`n_saved`).
    pub fn slot_save(&self, file: &str) -> anyhow::Result<u32> {
        self.slot_action("save", file, "n_saved")
    }

    /// Restore slot 0's cache from `file` (`POST /slots/0?action=restore`; llama.cpp checks that
    /// the saved cells fit this context: `tools/server/server-context.cpp`,
    /// `SERVER_TASK_TYPE_SLOT_RESTORE`); the tokens restored (`n_restored`).
    pub fn slot_restore(&self, file: &str) -> anyhow::Result<u32> {
        self.slot_action("restore", file, "n_restored")
    }

    fn slot_action(&self, action: &str, file: &str, count: &str) -> anyhow::Result<u32> {
        let v = self.post(
            &format!("/slots/0?action={action}"),
            &serde_json::json!({ "filename": file }),
        )?;
        v.get(count)
            .and_then(|n| n.as_u64())
            .map(|n| n as u32)
            .ok_or_else(|| anyhow::anyhow!("slot {action} answered without `{count}`"))
    }

    /// One completion of `prompt` generating exactly `n_predict` tokens.
    pub fn complete(
        &self,
        what: &str,
        prompt: &[i64],
        n_predict: u32,
        cache_prompt: bool,
    ) -> anyhow::Result<Measurement> {
        let body = serde_json::json!({
            "prompt": prompt,
            "n_predict": n_predict,
            "ignore_eos": true,
            "cache_prompt": cache_prompt,
            "seed": 1,
            "temperature": 0.0,
            "id_slot": 0,
            "stream": false,
        });
        let v = self.post("/completion", &body)?;
        let t = v
            .get("timings")
            .ok_or_else(|| anyhow::anyhow!("/completion answered without `timings`"))?;
        let u = |k: &str| t.get(k).and_then(|x| x.as_u64()).unwrap_or(0) as u32;
        let f = |k: &str| t.get(k).and_then(|x| x.as_f64()).unwrap_or(0.0);
        Ok(Measurement {
            what: what.to_string(),
            cache_n: u("cache_n"),
            prompt_n: u("prompt_n"),
            prompt_ms: f("prompt_ms"),
            predicted_n: u("predicted_n"),
            predicted_ms: f("predicted_ms"),
        })
    }
}

/// What to send, in order.
#[derive(Debug, Clone)]
pub struct Plan {
    pub workload: Workload,
    /// The long prompt (fresh, not cached), tokens.
    pub long: u32,
    /// Generated tokens after the short and the long prompt.
    pub gen_short: u32,
    /// Workload turns: at least `min_turns` (2: a spread needs two), more until their spread is
    /// at most `spread_target`, at most `max_turns`.
    pub turns: Turns,
    /// A file in the server's `--slot-save-path` holding the cached prefix as an earlier
    /// candidate of the same trial left it: restored instead of prefilled when it holds exactly
    /// the prefix, written after a prefill otherwise. `None`: always prefill.
    pub prefix_file: Option<String>,
}

/// How the cached prefix got into the slot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PrefixSource {
    /// No prefix in this workload.
    #[default]
    None,
    /// Prefilled by this server (the `prefix` measurement).
    Prefilled,
    /// Restored from an earlier candidate's slot save (not timed: the turns measure the same
    /// new chunk at the same depth either way).
    Restored,
}

/// How often the workload's turn is repeated: until the spread is known.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Turns {
    pub min_turns: u32,
    pub max_turns: u32,
    /// Relative spread ((max − min) / median of the turns' times) that ends the repeats early.
    pub spread_target: f64,
}

impl Default for Turns {
    /// Two turns, up to four while they differ by more than 3 %.
    fn default() -> Turns {
        Turns {
            min_turns: 2,
            max_turns: 4,
            spread_target: 0.03,
        }
    }
}

/// Seeds of the workload's new chunks, one per turn (a different chunk each time, so only the
/// prefix is reused from the slot's cache).
const TURN_SEEDS: [u64; 8] = [31, 41, 61, 71, 81, 91, 101, 111];

/// Name of the k-th workload turn (0-based): `workload`, `workload-2`, …
pub fn turn_name(k: usize) -> String {
    if k == 0 {
        "workload".into()
    } else {
        format!("workload-{}", k + 1)
    }
}

/// The spread of a set of turn times: (max − min) / median; None for fewer than two.
pub fn spread_of(times: &[f64]) -> Option<f64> {
    if times.len() < 2 {
        return None;
    }
    let med = median(times)?;
    let (lo, hi) = times
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &t| {
            (a.min(t), b.max(t))
        });
    (med > 0.0).then(|| (hi - lo) / med)
}

/// The median of `v` (mean of the middle two for an even count); None when empty.
pub fn median(v: &[f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    Some(if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    })
}

/// The users' short prompt: a question of a few dozen tokens.
pub const SHORT_PROMPT: u32 = 32;

/// The phases of [`run_plan`], for progress display.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Short,
    Prefix,
    Workload,
    Long,
}

/// Send the short prompt (the warm-up), the workload's turns (prefix cached once, then two to
/// [`Turns::max_turns`] turns with different new chunks, repeated until their spread is known:
/// [`Turns`]), and the long prompt last
/// (fresh, so the server log's last timing lines are a plain prompt + generation, what
/// `placer calibrate` reads). Stops at the first failure, returning what was measured so far.
pub fn run_plan(
    c: &Client,
    plan: &Plan,
    mut phase: impl FnMut(Phase),
) -> (Vec<Measurement>, PrefixSource, Option<(Phase, String)>) {
    let mut out = Vec::new();
    let w = plan.workload;
    let mut source = PrefixSource::None;
    let mut step = |p: Phase, out: &mut Vec<Measurement>| -> anyhow::Result<()> {
        phase(p);
        match p {
            Phase::Short => {
                let t = c.tokens(11, SHORT_PROMPT)?;
                out.push(c.complete("short", &t, plan.gen_short, false)?);
            }
            Phase::Prefix => {
                if w.prefix > 0 {
                    // The save holds the prefix and, where the server keeps it, the one token
                    // generated after it; the next turn's prompt diverges right after the prefix.
                    let restored = plan.prefix_file.as_deref().is_some_and(|f| {
                        c.slot_restore(f)
                            .is_ok_and(|n| (w.prefix..=w.prefix + 1).contains(&n))
                    });
                    if restored {
                        source = PrefixSource::Restored;
                    } else {
                        let t = c.tokens(21, w.prefix)?;
                        // The prompt plus the one generated token are in the slot afterwards.
                        out.push(c.complete("prefix", &t, 1, true)?);
                        source = PrefixSource::Prefilled;
                        if let Some(f) = &plan.prefix_file {
                            // A failed save costs the next candidate a prefill, nothing else.
                            let _ = c.slot_save(f);
                        }
                    }
                }
            }
            Phase::Workload => {
                let prefix = if w.prefix > 0 {
                    c.tokens(21, w.prefix)?
                } else {
                    Vec::new()
                };
                let t = plan.turns;
                let max = t.max_turns.clamp(1, TURN_SEEDS.len() as u32) as usize;
                let min = (t.min_turns.max(1) as usize).min(max);
                let mut times = Vec::new();
                let mut i = 0;
                for seed in TURN_SEEDS.iter().take(max + 1) {
                    if i >= max {
                        break;
                    }
                    if i >= min && spread_of(&times).is_some_and(|s| s <= t.spread_target) {
                        break;
                    }
                    let mut toks = prefix.clone();
                    toks.extend(c.tokens(*seed, w.chunk)?);
                    let mut m = c.complete(&turn_name(i), &toks, w.gen, w.prefix > 0)?;
                    if i == 0 && source == PrefixSource::Restored && m.cache_n < w.prefix {
                        // The server did not continue from the restored slot and reprocessed
                        // the prompt: this was a prefill, not a turn. The turns that follow
                        // continue from it.
                        m.what = "prefix".into();
                        source = PrefixSource::Prefilled;
                        out.push(m);
                        continue;
                    }
                    times.push(m.request_s());
                    out.push(m);
                    i += 1;
                }
            }
            Phase::Long => {
                let t = c.tokens(51, plan.long)?;
                out.push(c.complete("long", &t, plan.gen_short, false)?);
            }
        }
        Ok(())
    };
    for p in [Phase::Short, Phase::Prefix, Phase::Workload, Phase::Long] {
        if let Err(e) = step(p, &mut out) {
            return (out, source, Some((p, format!("{e:#}"))));
        }
    }
    (out, source, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synthetic_text_is_deterministic_and_seeded() {
        assert_eq!(synthetic_text(1, 50), synthetic_text(1, 50));
        assert_ne!(synthetic_text(1, 50), synthetic_text(2, 50));
        assert!(synthetic_text(3, 200).split_whitespace().count() >= 150);
    }

    /// The trial's workload is the solve's: `--prefix` sets the cached prefix (it took only
    /// `--depth` before, which can grow the preset's half-context prefix but not shrink it).
    #[test]
    fn the_prefix_is_the_solves() {
        let a = crate::anatomy::from_gguf(&crate::catalog::load_model("glm-q8", None).unwrap())
            .unwrap();
        let req = |prefix: Option<u32>, depth: Option<u32>| crate::solver::SolveRequest {
            ctx: 32768,
            prefix,
            prompt: Some(512),
            gen: Some(128),
            decode_depth: depth,
            ..Default::default()
        };
        let w = Workload::from_request(&req(Some(2048), None), &a);
        assert_eq!((w.prefix, w.chunk, w.gen), (2048, 512, 128));
        assert_eq!(Workload::from_request(&req(None, None), &a).prefix, 16384);
        assert_eq!(
            Workload::from_request(&req(Some(2048), Some(8192)), &a).prefix,
            8192 - 512 - 64
        );
    }

    #[test]
    fn workload_fits_a_slot() {
        let w = Workload {
            prefix: 60000,
            chunk: 4000,
            gen: 300,
        }
        .fit_into(4096);
        assert!(w.prefix + w.chunk + w.gen <= 4096);
        assert_eq!(w.gen, 300);
        let m = Measurement {
            what: "x".into(),
            cache_n: 0,
            prompt_n: 100,
            prompt_ms: 50.0,
            predicted_n: 10,
            predicted_ms: 100.0,
        };
        assert_eq!(m.prefill_tps(), Some(2000.0));
        assert_eq!(m.decode_tps(), Some(100.0));
        assert!((m.request_s() - 0.15).abs() < 1e-9);
    }
}
