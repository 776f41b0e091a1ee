//! AWS Secrets Manager, through the AWS SDK: `GetSecretValue` for values (of the configured
//! version stage, `AWSCURRENT` by default; the previous value is `AWSPREVIOUS`),
//! `DescribeSecret` to see whether the current version moved, `ListSecrets` (all pages, up to a
//! cap) for the name list (which candidate names exist, "did you mean" hints). A secret is named
//! by its name or its ARN (`ListSecrets` lists both). The only module that names the SDK.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region};
use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::Credentials;
use aws_sdk_secretsmanager::config::http::HttpResponse;
use aws_sdk_secretsmanager::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_secretsmanager::Client;
use secret_ref::SecretValue;

use super::{BoxFuture, PreviousSecret, Provider, ProviderError, Secret, SecretNames};
use crate::config::{AwsProviderConfig, DEFAULT_VERSION_STAGE};

/// The stage of the version the current one replaced.
const PREVIOUS_STAGE: &str = "AWSPREVIOUS";

/// Limit on establishing a connection to the endpoint.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Limit on a whole operation, retries included.
pub const OPERATION_TIMEOUT: Duration = Duration::from_secs(5);
/// One retry for transient failures; the cache serves the last good value meanwhile.
const MAX_ATTEMPTS: u32 = 2;
const INITIAL_BACKOFF: Duration = Duration::from_millis(200);
/// `ListSecrets` page size (the API's maximum).
const LIST_PAGE_SIZE: i32 = 100;
/// Stop listing after this many secrets (100 pages); the list is then marked incomplete and the
/// resolver asks for candidate names one by one instead.
const MAX_LISTED_NAMES: usize = 10_000;

/// Error codes that mean "these credentials may not do this".
const ACCESS_DENIED_CODES: &[&str] = &[
    "AccessDeniedException",
    "AccessDenied",
    "UnrecognizedClientException",
    "InvalidSignatureException",
    "SignatureDoesNotMatch",
    "IncompleteSignature",
    "InvalidClientTokenId",
    "MissingAuthenticationToken",
    "ExpiredTokenException",
    "ExpiredToken",
    "NotAuthorized",
    "UnauthorizedOperation",
];

/// A provider backed by one AWS Secrets Manager client (one region, one set of credentials).
pub struct AwsProvider {
    client: Client,
    version_stage: String,
    /// When `DescribeSecret` was last refused as access denied (an IAM policy that grants
    /// only `GetSecretValue`): values are then fetched after each TTL, without asking, for
    /// [`DESCRIBE_DENIED_PAUSE`].
    describe_denied: Mutex<Option<Instant>>,
}

/// After `DescribeSecret` is refused, it is not asked again for this long.
const DESCRIBE_DENIED_PAUSE: Duration = Duration::from_secs(3600);

