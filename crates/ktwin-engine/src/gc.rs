//! `ktwin registry gc --keep N`: keep the newest N ktwin content tags per repository, delete
//! the other manifests, then let the registry reclaim the blobs nothing references any more.
//! Tags ktwin did not write (and its `ktwin-engine` tag) are never touched, nor is a tag a
//! deploy recorded or the current build inputs hash to (`protected`), nor a manifest a kept
//! tag still points at. Only the repositories asked for are looked at (a project's own, unless
//! the caller asks for all).

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::Value;

use crate::engine::Engine;
use crate::registry::RegistrySpec;
use crate::registry_api::{ApiError, RegistryApi};
use crate::runner::RunError;

/// A tag ktwin wrote (see `ContentTag`).
pub fn is_content_tag(tag: &str) -> bool {
    ktwin_config::desired::ContentTag::is(tag)
}

/// One tag of a repository: its manifest digest and when its image was created (RFC 3339).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagInfo {
    pub tag: String,
    pub digest: String,
    pub created: String,
}

/// Pure: which tags to delete (by tag; the caller deletes their manifests by digest).
/// The newest `keep` content tags are kept, and so are the `protected` ones (deployed now, or
/// what the current sources build to) however old.
pub fn plan(tags: &[TagInfo], keep: usize, protected: &BTreeSet<String>) -> Vec<TagInfo> {
    let mut content: Vec<&TagInfo> = tags.iter().filter(|t| is_content_tag(&t.tag)).collect();
    // Newest first; the tag breaks ties so the plan is deterministic.
    content.sort_by(|a, b| b.created.cmp(&a.created).then(a.tag.cmp(&b.tag)));
    let (kept, old) = content.split_at(keep.min(content.len()));
    let protected: BTreeSet<&str> = kept
        .iter()
        .map(|t| t.digest.as_str())
        .chain(
            tags.iter()
                .filter(|t| !is_content_tag(&t.tag) || protected.contains(&t.tag))
                .map(|t| t.digest.as_str()),
        )
        .collect();
    old.iter()
        .filter(|t| !protected.contains(t.digest.as_str()))
        .map(|t| (*t).clone())
        .collect()
}

#[derive(Debug, Clone, Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct GcReport {
    /// repository → tags deleted.
    pub deleted: BTreeMap<String, Vec<String>>,
    pub kept: usize,
    pub blobs_reclaimed: usize,
    pub dry_run: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum GcError {
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error("the registry's garbage collector failed: {0}")]
    Collect(#[source] RunError),
}

fn tag_info(api: &RegistryApi, repo: &str, tag: &str) -> Result<Option<TagInfo>, ApiError> {
    // One GET gives both the manifest and the digest the tag points at.
    let (m, digest) = match api.manifest_and_digest(repo, tag) {
        Ok((m, Some(d))) => (m, d),
        Ok((_, None)) | Err(ApiError::Status { status: 404, .. }) => return Ok(None),
        Err(e) => return Err(e),
    };
    let created = m["config"]["digest"]
        .as_str()
        .and_then(|c| api.blob_bytes(repo, c).ok())
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .and_then(|v| v["created"].as_str().map(str::to_string))
        .unwrap_or_default();
    Ok(Some(TagInfo {
        tag: tag.to_string(),
        digest,
        created,
    }))
}

/// What to collect.
#[derive(Debug, Clone, Default)]
pub struct GcOptions {
    /// Content tags to keep per repository, besides the protected ones (at least 1).
    pub keep: usize,
    pub dry_run: bool,
    /// Only these repositories (paths in the registry); `None`: every repository.
    pub repositories: Option<BTreeSet<String>>,
    /// (repository, tag) pairs never deleted.
    pub protected: BTreeSet<(String, String)>,
}

