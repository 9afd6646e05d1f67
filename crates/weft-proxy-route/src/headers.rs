//! Header mutations (`request_headers_to_add`/`_remove` and friends) with Envoy's append actions
//! and a small set of command operators.

use http::{HeaderMap, HeaderName, HeaderValue};

use crate::config::{HeaderAppendAction, HeaderOps, HeaderValueOption};
use crate::error::RouteConfigError;

/// A `%COMMAND%` operator allowed in header values. The proxy renders them through
/// [`HeaderFormatter`]; anything else is rejected when the table is built.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CommandOperator {
    /// `%DOWNSTREAM_REMOTE_ADDRESS%`: client address with port.
    DownstreamRemoteAddress,
    /// `%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%`.
    DownstreamRemoteAddressWithoutPort,
    /// `%DOWNSTREAM_REMOTE_PORT%`.
    DownstreamRemotePort,
    /// `%DOWNSTREAM_DIRECT_REMOTE_ADDRESS%`: the peer of the connection, ignoring XFF/PROXY.
    DownstreamDirectRemoteAddress,
    /// `%DOWNSTREAM_DIRECT_REMOTE_ADDRESS_WITHOUT_PORT%`.
    DownstreamDirectRemoteAddressWithoutPort,
    /// `%DOWNSTREAM_LOCAL_ADDRESS%`.
    DownstreamLocalAddress,
    /// `%DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT%`.
    DownstreamLocalAddressWithoutPort,
    /// `%DOWNSTREAM_LOCAL_PORT%`.
    DownstreamLocalPort,
    /// `%DOWNSTREAM_PEER_URI_SAN%`.
    DownstreamPeerUriSan,
    /// `%DOWNSTREAM_LOCAL_URI_SAN%`.
    DownstreamLocalUriSan,
    /// `%REQUESTED_SERVER_NAME%`: the SNI.
    RequestedServerName,
    /// `%UPSTREAM_REMOTE_ADDRESS%`.
    UpstreamRemoteAddress,
    /// `%UPSTREAM_CLUSTER%`.
    UpstreamCluster,
    /// `%HOSTNAME%`.
    Hostname,
    /// `%PROTOCOL%`: `HTTP/1.1`, `HTTP/2`...
    Protocol,
    /// `%ROUTE_NAME%`.
    RouteName,
    /// `%START_TIME%` or `%START_TIME(format)%` with a strftime-style format.
    StartTime(Option<String>),
    /// `%REQ(name?alternative):max_length%`: a request header.
    RequestHeader(HeaderRef),
    /// `%RESP(name?alternative):max_length%`: a response header.
    ResponseHeader(HeaderRef),
}

/// The argument of `%REQ(...)%` / `%RESP(...)%`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderRef {
    /// Header to read.
    pub name: HeaderName,
    /// Header read when `name` is absent.
    pub alternative: Option<HeaderName>,
    /// Truncate to this many bytes.
    pub max_length: Option<usize>,
}

impl CommandOperator {
    /// The operators accepted, as written in a configuration.
    pub const SUPPORTED: &'static [&'static str] = &[
        "DOWNSTREAM_REMOTE_ADDRESS",
        "DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT",
        "DOWNSTREAM_REMOTE_PORT",
        "DOWNSTREAM_DIRECT_REMOTE_ADDRESS",
        "DOWNSTREAM_DIRECT_REMOTE_ADDRESS_WITHOUT_PORT",
        "DOWNSTREAM_LOCAL_ADDRESS",
        "DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT",
        "DOWNSTREAM_LOCAL_PORT",
        "DOWNSTREAM_PEER_URI_SAN",
        "DOWNSTREAM_LOCAL_URI_SAN",
        "REQUESTED_SERVER_NAME",
        "UPSTREAM_REMOTE_ADDRESS",
        "UPSTREAM_CLUSTER",
        "HOSTNAME",
        "PROTOCOL",
        "ROUTE_NAME",
        "START_TIME[(format)]",
        "REQ(name[?alt])[:max]",
        "RESP(name[?alt])[:max]",
    ];

    fn parse(token: &str) -> Option<Self> {
        let (head, max_length) = match token.rsplit_once("):") {
            Some((head, max)) => (format!("{head})"), Some(max.parse::<usize>().ok()?)),
            None => (token.to_owned(), None),
        };
        let (name, arg) = match head.split_once('(') {
            Some((name, rest)) => (name, Some(rest.strip_suffix(')')?)),
            None => (head.as_str(), None),
        };
        let simple = |op: Self| (arg.is_none() && max_length.is_none()).then_some(op);
        match name {
            "DOWNSTREAM_REMOTE_ADDRESS" => simple(Self::DownstreamRemoteAddress),
            "DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT" => {
                simple(Self::DownstreamRemoteAddressWithoutPort)
            }
            "DOWNSTREAM_REMOTE_PORT" => simple(Self::DownstreamRemotePort),
            "DOWNSTREAM_DIRECT_REMOTE_ADDRESS" => simple(Self::DownstreamDirectRemoteAddress),
            "DOWNSTREAM_DIRECT_REMOTE_ADDRESS_WITHOUT_PORT" => {
                simple(Self::DownstreamDirectRemoteAddressWithoutPort)
            }
            "DOWNSTREAM_LOCAL_ADDRESS" => simple(Self::DownstreamLocalAddress),
            "DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT" => {
                simple(Self::DownstreamLocalAddressWithoutPort)
            }
            "DOWNSTREAM_LOCAL_PORT" => simple(Self::DownstreamLocalPort),
            "DOWNSTREAM_PEER_URI_SAN" => simple(Self::DownstreamPeerUriSan),
            "DOWNSTREAM_LOCAL_URI_SAN" => simple(Self::DownstreamLocalUriSan),
            "REQUESTED_SERVER_NAME" => simple(Self::RequestedServerName),
            "UPSTREAM_REMOTE_ADDRESS" => simple(Self::UpstreamRemoteAddress),
            "UPSTREAM_CLUSTER" => simple(Self::UpstreamCluster),
            "HOSTNAME" => simple(Self::Hostname),
            "PROTOCOL" => simple(Self::Protocol),
            "ROUTE_NAME" => simple(Self::RouteName),
            "START_TIME" if max_length.is_none() => Some(Self::StartTime(arg.map(str::to_owned))),
            "REQ" | "RESP" => {
                let (primary, alternative) = match arg?.split_once('?') {
                    Some((p, a)) => (p, Some(a)),
                    None => (arg?, None),
                };
                let header = |n: &str| HeaderName::from_bytes(n.as_bytes()).ok();
                let r = HeaderRef {
                    name: header(primary)?,
                    alternative: match alternative {
                        Some(a) => Some(header(a)?),
                        None => None,
                    },
                    max_length,
                };
                Some(if name == "REQ" {
                    Self::RequestHeader(r)
                } else {
                    Self::ResponseHeader(r)
                })
            }
            _ => None,
        }
    }
}

