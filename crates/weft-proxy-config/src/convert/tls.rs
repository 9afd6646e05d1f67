//! TLS contexts: certificates and validation as sources (files are checked now and read by the
//! data plane), `sds` references resolved against `static_resources.secrets`.

use envoy_types::pb::envoy::config::core::v3 as core;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3 as pb;
use envoy_types::pb::envoy::r#type::matcher::v3 as matcher;

use super::{Ctx, at, constraint, invalid, unsupported};
use crate::{
    ConfigError,
    model::{
        CertificateSource, DataSource, DownstreamTls, NameMatcher, Pattern, SanMatcher, SanType,
        TlsVersion, UpstreamTls, Validation,
    },
};

pub(crate) fn downstream(
    d: &pb::DownstreamTlsContext,
    path: &str,
    resource: &str,
    ctx: &Ctx<'_>,
) -> Result<DownstreamTls, ConfigError> {
    let common = d.common_tls_context.clone().unwrap_or_default();
    let c = common_context(&common, &at(path, "common_tls_context"), resource, ctx)?;
    if c.certificates.is_empty() {
        return Err(constraint(
            at(path, "common_tls_context.tls_certificates"),
            format!(
                "{resource}: a server TLS context needs a certificate (Envoy: \"No TLS certificates found for server context\")"
            ),
        ));
    }
    let require_client_certificate = d
        .require_client_certificate
        .as_ref()
        .is_some_and(|b| b.value);
    if require_client_certificate && c.validation.is_none() {
        return Err(constraint(
            at(path, "require_client_certificate"),
            format!(
                "{resource}: require_client_certificate needs a validation_context with trusted_ca to verify client certificates"
            ),
        ));
    }
    Ok(DownstreamTls {
        certificates: c.certificates,
        validation: c.validation,
        require_client_certificate,
        alpn_protocols: common.alpn_protocols.clone(),
        min_version: c.min_version,
        max_version: c.max_version,
    })
}

pub(crate) fn upstream(
    u: &pb::UpstreamTlsContext,
    path: &str,
    resource: &str,
    ctx: &Ctx<'_>,
) -> Result<UpstreamTls, ConfigError> {
    let common = u.common_tls_context.clone().unwrap_or_default();
    let c = common_context(&common, &at(path, "common_tls_context"), resource, ctx)?;
    Ok(UpstreamTls {
        certificates: c.certificates,
        validation: c.validation,
        sni: (!u.sni.is_empty()).then(|| u.sni.clone()),
        alpn_protocols: common.alpn_protocols.clone(),
        min_version: c.min_version,
        max_version: c.max_version,
    })
}

struct Common {
    certificates: Vec<CertificateSource>,
    validation: Option<Validation>,
    min_version: TlsVersion,
    max_version: TlsVersion,
}

fn common_context(
    c: &pb::CommonTlsContext,
    path: &str,
    resource: &str,
    ctx: &Ctx<'_>,
) -> Result<Common, ConfigError> {
    use pb::common_tls_context::ValidationContextType as V;
    let mut certificates = Vec::new();
    for (i, cert) in c.tls_certificates.iter().enumerate() {
        certificates.push(certificate(
            cert,
            &at(path, &format!("tls_certificates[{i}]")),
            ctx,
        )?);
    }
    for (i, sds) in c.tls_certificate_sds_secret_configs.iter().enumerate() {
        let s_path = at(path, &format!("tls_certificate_sds_secret_configs[{i}]"));
        let (secret_path, secret) = static_secret(&sds.name, &s_path, resource, ctx)?;
        let Some(pb::secret::Type::TlsCertificate(cert)) = &secret.r#type else {
            return Err(invalid(
                at(&s_path, "name"),
                format!("{resource}: secret {:?} is not a tls_certificate", sds.name),
            ));
        };
        certificates.push(certificate(
            cert,
            &at(&secret_path, "tls_certificate"),
            ctx,
        )?);
    }
    let validation = match &c.validation_context_type {
        Some(V::ValidationContext(v)) => {
            validation(v, &at(path, "validation_context"), resource, ctx)?
        }
        Some(V::ValidationContextSdsSecretConfig(sds)) => {
            let s_path = at(path, "validation_context_sds_secret_config");
            let (secret_path, secret) = static_secret(&sds.name, &s_path, resource, ctx)?;
            let Some(pb::secret::Type::ValidationContext(v)) = &secret.r#type else {
                return Err(invalid(
                    at(&s_path, "name"),
                    format!(
                        "{resource}: secret {:?} is not a validation_context",
                        sds.name
                    ),
                ));
            };
            validation(v, &at(&secret_path, "validation_context"), resource, ctx)?
        }
        Some(_) => {
            return Err(unsupported(
                path,
                format!(
                    "unsupported: {resource} validation context other than validation_context or validation_context_sds_secret_config"
                ),
            ));
        }
        None => None,
    };
    let params = c.tls_params.clone().unwrap_or_default();
    let params_path = at(path, "tls_params");
    Ok(Common {
        certificates,
        validation,
        min_version: version(
            params.tls_minimum_protocol_version,
            &at(&params_path, "tls_minimum_protocol_version"),
            resource,
        )?,
        max_version: version(
            params.tls_maximum_protocol_version,
            &at(&params_path, "tls_maximum_protocol_version"),
            resource,
        )?,
    })
}

