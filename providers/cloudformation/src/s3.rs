//! nepho's S3 objects: templates over the inline limit and 1.x payloads, all under
//! `nepho/<formation>/` in one bucket (configured, or `nepho-templates-<account>-<region>`).

use std::io::Write;
use std::path::{Path, PathBuf};

use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    BucketLocationConstraint, CreateBucketConfiguration, Delete, ObjectIdentifier,
    PublicAccessBlockConfiguration,
};
use nepho_provider_api::ProviderError;

use crate::CloudFormationProvider;
use crate::errors::{ApiError, api};

/// Where a formation's objects live in the bucket.
pub fn prefix(formation: &str) -> String {
    format!("nepho/{formation}/")
}

pub fn template_key(formation: &str) -> String {
    format!("{}template", prefix(formation))
}

pub fn payload_key(formation: &str) -> String {
    format!("{}payload.zip", prefix(formation))
}

impl CloudFormationProvider {
    /// The bucket name: configured, or derived from the account (looked up once).
    pub(crate) async fn bucket_name(&self) -> Result<String, ProviderError> {
        if let Some(bucket) = &self.template_bucket {
            return Ok(bucket.clone());
        }
        self.bucket
            .get_or_try_init(|| async {
                let identity = self
                    .sts
                    .get_caller_identity()
                    .send()
                    .await
                    .map_err(api("GetCallerIdentity"))?;
                let account = identity.account().unwrap_or("unknown").to_string();
                Ok::<_, ProviderError>(format!("nepho-templates-{account}-{}", self.region))
            })
            .await
            .cloned()
    }

    /// Creates the bucket (private) when it does not exist yet.
    async fn ensure_bucket(&self, bucket: &str) -> Result<(), ProviderError> {
        match self.s3.head_bucket().bucket(bucket).send().await {
            Ok(_) => return Ok(()),
            Err(e) => {
                let e = ApiError::from_sdk("HeadBucket", e);
                let missing =
                    e.is_code("NotFound") || e.is_code("NoSuchBucket") || e.message.contains("404");
                if !missing {
                    return Err(bucket_error(bucket, e));
                }
            }
        }
        let mut create = self.s3.create_bucket().bucket(bucket);
        if self.region != "us-east-1" {
            create = create.create_bucket_configuration(
                CreateBucketConfiguration::builder()
                    .location_constraint(BucketLocationConstraint::from(self.region.as_str()))
                    .build(),
            );
        }
        if let Err(e) = create.send().await
            && e.code() != Some("BucketAlreadyOwnedByYou")
        {
            return Err(bucket_error(bucket, ApiError::from_sdk("CreateBucket", e)));
        }
        self.s3
            .put_public_access_block()
            .bucket(bucket)
            .public_access_block_configuration(
                PublicAccessBlockConfiguration::builder()
                    .block_public_acls(true)
                    .ignore_public_acls(true)
                    .block_public_policy(true)
                    .restrict_public_buckets(true)
                    .build(),
            )
            .send()
            .await
            .map_err(api("PutPublicAccessBlock"))?;
        Ok(())
    }

    pub(crate) async fn upload(&self, key: &str, body: Vec<u8>) -> Result<String, ProviderError> {
        let bucket = self.bucket_name().await?;
        self.ensure_bucket(&bucket).await?;
        self.s3
            .put_object()
            .bucket(&bucket)
            .key(key)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(api("PutObject"))?;
        Ok(bucket)
    }

    pub(crate) async fn object_exists(&self, key: &str) -> Result<bool, ProviderError> {
        let bucket = self.bucket_name().await?;
        match self.s3.head_object().bucket(&bucket).key(key).send().await {
            Ok(_) => Ok(true),
            Err(e) => {
                let e = ApiError::from_sdk("HeadObject", e);
                if e.is_code("NotFound") || e.is_code("NoSuchKey") || e.is_code("NoSuchBucket") {
                    Ok(false)
                } else {
                    Err(e.into())
                }
            }
        }
    }

    /// The URL CloudFormation reads a template from (the caller's credentials apply).
    pub(crate) async fn template_url(&self, key: &str) -> Result<String, ProviderError> {
        let bucket = self.bucket_name().await?;
        let domain = if self.region.starts_with("cn-") {
            "amazonaws.com.cn"
        } else {
            "amazonaws.com"
        };
        Ok(if bucket.contains('.') {
            format!("https://s3.{}.{domain}/{bucket}/{key}", self.region)
        } else {
            format!("https://{bucket}.s3.{}.{domain}/{key}", self.region)
        })
    }

    /// A presigned GET URL: it grants access, so it is never logged, emitted or journaled.
    pub(crate) async fn presigned_url(&self, key: &str) -> Result<String, ProviderError> {
        let bucket = self.bucket_name().await?;
        let config =
            aws_sdk_s3::presigning::PresigningConfig::expires_in(self.payload_url_lifetime)
                .map_err(|e| ProviderError::Invalid {
                    message: format!("payload URL lifetime: {e}"),
                    hint: None,
                })?;
        let request = self
            .s3
            .get_object()
            .bucket(bucket)
            .key(key)
            .presigned(config)
            .await
            .map_err(api("GetObject (presign)"))?;
        Ok(request.uri().to_string())
    }