/// Renders command operators; implemented by the proxy, which knows the connection and stream.
///
/// Write the value into `out`. Write nothing when the value is unknown: Envoy's header
/// formatter omits empty values, and an option whose whole value renders empty is skipped
/// unless `keep_empty_value` is set.
pub trait HeaderFormatter {
    /// Appends the value of `operator` to `out`.
    fn format(&self, operator: &CommandOperator, out: &mut String);
}

/// A formatter that knows nothing: every operator renders empty. Enough for configurations with
/// literal values only.
impl HeaderFormatter for () {
    fn format(&self, _: &CommandOperator, _: &mut String) {}
}

#[derive(Debug, Clone)]
enum Segment {
    Literal(String),
    Operator(CommandOperator),
}

#[derive(Debug, Clone)]
enum ValueTemplate {
    Literal(HeaderValue),
    Formatted(Vec<Segment>),
}

#[derive(Debug, Clone)]
struct HeaderToAdd {
    name: HeaderName,
    value: ValueTemplate,
    action: HeaderAppendAction,
    keep_empty_value: bool,
}

/// The compiled header additions and removals of one level (route configuration, virtual host,
/// route or weighted cluster).
#[derive(Debug, Clone, Default)]
pub struct HeaderMutations {
    remove: Vec<HeaderName>,
    add: Vec<HeaderToAdd>,
}

impl HeaderMutations {
    /// Validates and compiles one level's operations; `field` prefixes error paths.
    pub fn compile(ops: &HeaderOps, field: &str) -> Result<Self, RouteConfigError> {
        let remove = ops
            .to_remove
            .iter()
            .enumerate()
            .map(|(i, name)| modifiable_name(name, &format!("{field}.to_remove[{i}]"), "removed"))
            .collect::<Result<_, _>>()?;
        let add = ops
            .to_add
            .iter()
            .enumerate()
            .map(|(i, opt)| compile_option(opt, &format!("{field}.to_add[{i}]")))
            .collect::<Result<_, _>>()?;
        Ok(Self { remove, add })
    }

    /// True when this level changes nothing.
    pub fn is_empty(&self) -> bool {
        self.remove.is_empty() && self.add.is_empty()
    }

    /// Applies this level as Envoy's `HeaderParser::evaluateHeaders` does: removals first; then
    /// every addition is decided against the headers as they are after the removals (so
    /// `ADD_IF_ABSENT` and `OVERWRITE_IF_EXISTS` do not see this level's own additions); then all
    /// overwrites are applied, then all appends.
    pub fn apply(&self, headers: &mut HeaderMap, formatter: &dyn HeaderFormatter) {
        for name in &self.remove {
            headers.remove(name);
        }
        if self.add.is_empty() {
            return;
        }
        let mut overwrite: Vec<(&HeaderName, HeaderValue)> = Vec::new();
        let mut append: Vec<(&HeaderName, HeaderValue)> = Vec::new();
        for h in &self.add {
            let Some(value) = h.render(formatter) else {
                continue;
            };
            match h.action {
                HeaderAppendAction::AppendIfExistsOrAdd => append.push((&h.name, value)),
                HeaderAppendAction::AddIfAbsent => {
                    if !headers.contains_key(&h.name) {
                        append.push((&h.name, value));
                    }
                }
                HeaderAppendAction::OverwriteIfExists => {
                    if headers.contains_key(&h.name) {
                        overwrite.push((&h.name, value));
                    }
                }
                HeaderAppendAction::OverwriteIfExistsOrAdd => overwrite.push((&h.name, value)),
            }
        }
        for (name, value) in overwrite {
            headers.insert(name.clone(), value);
        }
        for (name, value) in append {
            headers.append(name.clone(), value);
        }
    }
}