impl AwsProvider {
    /// Builds the client. With no static credentials the SDK's default chain is used
    /// (environment, shared profile — `profile`, else `AWS_PROFILE`, else `default` — web
    /// identity, ECS, IMDS); with no `endpoint_url`, `AWS_ENDPOINT_URL` is honoured.
    pub async fn new(config: &AwsProviderConfig) -> Self {
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .operation_timeout(OPERATION_TIMEOUT)
            .build();
        let retries = RetryConfig::standard()
            .with_max_attempts(MAX_ATTEMPTS)
            .with_initial_backoff(INITIAL_BACKOFF);
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(config.region.clone()))
            .timeout_config(timeouts)
            .retry_config(retries);
        if let Some(url) = &config.endpoint_url {
            loader = loader.endpoint_url(url.clone());
        }
        if let Some(profile) = &config.profile {
            loader = loader.profile_name(profile);
        }
        if let Some(c) = &config.credentials {
            loader = loader.credentials_provider(Credentials::new(
                c.access_key_id.expose(),
                c.secret_access_key.expose(),
                c.session_token.as_ref().map(|t| t.expose().to_string()),
                None,
                "secret-sidecar-config",
            ));
        }
        let sdk_config = loader.load().await;
        AwsProvider {
            client: Client::new(&sdk_config),
            version_stage: config.version_stage.clone(),
            describe_denied: Mutex::new(None),
        }
    }

    async fn get(&self, name: &str, stage: &str) -> Result<Secret, ProviderError> {
        let out = self
            .client
            .get_secret_value()
            .secret_id(name)
            .version_stage(stage)
            .send()
            .await
            .map_err(map_sdk_error)?;
        match out.secret_string() {
            Some(s) => Ok(Secret {
                value: SecretValue::new(s),
                version: out.version_id().map(str::to_string),
                created_at: out
                    .created_date()
                    .and_then(|d| u64::try_from(d.secs()).ok()),
            }),
            None => Err(ProviderError::Other(format!(
                "secret {name:?} has no SecretString (binary secrets are not supported)"
            ))),
        }
    }

    /// `DescribeSecret`: the id of the version that has the configured stage (`None`: no
    /// version has it, or the secret is marked for deletion: then `GetSecretValue` gives the
    /// answer, in AWS's words).
    /// Refused as access denied, it answers `None` (fetch the value) and is not asked again for
    /// [`DESCRIBE_DENIED_PAUSE`]: `secretsmanager:DescribeSecret` is an optional permission.
    async fn describe(&self, name: &str) -> Result<Option<String>, ProviderError> {
        let denied_at = *self
            .describe_denied
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if denied_at.is_some_and(|at| at.elapsed() < DESCRIBE_DENIED_PAUSE) {
            return Ok(None);
        }
        let out = match self.client.describe_secret().secret_id(name).send().await {
            Ok(out) => out,
            Err(e) => match map_sdk_error(e) {
                ProviderError::AccessDenied(detail) => {
                    tracing::warn!(
                        secret = name,
                        error = %detail,
                        "DescribeSecret refused: values are fetched again after each TTL instead (grant secretsmanager:DescribeSecret to save those calls)"
                    );
                    *self
                        .describe_denied
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
                    return Ok(None);
                }
                other => return Err(other),
            },
        };
        if out.deleted_date().is_some() {
            return Ok(None);
        }
        Ok(out.version_ids_to_stages().and_then(|versions| {
            versions
                .iter()
                .find(|(_, stages)| stages.contains(&self.version_stage))
                .map(|(id, _)| id.clone())
        }))
    }

    /// `AWSPREVIOUS`, replaced when `current` was created. Only for `version_stage =
    /// "AWSCURRENT"` (another stage has no "previous").
    async fn previous(
        &self,
        name: &str,
        current: &Secret,
    ) -> Result<Option<PreviousSecret>, ProviderError> {
        let Some(replaced_at) = current.created_at else {
            return Ok(None);
        };
        if self.version_stage != DEFAULT_VERSION_STAGE {
            return Ok(None);
        }
        match self.get(name, PREVIOUS_STAGE).await {
            Ok(previous) if previous.version == current.version => Ok(None),
            Ok(previous) => Ok(Some(PreviousSecret {
                value: previous.value,
                replaced_at,
            })),
            Err(ProviderError::NotFound) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn list(&self) -> Result<SecretNames, ProviderError> {
        let mut names = Vec::new();
        let mut complete = true;
        let mut pages = self
            .client
            .list_secrets()
            .into_paginator()
            .page_size(LIST_PAGE_SIZE)
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(map_sdk_error)?;
            for secret in page.secret_list() {
                names.extend(secret.name().map(str::to_string));
                // references may name a secret by its ARN
                names.extend(secret.arn().map(str::to_string));
            }
            if names.len() >= 2 * MAX_LISTED_NAMES {
                complete = false;
                break;
            }
        }
        Ok(SecretNames { names, complete })
    }
}

impl Provider for AwsProvider {
    fn get_secret<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Secret, ProviderError>> {
        Box::pin(self.get(name, &self.version_stage))
    }

    fn current_version<'a>(
        &'a self,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, ProviderError>> {
        Box::pin(self.describe(name))
    }

    fn get_previous<'a>(
        &'a self,
        name: &'a str,
        current: &'a Secret,
    ) -> BoxFuture<'a, Result<Option<PreviousSecret>, ProviderError>> {
        Box::pin(self.previous(name, current))
    }

    fn list_secret_names(&self) -> BoxFuture<'_, Result<SecretNames, ProviderError>> {
        Box::pin(self.list())
    }
}

/// Maps an SDK error to what the cache and the API need to know.
fn map_sdk_error<E>(err: SdkError<E, HttpResponse>) -> ProviderError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match &err {
        SdkError::TimeoutError(_) => {
            ProviderError::Unreachable(format!("no answer within {}s", OPERATION_TIMEOUT.as_secs()))
        }
        SdkError::DispatchFailure(d) if d.is_io() || d.is_timeout() => {
            ProviderError::Unreachable(error_chain(&err))
        }
        SdkError::DispatchFailure(_) if has_credentials_error(&err) => {
            ProviderError::AccessDenied(format!("no usable AWS credentials: {}", error_chain(&err)))
        }
        // an answer without an error code the SDK can read (a proxy's, or moto's XML when it
        // enforces IAM): 401 / 403 still mean our credentials are refused
        SdkError::ServiceError(service)
            if service.err().code().is_none()
                && matches!(service.raw().status().as_u16(), 401 | 403) =>
        {
            ProviderError::AccessDenied(format!(
                "HTTP {} without an error code",
                service.raw().status().as_u16()
            ))
        }
        SdkError::ServiceError(service) => {
            let e = service.err();
            let code = e.code().unwrap_or("unknown error");
            let detail = match e.message() {
                Some(m) => format!("{code}: {m}"),
                None => code.to_string(),
            };
            classify_code(e.code(), detail)
        }
        _ => ProviderError::Other(error_chain(&err)),
    }
}