/// A static secret by name, with its path (for errors inside it).
fn static_secret<'a>(
    name: &str,
    path: &str,
    resource: &str,
    ctx: &Ctx<'a>,
) -> Result<(String, &'a pb::Secret), ConfigError> {
    let found = ctx.secrets.get(name).copied();
    found
        .map(|(i, s)| (format!("static_resources.secrets[{i}]"), s))
        .ok_or_else(|| {
            constraint(
                at(path, "name"),
                format!(
                    "{resource}: unknown secret {name:?}; SDS secrets must be defined in \
                 static_resources.secrets (weft does not fetch secrets from an SDS server)"
                ),
            )
        })
}

fn certificate(
    c: &pb::TlsCertificate,
    path: &str,
    ctx: &Ctx<'_>,
) -> Result<CertificateSource, ConfigError> {
    let chain = c.certificate_chain.as_ref().ok_or_else(|| {
        invalid(
            at(path, "certificate_chain"),
            "a TLS certificate needs certificate_chain",
        )
    })?;
    let key = c.private_key.as_ref().ok_or_else(|| {
        invalid(
            at(path, "private_key"),
            "a TLS certificate needs private_key",
        )
    })?;
    Ok(CertificateSource {
        chain: data_source(chain, &at(path, "certificate_chain"), ctx)?,
        key: data_source(key, &at(path, "private_key"), ctx)?,
    })
}

#[allow(
    deprecated,
    reason = "match_subject_alt_names is deprecated but Envoy still reads it"
)]
fn validation(
    v: &pb::CertificateValidationContext,
    path: &str,
    resource: &str,
    ctx: &Ctx<'_>,
) -> Result<Option<Validation>, ConfigError> {
    let mut san_matchers = Vec::new();
    for (i, m) in v.match_typed_subject_alt_names.iter().enumerate() {
        let m_path = at(path, &format!("match_typed_subject_alt_names[{i}]"));
        use pb::subject_alt_name_matcher::SanType as T;
        let san_type = match T::try_from(m.san_type) {
            Ok(T::Dns) => SanType::Dns,
            Ok(T::Uri) => SanType::Uri,
            Ok(T::Email) => SanType::Email,
            Ok(T::IpAddress) => SanType::IpAddress,
            _ => {
                return Err(unsupported(
                    at(&m_path, "san_type"),
                    format!(
                        "unsupported: {resource} san_type {} (weft matches DNS, URI, EMAIL and IP_ADDRESS SANs)",
                        m.san_type
                    ),
                ));
            }
        };
        let matcher = name_matcher(m.matcher.as_ref(), &at(&m_path, "matcher"), resource)?;
        san_matchers.push(SanMatcher { san_type, matcher });
    }
    // Envoy applies each deprecated `match_subject_alt_names` matcher to SANs of every type
    // (DNS, URI, email, IP), so one matching SAN of any type suffices.
    for (i, m) in v.match_subject_alt_names.iter().enumerate() {
        let matcher = name_matcher(
            Some(m),
            &at(path, &format!("match_subject_alt_names[{i}]")),
            resource,
        )?;
        for san_type in [
            SanType::Dns,
            SanType::Uri,
            SanType::Email,
            SanType::IpAddress,
        ] {
            san_matchers.push(SanMatcher {
                san_type,
                matcher: matcher.clone(),
            });
        }
    }
    let Some(trusted_ca) = &v.trusted_ca else {
        if san_matchers.is_empty() {
            // An empty validation context verifies nothing, as in Envoy.
            return Ok(None);
        }
        return Err(constraint(
            at(path, "trusted_ca"),
            format!(
                "{resource}: SAN matching without trusted_ca is insecure; Envoy rejects it too"
            ),
        ));
    };
    Ok(Some(Validation {
        trusted_ca: data_source(trusted_ca, &at(path, "trusted_ca"), ctx)?,
        san_matchers,
    }))
}