impl HeaderToAdd {
    fn render(&self, formatter: &dyn HeaderFormatter) -> Option<HeaderValue> {
        let value = match &self.value {
            ValueTemplate::Literal(v) => v.clone(),
            ValueTemplate::Formatted(segments) => {
                let mut out = String::new();
                for s in segments {
                    match s {
                        Segment::Literal(l) => out.push_str(l),
                        Segment::Operator(op) => formatter.format(op, &mut out),
                    }
                }
                // A formatted value that is not a valid header value is dropped rather than sent.
                HeaderValue::try_from(out).ok()?
            }
        };
        (!value.is_empty() || self.keep_empty_value).then_some(value)
    }
}

/// Applies several levels in order; later levels win conflicts.
pub fn apply_header_mutations<'a>(
    headers: &mut HeaderMap,
    levels: impl IntoIterator<Item = &'a HeaderMutations>,
    formatter: &dyn HeaderFormatter,
) {
    for level in levels {
        level.apply(headers, formatter);
    }
}

fn modifiable_name(name: &str, field: &str, verb: &str) -> Result<HeaderName, RouteConfigError> {
    if name.starts_with(':') || name.eq_ignore_ascii_case("host") {
        return Err(RouteConfigError::invalid(
            field,
            format!(":-prefixed or host headers may not be {verb}"),
        ));
    }
    HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
        RouteConfigError::invalid(field, format!("{name:?} is not a valid header name"))
    })
}

fn compile_option(opt: &HeaderValueOption, field: &str) -> Result<HeaderToAdd, RouteConfigError> {
    let name = modifiable_name(&opt.key, &format!("{field}.key"), "modified")?;
    let action = match (opt.append, opt.append_action) {
        (Some(_), Some(_)) => {
            return Err(RouteConfigError::invalid(
                field,
                "both append and append_action are set; drop the deprecated append",
            ));
        }
        (Some(true), None) => HeaderAppendAction::AppendIfExistsOrAdd,
        (Some(false), None) => HeaderAppendAction::OverwriteIfExistsOrAdd,
        (None, action) => action.unwrap_or_default(),
    };
    let value_field = format!("{field}.value");
    let segments = parse_template(&opt.value, &value_field)?;
    let value = match segments.as_slice() {
        [] => ValueTemplate::Literal(HeaderValue::from_static("")),
        [Segment::Literal(l)] => ValueTemplate::Literal(
            HeaderValue::try_from(l.as_str())
                .map_err(|_| RouteConfigError::invalid(&value_field, "not a valid header value"))?,
        ),
        _ => ValueTemplate::Formatted(segments),
    };
    Ok(HeaderToAdd {
        name,
        value,
        action,
        keep_empty_value: opt.keep_empty_value,
    })
}

fn parse_template(value: &str, field: &str) -> Result<Vec<Segment>, RouteConfigError> {
    let mut segments = Vec::new();
    let mut literal = String::new();
    let mut rest = value;
    while let Some(pos) = rest.find('%') {
        literal.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(tail) = after.strip_prefix('%') {
            literal.push('%');
            rest = tail;
            continue;
        }
        // An argument may itself contain `%` (`%START_TIME(%s)%`): look for the closing `%`
        // after the closing parenthesis.
        let name_end = after
            .find(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
            .unwrap_or(after.len());
        let search_from = if after[name_end..].starts_with('(') {
            after[name_end..]
                .find(')')
                .map_or(name_end, |close| name_end + close)
        } else {
            name_end
        };
        let Some(end) = after[search_from..].find('%').map(|e| e + search_from) else {
            return Err(RouteConfigError::invalid(
                field,
                format!(
                    "unterminated command operator in {value:?}; write %% for a literal percent sign"
                ),
            ));
        };
        let token = &after[..end];
        let op = CommandOperator::parse(token).ok_or_else(|| {
            RouteConfigError::UnknownCommandOperator {
                field: field.to_owned(),
                operator: token.to_owned(),
                value: value.to_owned(),
            }
        })?;
        if !literal.is_empty() {
            segments.push(Segment::Literal(std::mem::take(&mut literal)));
        }
        segments.push(Segment::Operator(op));
        rest = &after[end + 1..];
    }
    literal.push_str(rest);
    if !literal.is_empty() {
        segments.push(Segment::Literal(literal));
    }
    Ok(segments)
}

#[cfg(test)]
mod tests;
