//! The one error type of this crate: why a route configuration was rejected.

/// Why [`RouteTable::new`](crate::RouteTable::new) rejected a configuration.
///
/// Every variant names the field that caused it, as a path such as
/// `virtual_hosts[2].routes[0].match.headers[1].safe_regex_match`, so a control plane can turn it
/// into a NACK that points at the offending resource. A rejected configuration never reaches the
/// data path, exactly as Envoy keeps serving the previous configuration after a NACK.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RouteConfigError {
    /// The same domain (compared case-insensitively) is listed twice, in one virtual host or in
    /// two. Envoy rejects this with "Only unique values for domains are permitted".
    #[error(
        "{field}: domain {domain:?} is listed more than once; every domain must be unique across the virtual hosts of a route configuration"
    )]
    DuplicateDomain {
        /// Path of the second occurrence.
        field: String,
        /// The duplicated domain, lower-cased.
        domain: String,
    },
    /// A second virtual host claims the `*` domain. Envoy: "Only a single wildcard domain is
    /// permitted".
    #[error("{field}: only one virtual host may use the \"*\" domain, and {first:?} already does")]
    MultipleDefaultVirtualHosts {
        /// Path of the second `*`.
        field: String,
        /// Name of the virtual host that claimed `*` first.
        first: String,
    },
    /// A regular expression did not compile (syntax the `regex` crate rejects, or a program
    /// larger than the size limit).
    #[error("{field}: regex {pattern:?} is invalid: {reason}")]
    InvalidRegex {
        /// Path of the regex field.
        field: String,
        /// The pattern as configured.
        pattern: String,
        /// What the regex compiler said.
        reason: String,
    },
    /// A `retry_on` entry is not one of Envoy's condition names.
    /// A header value uses a `%COMMAND%` operator this crate does not know.
    #[error("{field}: unsupported command operator %{operator}% in header value {value:?} (supported: {supported}; write %% for a literal percent sign)", supported = crate::headers::CommandOperator::SUPPORTED.join(", "))]
    UnknownCommandOperator {
        /// Path of the header value.
        field: String,
        /// The operator name between the percent signs.
        operator: String,
        /// The whole configured value.
        value: String,
    },
    /// Any other rule of Envoy's configuration validation; `message` says which and how to fix it.
    #[error("{field}: {message}")]
    Invalid {
        /// Path of the offending field.
        field: String,
        /// What is wrong.
        message: String,
    },
}

impl RouteConfigError {
    pub(crate) fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }
}
