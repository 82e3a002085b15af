//! `hf:user/repo[:QUANT]`: the file llama.cpp's `-hf user/repo[:QUANT]` would load, chosen by
//! llama.cpp's own rules (b11434 tree):
//!
//! - `common/download.cpp:common_download_split_repo_tag`: the tag is what follows the last `:`;
//!   the repository must be exactly `user/model`.
//! - `common/hf-cache.cpp:is_valid_repo_id`: `[A-Za-z0-9_]` and `/ . -` between them, one `/`.
//! - `common/hf-cache.cpp:get_repo_commit`: `GET {endpoint}api/models/{repo}/refs`, the commit of
//!   branch `main` (else the first valid branch).
//! - `common/hf-cache.cpp:get_repo_files`: `GET {endpoint}api/models/{repo}/tree/{commit}?recursive=true`,
//!   the entries of type `file`; each file's URL is `{endpoint}{repo}/resolve/{commit}/{path}`.
//! - `common/download.cpp:find_best_model`: the first file (in the listing's order) that is a
//!   model (`gguf_filename_is_model`: `.gguf`, no mmproj / imatrix / mtp- / eagle3- / dflash- /
//!   dspark- in its name) and matches the regex `TAG[.-]` case-insensitively, skipping shards
//!   other than the first; with no tag, `Q4_K_M`, then `Q8_0`, then the first model file.
//! - `common/download.cpp:get_split_files`: the shards of a split model are the files with the
//!   same prefix and count (`get_gguf_split_info`: `PREFIX-%05d-of-%05d.gguf`).
//! - `common/common.cpp:common_get_model_endpoint`: `MODEL_ENDPOINT`, else `HF_ENDPOINT`, else
//!   `https://huggingface.co/`, with a `/` added at the end.
//! - `common/hf-cache.cpp:get_cache_directory`: llama.cpp's cache is `LLAMA_CACHE`, else
//!   `HF_HUB_CACHE`, `HUGGINGFACE_HUB_CACHE`, `HF_HOME/hub`, `XDG_CACHE_HOME/huggingface/hub`,
//!   `HOME/.cache/huggingface/hub`; a repository lives in `models--user--repo/` with
//!   `refs/main` (the commit) and `snapshots/{commit}/{path}` (`get_cached_files`).

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// A parsed `hf:user/repo[:QUANT]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repo {
    pub repo: String,
    /// The quant tag as given (empty: llama.cpp's default order).
    pub tag: String,
}

impl Repo {
    /// `user/repo[:QUANT]` (without `hf:`), by `common_download_split_repo_tag` and
    /// `is_valid_repo_id`.
    pub fn parse(s: &str) -> Result<Repo> {
        let parts: Vec<&str> = s.split(':').collect();
        let tag = if parts.len() > 1 {
            parts[parts.len() - 1]
        } else {
            ""
        };
        let repo = parts[0];
        if repo.split('/').count() != 2 || !valid_repo_id(repo) {
            bail!(
                "hf:{s}: expected hf:<user>/<model>[:quant] (llama.cpp's -hf form), e.g. \
                 hf:unsloth/GLM-4.7-Flash-GGUF:Q4_K_M"
            );
        }
        if !tag.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            bail!(
                "hf:{s}: the quant tag {tag:?} may hold only letters, digits and _ (e.g. Q4_K_M)"
            );
        }
        Ok(Repo {
            repo: repo.to_string(),
            tag: tag.to_string(),
        })
    }

    /// As llama.cpp's `-hf` takes it.
    pub fn arg(&self) -> String {
        if self.tag.is_empty() {
            self.repo.clone()
        } else {
            format!("{}:{}", self.repo, self.tag)
        }
    }
}

/// `common/hf-cache.cpp:is_valid_repo_id`.
fn valid_repo_id(id: &str) -> bool {
    if id.is_empty() || id.len() > 256 {
        return false;
    }
    let (mut slash, mut special) = (0, true);
    for c in id.chars() {
        if c.is_ascii_alphanumeric() || c == '_' {
            special = false;
        } else if "/.-".contains(c) {
            if special {
                return false;
            }
            slash += (c == '/') as u32;
            special = true;
        } else {
            return false;
        }
    }
    !special && slash == 1
}

/// One file of a repository listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepoFile {
    pub path: String,
    /// Bytes, as the listing says (`lfs.size`, else `size`).
    pub size: Option<u64>,
}

/// What `-hf` resolves to: the commit and the model's files (all shards, in order).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub repo: String,
    pub tag: String,
    pub commit: String,
    pub files: Vec<RepoFile>,
}

