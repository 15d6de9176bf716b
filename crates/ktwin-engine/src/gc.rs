//! `ktwin registry gc --keep N`: keep the newest N ktwin content tags per repository, delete
//! the other manifests, then let the registry reclaim the blobs nothing references any more.
//! Tags ktwin did not write (and its `ktwin-engine` tag) are never touched, and a manifest a
//! kept tag still points at is never deleted.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::Value;

use crate::engine::Engine;
use crate::registry::RegistrySpec;
use crate::registry_api::{ApiError, RegistryApi};
use crate::runner::RunError;

/// A tag ktwin wrote: `ktwin-` and 16 hex digits (see `contenttag.rs`).
pub fn is_content_tag(tag: &str) -> bool {
    tag.strip_prefix("ktwin-")
        .is_some_and(|h| h.len() == 16 && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// One tag of a repository: its manifest digest and when its image was created (RFC 3339).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagInfo {
    pub tag: String,
    pub digest: String,
    pub created: String,
}

/// Pure: which tags to delete (by tag; the caller deletes their manifests by digest).
pub fn plan(tags: &[TagInfo], keep: usize) -> Vec<TagInfo> {
    let mut content: Vec<&TagInfo> = tags.iter().filter(|t| is_content_tag(&t.tag)).collect();
    // Newest first; the tag breaks ties so the plan is deterministic.
    content.sort_by(|a, b| b.created.cmp(&a.created).then(a.tag.cmp(&b.tag)));
    let (kept, old) = content.split_at(keep.min(content.len()));
    let protected: BTreeSet<&str> = kept
        .iter()
        .map(|t| t.digest.as_str())
        .chain(
            tags.iter()
                .filter(|t| !is_content_tag(&t.tag))
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

/// Run the collection against the registry container `spec` names.
pub fn collect(
    engine: &Engine,
    spec: &RegistrySpec,
    keep: usize,
    dry_run: bool,
) -> Result<GcReport, GcError> {
    let api = RegistryApi::new(spec.host_port);
    let mut report = GcReport {
        dry_run,
        ..GcReport::default()
    };
    for repo in api.catalog()? {
        let mut infos = Vec::new();
        for tag in api.tags(&repo)? {
            if let Some(i) = tag_info(&api, &repo, &tag)? {
                infos.push(i);
            }
        }
        let doomed = plan(&infos, keep);
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
        let doomed: Vec<String> = plan(&tags, 1).into_iter().map(|t| t.tag).collect();
        assert_eq!(doomed, ["ktwin-0000000000000002", "ktwin-0000000000000001"]);
        assert!(plan(&tags, 3).is_empty());
        assert_eq!(plan(&tags, 0).len(), 3);
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
        let doomed: Vec<String> = plan(&tags, 1).into_iter().map(|t| t.tag).collect();
        assert_eq!(doomed, ["ktwin-0000000000000003"]);
        assert!(is_content_tag("ktwin-0123456789abcdef"));
        assert!(!is_content_tag("ktwin-engine"));
        assert!(!is_content_tag("ktwin-0123"));
    }
}