    pub(crate) async fn delete_object(&self, key: &str) -> Result<(), ProviderError> {
        let bucket = self.bucket_name().await?;
        match self
            .s3
            .delete_object()
            .bucket(&bucket)
            .key(key)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some("NoSuchBucket") || e.code() == Some("NoSuchKey") => Ok(()),
            Err(e) => Err(ApiError::from_sdk("DeleteObject", e).into()),
        }
    }

    /// Deletes every object under `prefix`; returns how many there were.
    pub(crate) async fn delete_prefix(&self, prefix: &str) -> Result<usize, ProviderError> {
        let bucket = self.bucket_name().await?;
        let mut deleted = 0;
        loop {
            let listing = match self
                .s3
                .list_objects_v2()
                .bucket(&bucket)
                .prefix(prefix)
                .send()
                .await
            {
                Ok(listing) => listing,
                Err(e) if e.code() == Some("NoSuchBucket") => return Ok(deleted),
                Err(e) => return Err(ApiError::from_sdk("ListObjectsV2", e).into()),
            };
            let keys: Vec<ObjectIdentifier> = listing
                .contents()
                .iter()
                .filter_map(|o| o.key())
                .filter_map(|k| ObjectIdentifier::builder().key(k).build().ok())
                .collect();
            if keys.is_empty() {
                return Ok(deleted);
            }
            deleted += keys.len();
            let delete = Delete::builder()
                .set_objects(Some(keys))
                .quiet(true)
                .build()
                .map_err(|e| ProviderError::Failed {
                    message: format!("building an S3 delete request: {e}"),
                    hint: None,
                })?;
            self.s3
                .delete_objects()
                .bucket(&bucket)
                .delete(delete)
                .send()
                .await
                .map_err(api("DeleteObjects"))?;
        }
    }
}

fn bucket_error(bucket: &str, e: ApiError) -> ProviderError {
    if e.is_code("BucketAlreadyExists") || e.is_code("Forbidden") || e.is_code("AccessDenied") {
        return ProviderError::Unavailable {
            message: format!(
                "cannot use S3 bucket `{bucket}` for templates: {}",
                e.message
            ),
            hint: Some(
                "choose a bucket you own with `nepho register aws` (template bucket)".to_string(),
            ),
        };
    }
    e.into()
}

/// Zips a payload directory (1.x `payload/`) with paths relative to it, in a stable order.
pub fn zip_dir(dir: &Path) -> Result<Vec<u8>, ProviderError> {
    let failed = |what: String| ProviderError::Failed {
        message: format!("packing payload {}: {what}", dir.display()),
        hint: None,
    };
    let mut files = Vec::new();
    collect_files(dir, dir, &mut files).map_err(|e| failed(e.to_string()))?;
    files.sort();
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for relative in files {
        let path = dir.join(&relative);
        let name = relative
            .components()
            .map(|c| c.as_os_str().to_string_lossy())
            .collect::<Vec<_>>()
            .join("/");
        let mode = file_mode(&path);
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .unix_permissions(mode);
        let contents = std::fs::read(&path).map_err(|e| failed(format!("{name}: {e}")))?;
        writer
            .start_file(name.as_str(), options)
            .map_err(|e| failed(e.to_string()))?;
        writer
            .write_all(&contents)
            .map_err(|e| failed(e.to_string()))?;
    }
    let cursor = writer.finish().map_err(|e| failed(e.to_string()))?;
    Ok(cursor.into_inner())
}

fn collect_files(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let kind = entry.file_type()?;
        if kind.is_dir() {
            collect_files(root, &path, out)?;
        } else if kind.is_file() || (kind.is_symlink() && path.is_file()) {
            out.push(path.strip_prefix(root).unwrap_or(&path).to_path_buf());
        }
    }
    Ok(())
}

#[cfg(unix)]
fn file_mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .map(|m| m.permissions().mode() & 0o777)
        .unwrap_or(0o644)
}

#[cfg(not(unix))]
fn file_mode(_: &Path) -> u32 {
    0o644
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zips_a_directory_with_relative_paths() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("bin")).unwrap();
        std::fs::write(dir.path().join("bin/setup.sh"), "#!/bin/sh\necho hi\n").unwrap();
        std::fs::write(dir.path().join("README"), "payload").unwrap();
        let bytes = zip_dir(dir.path()).unwrap();
        let archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
        let mut names: Vec<_> = archive
            .file_names()
            .map(|n| n.unwrap().to_string())
            .collect();
        names.sort();
        assert_eq!(names, ["README", "bin/setup.sh"]);
    }

    #[test]
    fn keys_live_under_the_formation_prefix() {
        assert_eq!(template_key("web"), "nepho/web/template");
        assert!(payload_key("web").starts_with(&prefix("web")));
    }
}