/// Run the collection against the registry container `spec` names.
pub fn collect(engine: &Engine, spec: &RegistrySpec, o: &GcOptions) -> Result<GcReport, GcError> {
    let api = RegistryApi::new(&spec.addr());
    let dry_run = o.dry_run;
    let keep = o.keep.max(1);
    let mut report = GcReport {
        dry_run,
        ..GcReport::default()
    };
    for repo in api.catalog()? {
        if o.repositories.as_ref().is_some_and(|r| !r.contains(&repo)) {
            continue;
        }
        let mut infos = Vec::new();
        for tag in api.tags(&repo)? {
            if let Some(i) = tag_info(&api, &repo, &tag)? {
                infos.push(i);
            }
        }
        let protected: BTreeSet<String> = o
            .protected
            .iter()
            .filter(|(r, _)| *r == repo)
            .map(|(_, t)| t.clone())
            .collect();
        let doomed = plan(&infos, keep, &protected);
        report.kept += infos.iter().filter(|t| is_content_tag(&t.tag)).count() - doomed.len();
        if doomed.is_empty() {
            continue;
        }
        let digests: BTreeSet<&str> = doomed.iter().map(|t| t.digest.as_str()).collect();
        if !dry_run {
            for d in digests {
                api.delete_manifest(&repo, d)?;
            }
        }
        report
            .deleted
            .insert(repo.clone(), doomed.into_iter().map(|t| t.tag).collect());
    }
    if !dry_run && !report.deleted.is_empty() {
        let out = engine
            .cmd([
                "exec",
                spec.name.as_str(),
                "registry",
                "garbage-collect",
                "/etc/docker/registry/config.yml",
            ])
            .run()
            .map_err(GcError::Collect)?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        report.blobs_reclaimed = text
            .lines()
            .filter(|l| l.contains("blob eligible for deletion"))
            .count();
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(tag: &str, digest: &str, created: &str) -> TagInfo {
        TagInfo {
            tag: tag.into(),
            digest: digest.into(),
            created: created.into(),
        }
    }

    #[test]
    fn keeps_the_newest_content_tags_and_never_other_tags() {
        let tags = vec![
            t("ktwin-0000000000000001", "sha256:a", "2026-01-01T00:00:00Z"),
            t("ktwin-0000000000000002", "sha256:b", "2026-01-02T00:00:00Z"),
            t("ktwin-0000000000000003", "sha256:c", "2026-01-03T00:00:00Z"),
            t("ktwin-engine", "sha256:e", "2026-01-01T00:00:00Z"),
            t("v1.2", "sha256:v", "2025-01-01T00:00:00Z"),
        ];
        let none = BTreeSet::new();
        let doomed: Vec<String> = plan(&tags, 1, &none).into_iter().map(|t| t.tag).collect();
        assert_eq!(doomed, ["ktwin-0000000000000002", "ktwin-0000000000000001"]);
        assert!(plan(&tags, 3, &none).is_empty());
        assert_eq!(plan(&tags, 0, &none).len(), 3);
    }

    #[test]
    fn a_deployed_tag_is_kept_however_old() {
        // After a branch switch the deployed tag is the oldest: it stays, and keep=1 still
        // keeps the newest other one.
        let tags = vec![
            t("ktwin-0000000000000001", "sha256:a", "2026-01-01T00:00:00Z"),
            t("ktwin-0000000000000002", "sha256:b", "2026-01-02T00:00:00Z"),
            t("ktwin-0000000000000003", "sha256:c", "2026-01-03T00:00:00Z"),
        ];
        let deployed: BTreeSet<String> = ["ktwin-0000000000000001".to_string()].into();
        let doomed: Vec<String> = plan(&tags, 1, &deployed)
            .into_iter()
            .map(|t| t.tag)
            .collect();
        assert_eq!(doomed, ["ktwin-0000000000000002"]);
    }

    #[test]
    fn a_manifest_a_kept_tag_shares_is_not_deleted() {
        let tags = vec![
            t(
                "ktwin-0000000000000001",
                "sha256:same",
                "2026-01-01T00:00:00Z",
            ),
            t(
                "ktwin-0000000000000002",
                "sha256:same",
                "2026-01-02T00:00:00Z",
            ),
            t(
                "ktwin-0000000000000003",
                "sha256:old",
                "2025-01-01T00:00:00Z",
            ),
            t("release", "sha256:old2", "2025-01-01T00:00:00Z"),
            t(
                "ktwin-0000000000000004",
                "sha256:old2",
                "2024-01-01T00:00:00Z",
            ),
        ];
        let doomed: Vec<String> = plan(&tags, 1, &BTreeSet::new())
            .into_iter()
            .map(|t| t.tag)
            .collect();
        assert_eq!(doomed, ["ktwin-0000000000000003"]);
        assert!(is_content_tag("ktwin-0123456789abcdef"));
        assert!(!is_content_tag("ktwin-engine"));
        assert!(!is_content_tag("ktwin-0123"));
    }
}