/// Definitive answers (about the secret) vs transient failures (about the call): see
/// [`ProviderError`]. Unknown codes are transient (`Other`): throttling (`ThrottlingException`,
/// `TooManyRequestsException`, `RequestLimitExceeded`), `InternalServiceError`, 5xx.
fn classify_code(code: Option<&str>, detail: String) -> ProviderError {
    match code {
        Some("ResourceNotFoundException") => ProviderError::NotFound,
        // "You can't perform this operation on the secret because it was marked for deletion."
        // (moto: "... a secret that's currently marked deleted.")
        Some("InvalidRequestException") if detail.to_ascii_lowercase().contains("delet") => {
            ProviderError::Deleted(detail)
        }
        Some("DecryptionFailure" | "KMSDisabledException" | "KMSInvalidStateException") => {
            ProviderError::DecryptionFailed(detail)
        }
        Some("InvalidRequestException" | "InvalidParameterException") => {
            ProviderError::Rejected(detail)
        }
        Some(c) if ACCESS_DENIED_CODES.contains(&c) => ProviderError::AccessDenied(detail),
        _ => ProviderError::Other(detail),
    }
}

/// The error and its sources as one line of text, e.g. "dispatch failure: io error: ...:
/// Connection refused (os error 111)", leaving out parts that repeat the previous one.
fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        // one line: the credential chain's report spans several
        let text = e
            .to_string()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        if !parts.last().is_some_and(|prev| prev.contains(&text)) {
            parts.push(text);
        }
        cur = e.source();
    }
    parts.join(": ")
}

fn has_credentials_error(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        if e.is::<CredentialsError>() {
            return true;
        }
        cur = e.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_error_codes() {
        assert_eq!(
            classify_code(Some("ResourceNotFoundException"), "x".into()),
            ProviderError::NotFound
        );
        for code in [
            "AccessDeniedException",
            "UnrecognizedClientException",
            "InvalidSignatureException",
        ] {
            assert_eq!(
                classify_code(Some(code), format!("{code}: no")),
                ProviderError::AccessDenied(format!("{code}: no"))
            );
        }
        assert_eq!(
            classify_code(Some("ThrottlingException"), "slow down".into()),
            ProviderError::Other("slow down".into())
        );
        assert_eq!(
            classify_code(None, "?".into()),
            ProviderError::Other("?".into())
        );
    }

    #[test]
    fn definitive_and_transient_answers() {
        let cases = [
            ("ResourceNotFoundException", "x", true),
            // AWS, and moto's wording
            ("InvalidRequestException", "InvalidRequestException: You can't perform this operation on the secret because it was marked for deletion.", true),
            ("InvalidRequestException", "InvalidRequestException: You tried to perform the operation on a secret that's currently marked deleted.", true),
            ("DecryptionFailure", "DecryptionFailure: Secrets Manager can't decrypt the protected secret text using the provided KMS key.", true),
            ("KMSDisabledException", "KMSDisabledException: key disabled", true),
            ("InvalidRequestException", "InvalidRequestException: the secret is disabled", true),
            ("InvalidParameterException", "InvalidParameterException: bad", true),
            ("AccessDeniedException", "AccessDeniedException: no", false),
            ("ExpiredTokenException", "ExpiredTokenException: expired", false),
            ("ThrottlingException", "ThrottlingException: slow down", false),
            ("InternalServiceError", "InternalServiceError: oops", false),
            ("SomethingNew", "SomethingNew: ?", false),
        ];
        for (code, detail, definitive) in cases {
            let e = classify_code(Some(code), detail.to_string());
            assert_eq!(e.is_definitive(), definitive, "{code}: {e:?}");
        }
        assert!(matches!(
            classify_code(Some("InvalidRequestException"), cases[1].1.into()),
            ProviderError::Deleted(_)
        ));
        assert!(matches!(
            classify_code(Some("DecryptionFailure"), "d".into()),
            ProviderError::DecryptionFailed(_)
        ));
        assert!(matches!(
            classify_code(Some("InvalidRequestException"), "disabled".into()),
            ProviderError::Rejected(_)
        ));
    }

    #[derive(Debug)]
    struct Layer(&'static str, Option<Box<Layer>>);

    impl std::fmt::Display for Layer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }

    impl std::error::Error for Layer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1.as_deref().map(|l| l as _)
        }
    }

    #[test]
    fn error_chain_is_one_line_without_repeats() {
        let err = Layer(
            "dispatch failure",
            Some(Box::new(Layer(
                "tcp connect error: refused",
                Some(Box::new(Layer("refused", None))),
            ))),
        );
        assert_eq!(
            error_chain(&err),
            "dispatch failure: tcp connect error: refused"
        );
        let multi = Layer(
            "no credentials. Attempted:\n  Environment: unset\n  Profile: none",
            None,
        );
        assert_eq!(
            error_chain(&multi),
            "no credentials. Attempted: Environment: unset Profile: none"
        );
    }
}
