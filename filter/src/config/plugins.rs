//! A plugin set (`plugins`, or one route's): each auth plugin's options, validated.

use super::*;

pub(super) fn plugin_set(
    path: &str,
    scope: &str,
    raw: RawPluginSet,
    usernames: &HashMap<&str, usize>,
    groups: &mut HashMap<String, (String, raw::RawLimitCount)>,
) -> Result<PluginSet, ConfigError> {
    let anonymous = |plugin: &str, name: Option<String>| -> Result<Option<usize>, ConfigError> {
        name.map(|n| {
            usernames.get(n.as_str()).copied().ok_or_else(|| {
                ConfigError::new(
                    format!("{path}.{plugin}.anonymous_consumer"),
                    ConfigErrorKind::UnknownConsumer(n),
                )
            })
        })
        .transpose()
    };
    let key_auth = match raw.key_auth {
        None => None,
        Some(k) => {
            let p = format!("{path}.key-auth");
            Some(KeyAuthOptions {
                header: header_name(&format!("{p}.header"), &k.header)?,
                query: non_empty_field(&format!("{p}.query"), k.query)?,
                hide_credentials: k.hide_credentials,
                anonymous: anonymous("key-auth", k.anonymous_consumer)?,
            })
        }
    };
    let basic_auth = match raw.basic_auth {
        None => None,
        Some(b) => Some(BasicAuthOptions {
            hide_credentials: b.hide_credentials,
            anonymous: anonymous("basic-auth", b.anonymous_consumer)?,
        }),
    };
    let jwt_auth = match raw.jwt_auth {
        None => None,
        Some(j) => {
            let p = format!("{path}.jwt-auth");
            let (mut verify_exp, mut verify_nbf) = (true, true);
            if let Some(claims) = j.claims_to_verify {
                (verify_exp, verify_nbf) = (false, false);
                for (i, c) in claims.iter().enumerate() {
                    match c.as_str() {
                        "exp" => verify_exp = true,
                        "nbf" => verify_nbf = true,
                        other => {
                            return Err(ConfigError::new(
                                format!("{p}.claims_to_verify[{i}]"),
                                ConfigErrorKind::Unknown {
                                    what: "claim",
                                    given: other.to_string(),
                                    expected: "\"exp\" or \"nbf\"".into(),
                                },
                            ))
                        }
                    }
                }
            }
            Some(JwtAuthOptions {
                header: header_name(&format!("{p}.header"), &j.header)?,
                query: non_empty_field(&format!("{p}.query"), j.query)?,
                cookie: non_empty_field(&format!("{p}.cookie"), j.cookie)?,
                hide_credentials: j.hide_credentials,
                key_claim_name: non_empty_field(&format!("{p}.key_claim_name"), j.key_claim_name)?,
                verify_exp,
                verify_nbf,
                anonymous: anonymous("jwt-auth", j.anonymous_consumer)?,
            })
        }
    };
    let hmac_auth = match raw.hmac_auth {
        None => None,
        Some(h) => {
            let p = format!("{path}.hmac-auth");
            let allowed_algorithms = match h.allowed_algorithms {
                None => HmacAlgorithm::ALL.to_vec(),
                Some(list) if list.is_empty() => {
                    return Err(ConfigError::new(
                        format!("{p}.allowed_algorithms"),
                        ConfigErrorKind::Empty,
                    ))
                }
                Some(list) => list
                    .iter()
                    .enumerate()
                    .map(|(i, a)| {
                        a.parse().map_err(|_| {
                            ConfigError::new(
                                format!("{p}.allowed_algorithms[{i}]"),
                                ConfigErrorKind::Unknown {
                                    what: "algorithm",
                                    given: a.clone(),
                                    expected: "hmac-sha1, hmac-sha256 or hmac-sha512".into(),
                                },
                            )
                        })
                    })
                    .collect::<Result<_, _>>()?,
            };
            if h.clock_skew < 1 {
                return Err(ConfigError::new(
                    format!("{p}.clock_skew"),
                    ConfigErrorKind::TooSmall { min: 1 },
                ));
            }
            let signed_headers = h
                .signed_headers
                .unwrap_or_else(|| vec!["date".to_string()])
                .iter()
                .enumerate()
                .map(|(i, name)| {
                    let lower = name.to_ascii_lowercase();
                    if lower == "@request-target" {
                        Ok(lower)
                    } else {
                        header_name(&format!("{p}.signed_headers[{i}]"), name)
                    }
                })
                .collect::<Result<_, _>>()?;
            Some(HmacAuthOptions {
                allowed_algorithms,
                clock_skew_s: h.clock_skew,
                signed_headers,
                validate_request_body: h.validate_request_body,
                max_req_body_size: h.max_req_body_size,
                hide_credentials: h.hide_credentials,
                anonymous: anonymous("hmac-auth", h.anonymous_consumer)?,
            })
        }
    };
    let limit_count = match raw.limit_count {
        None => None,
        Some(l) => Some(limit_options(
            &format!("{path}.limit-count"),
            scope,
            l,
            groups,
        )?),
    };
    Ok(PluginSet {
        key_auth,
        basic_auth,
        jwt_auth,
        hmac_auth,
        limit_count,
    })
}