impl Plan {
    /// `{endpoint}{repo}/resolve/{commit}/{path}` (`get_repo_files`).
    pub fn url(&self, endpoint: &str, path: &str) -> String {
        format!("{endpoint}{}/resolve/{}/{path}", self.repo, self.commit)
    }
}

/// (prefix with tag, tag upper-cased, index, count) of a file name (`get_gguf_split_info`).
pub fn split_info(path: &str) -> Option<(String, String, u32, u32)> {
    let prefix = path.strip_suffix(".gguf")?;
    let re_split = regex::Regex::new(r"(?i)^(.+)-([0-9]{5})-of-([0-9]{5})$").expect("regex");
    let (prefix, index, count) = match re_split.captures(prefix) {
        Some(m) => (m[1].to_string(), m[2].parse().ok()?, m[3].parse().ok()?),
        None => (prefix.to_string(), 1, 1),
    };
    let re_tag = regex::Regex::new(r"(?i)[-.]([A-Z0-9_]+)$").expect("regex");
    let tag = re_tag
        .captures(&prefix)
        .map(|m| m[1].to_ascii_uppercase())
        .unwrap_or_default();
    Some((prefix, tag, index, count))
}

/// `common/download.cpp:gguf_filename_is_model`.
fn is_model(path: &str) -> bool {
    if !path.ends_with(".gguf") {
        return false;
    }
    let name = path.rsplit('/').next().unwrap_or(path);
    ["mmproj", "imatrix", "mtp-", "eagle3-", "dflash-", "dspark-"]
        .iter()
        .all(|k| !name.contains(k))
}

fn first_shard_or_whole(path: &str) -> bool {
    split_info(path).is_none_or(|(_, _, index, count)| count <= 1 || index == 1)
}

/// `common/download.cpp:find_best_model`.
pub fn best_model<'a>(files: &'a [RepoFile], tag: &str) -> Option<&'a RepoFile> {
    let tags: Vec<&str> = if tag.is_empty() {
        vec!["Q4_K_M", "Q8_0"]
    } else {
        vec![tag]
    };
    for t in tags {
        // The tag is a regex in llama.cpp; Repo::parse admits only [A-Za-z0-9_], so it is literal.
        let re = regex::Regex::new(&format!("(?i){}[.-]", regex::escape(t))).ok()?;
        if let Some(f) = files
            .iter()
            .find(|f| is_model(&f.path) && re.is_match(&f.path) && first_shard_or_whole(&f.path))
        {
            return Some(f);
        }
    }
    if tag.is_empty() {
        return files
            .iter()
            .find(|f| is_model(&f.path) && first_shard_or_whole(&f.path));
    }
    None
}

/// `common/download.cpp:get_split_files`: every shard of `primary`'s model, in index order.
pub fn split_files(files: &[RepoFile], primary: &RepoFile) -> Vec<RepoFile> {
    let Some((prefix, _, _, count)) = split_info(&primary.path) else {
        return vec![primary.clone()];
    };
    if count <= 1 {
        return vec![primary.clone()];
    }
    let mut out: Vec<(u32, RepoFile)> = files
        .iter()
        .filter_map(|f| {
            let (p, _, i, c) = split_info(&f.path)?;
            (c == count && p == prefix).then(|| (i, f.clone()))
        })
        .collect();
    out.sort_by_key(|(i, _)| *i);
    out.into_iter().map(|(_, f)| f).collect()
}

/// The listing's `.gguf` files, for an error that says what there is.
pub fn gguf_names(files: &[RepoFile]) -> String {
    let names: Vec<&str> = files
        .iter()
        .filter(|f| f.path.ends_with(".gguf"))
        .map(|f| f.path.as_str())
        .take(40)
        .collect();
    if names.is_empty() {
        "no .gguf files".into()
    } else {
        names.join(", ")
    }
}

/// `get_repo_commit`: branch `main`, else the first branch with a valid commit.
pub fn commit_from_refs(json: &serde_json::Value) -> Option<String> {
    let valid = |c: &str| c.len() == 40 && c.bytes().all(|b| b.is_ascii_hexdigit());
    let mut first = None;
    for b in json.get("branches")?.as_array()? {
        let (Some(name), Some(commit)) = (
            b.get("name").and_then(|v| v.as_str()),
            b.get("targetCommit").and_then(|v| v.as_str()),
        ) else {
            continue;
        };
        if !valid(commit) || name.contains("..") {
            continue;
        }
        if name == "main" {
            return Some(commit.to_string());
        }
        first.get_or_insert_with(|| commit.to_string());
    }
    first
}