fn name_matcher(
    m: Option<&matcher::StringMatcher>,
    path: &str,
    resource: &str,
) -> Result<NameMatcher, ConfigError> {
    use matcher::string_matcher::MatchPattern as P;
    let m = m.ok_or_else(|| invalid(path, "a SAN matcher needs a matcher"))?;
    if m.ignore_case {
        return Err(unsupported(
            at(path, "ignore_case"),
            format!("unsupported: {resource} SAN matcher with ignore_case"),
        ));
    }
    Ok(match &m.match_pattern {
        Some(P::Exact(s)) => NameMatcher::Exact(s.clone()),
        Some(P::Prefix(s)) => NameMatcher::Prefix(s.clone()),
        Some(P::Suffix(s)) => NameMatcher::Suffix(s.clone()),
        Some(P::Contains(s)) => NameMatcher::Contains(s.clone()),
        Some(P::SafeRegex(re)) => NameMatcher::Regex(Pattern::new(&re.regex).map_err(|e| {
            invalid(
                at(path, "safe_regex.regex"),
                format!("invalid regex {:?}: {e}", re.regex),
            )
        })?),
        Some(P::Custom(_)) => {
            return Err(unsupported(
                at(path, "custom"),
                format!("unsupported: {resource} custom SAN matcher"),
            ));
        }
        None => return Err(invalid(path, "a string matcher needs a pattern")),
    })
}

fn version(v: i32, path: &str, resource: &str) -> Result<TlsVersion, ConfigError> {
    use pb::tls_parameters::TlsProtocol as P;
    match P::try_from(v) {
        Ok(P::TlsAuto) => Ok(TlsVersion::Auto),
        Ok(P::TlSv12) => Ok(TlsVersion::Tls12),
        Ok(P::TlSv13) => Ok(TlsVersion::Tls13),
        Ok(P::TlSv10 | P::TlSv11) => Err(unsupported(
            path,
            format!("unsupported: {resource} TLS 1.0 and 1.1 (weft speaks TLS 1.2 and 1.3)"),
        )),
        Err(_) => Err(invalid(path, format!("unknown TLS version {v}"))),
    }
}

/// A data source as weft's model keeps it. Like Envoy at load, a file must be readable now and
/// an environment variable must be set; relative file names are resolved against the base
/// directory and stored absolute.
pub(crate) fn data_source(
    ds: &core::DataSource,
    path: &str,
    ctx: &Ctx<'_>,
) -> Result<DataSource, ConfigError> {
    use core::data_source::Specifier as S;
    match &ds.specifier {
        Some(S::Filename(f)) => {
            let file = ctx.base_dir.join(f);
            std::fs::File::open(&file).map_err(|e| {
                invalid(
                    at(path, "filename"),
                    format!("cannot read {}: {e}", file.display()),
                )
            })?;
            Ok(DataSource::File(file))
        }
        Some(S::InlineBytes(b)) => Ok(DataSource::Inline(b.clone())),
        Some(S::InlineString(s)) => Ok(DataSource::Inline(s.clone().into_bytes())),
        Some(S::EnvironmentVariable(v)) => {
            if std::env::var_os(v).is_none() {
                return Err(invalid(
                    at(path, "environment_variable"),
                    format!("environment variable {v:?} is not set"),
                ));
            }
            Ok(DataSource::Env(v.clone()))
        }
        None => Err(invalid(
            path,
            "a data source needs filename, inline_bytes, inline_string or environment_variable",
        )),
    }
}