/// `get_repo_files`: the `file` entries of a tree listing, with their sizes.
pub fn files_from_tree(json: &serde_json::Value) -> Result<Vec<RepoFile>> {
    let arr = json
        .as_array()
        .context("the repository listing is not a JSON array")?;
    Ok(arr
        .iter()
        .filter(|i| i.get("type").and_then(|t| t.as_str()) == Some("file"))
        .filter_map(|i| {
            let path = i.get("path")?.as_str()?;
            if path.starts_with('/') || path.split('/').any(|c| c == "..") {
                return None;
            }
            let size = i
                .get("lfs")
                .and_then(|l| l.get("size"))
                .or_else(|| i.get("size"))
                .and_then(|s| s.as_u64());
            Some(RepoFile {
                path: path.to_string(),
                size,
            })
        })
        .collect())
}

/// llama.cpp's model cache folder (`get_cache_directory`), from the environment.
pub fn llama_cache_dir() -> Option<PathBuf> {
    use crate::env;
    let var = |n: &str| env::path(n);
    var(env::LLAMA_CACHE)
        .or_else(|| var(env::HF_HUB_CACHE))
        .or_else(|| var(env::HUGGINGFACE_HUB_CACHE))
        .or_else(|| var(env::HF_HOME).map(|p| p.join("hub")))
        .or_else(|| var(env::XDG_CACHE_HOME).map(|p| p.join("huggingface").join("hub")))
        .or_else(|| var("HOME").map(|p| p.join(".cache").join("huggingface").join("hub")))
}

/// `models--user--repo` (`repo_to_folder_name`).
fn repo_folder(repo: &str) -> String {
    format!("models--{}", repo.replace('/', "--"))
}

/// The commit llama.cpp's cache holds for `repo` (`get_cached_ref`: `refs/main`, else any ref).
pub fn cached_commit(cache: &Path, repo: &str) -> Option<String> {
    let refs = cache.join(repo_folder(repo)).join("refs");
    let read = |p: &Path| {
        crate::fsio::read_text(p, crate::fsio::SMALL_TOML)
            .ok()
            .and_then(|t| t.lines().next().map(|l| l.trim().to_string()))
            .filter(|c| c.len() == 40 && c.bytes().all(|b| b.is_ascii_hexdigit()))
    };
    if let Some(c) = read(&refs.join("main")) {
        return Some(c);
    }
    let mut names: Vec<PathBuf> = std::fs::read_dir(&refs)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    names.sort();
    names.iter().find_map(|p| read(p))
}

/// The files of `commit` in llama.cpp's cache (`get_cached_files`), in name order.
pub fn cached_files(cache: &Path, repo: &str, commit: &str) -> Vec<RepoFile> {
    let root = cache.join(repo_folder(repo)).join("snapshots").join(commit);
    let mut out: Vec<RepoFile> = crate::fsio::walk_files(std::slice::from_ref(&root))
        .into_iter()
        .filter_map(|p| {
            let rel = p.strip_prefix(&root).ok()?.to_str()?.replace('\\', "/");
            Some(RepoFile {
                size: std::fs::metadata(&p).ok().map(|m| m.len()),
                path: rel,
            })
        })
        .collect();
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

/// Where llama.cpp keeps `path` of `commit` (`snapshots/{commit}/{path}`).
pub fn cached_path(cache: &Path, repo: &str, commit: &str, path: &str) -> PathBuf {
    cache
        .join(repo_folder(repo))
        .join("snapshots")
        .join(commit)
        .join(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(p: &str) -> RepoFile {
        RepoFile {
            path: p.into(),
            size: None,
        }
    }

    #[test]
    fn tags_pick_like_llama_cpp() {
        let files = vec![
            f("README.md"),
            f("mmproj-Q4_K_M.gguf"),
            f("Model-Q8_0.gguf"),
            f("Q4_K_M/Model-Q4_K_M-00002-of-00002.gguf"),
            f("Q4_K_M/Model-Q4_K_M-00001-of-00002.gguf"),
        ];
        assert_eq!(
            best_model(&files, "").unwrap().path,
            "Q4_K_M/Model-Q4_K_M-00001-of-00002.gguf"
        );
        assert_eq!(best_model(&files, "q8_0").unwrap().path, "Model-Q8_0.gguf");
        assert!(best_model(&files, "Q5_K_M").is_none());
        let p = best_model(&files, "").unwrap();
        let all = split_files(&files, p);
        assert_eq!(all.len(), 2);
        assert!(all[0].path.contains("00001-of"));
    }

    #[test]
    fn repo_ids() {
        assert!(Repo::parse("unsloth/GLM-4.7-Flash-GGUF:Q4_K_M").is_ok());
        assert_eq!(Repo::parse("a/b").unwrap().tag, "");
        assert!(Repo::parse("a").is_err());
        assert!(Repo::parse("a/b/c").is_err());
        assert!(Repo::parse("a/-b").is_err());
        assert!(Repo::parse("a/b:Q4*").is_err());
    }
}
