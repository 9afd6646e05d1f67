//! Per-resource schema validation: the checks Istio's webhook runs on one resource alone.
//!
//! Every resource spec implements [`Validate`]. A check walks the spec with a [`Checker`],
//! which tracks the field path (`spec.http[0].route[1].weight`) so each issue can be traced to a
//! line of the user's file. Cross-resource checks live in the `weft-analyze` crate.

pub mod rules;

use crate::diag::Severity;

/// A resource spec that can check itself.
pub trait Validate {
    /// Records every problem with `self` in `cx`. Never panics, never stops at the first issue.
    fn validate(&self, cx: &mut Checker);
}

/// One problem found by validation, at a field path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldIssue {
    /// Path of the offending field, such as `spec.http[0].timeout`.
    pub path: String,
    /// Error (the resource is rejected) or warning (accepted, but suspicious).
    pub severity: Severity,
    /// What is wrong, and where it helps, how to fix it.
    pub message: String,
}

/// Walks a resource, tracking the current field path and collecting issues.
#[derive(Debug, Default)]
pub struct Checker {
    path: String,
    issues: Vec<FieldIssue>,
}

impl Checker {
    /// A checker whose paths start at `root` (usually `"spec"`).
    pub fn new(root: &str) -> Self {
        Self {
            path: root.to_owned(),
            issues: Vec::new(),
        }
    }

    /// Runs `f` with the path extended by `.name`.
    pub fn field<R>(&mut self, name: &str, f: impl FnOnce(&mut Self) -> R) -> R {
        let len = self.path.len();
        if !self.path.is_empty() {
            self.path.push('.');
        }
        self.path.push_str(name);
        let r = f(self);
        self.path.truncate(len);
        r
    }

    /// Runs `f` with the path extended by `[index]`.
    pub fn index<R>(&mut self, index: usize, f: impl FnOnce(&mut Self) -> R) -> R {
        let len = self.path.len();
        self.path.push('[');
        self.path.push_str(&index.to_string());
        self.path.push(']');
        let r = f(self);
        self.path.truncate(len);
        r
    }

    /// Runs `f` once per element of `items`, with the path extended by `.name[i]`.
    pub fn each<T>(&mut self, name: &str, items: &[T], mut f: impl FnMut(&mut Self, &T)) {
        self.field(name, |cx| {
            for (i, item) in items.iter().enumerate() {
                cx.index(i, |cx| f(cx, item));
            }
        });
    }

    /// The current path.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Records an error at the current path.
    pub fn error(&mut self, message: impl Into<String>) {
        self.push(Severity::Error, message.into());
    }

    /// Records a warning at the current path.
    pub fn warning(&mut self, message: impl Into<String>) {
        self.push(Severity::Warning, message.into());
    }

    /// Records an error at `.name` below the current path.
    pub fn error_at(&mut self, name: &str, message: impl Into<String>) {
        let message = message.into();
        self.field(name, |cx| cx.error(message));
    }

    /// Records a warning at `.name` below the current path.
    pub fn warning_at(&mut self, name: &str, message: impl Into<String>) {
        let message = message.into();
        self.field(name, |cx| cx.warning(message));
    }

    fn push(&mut self, severity: Severity, message: String) {
        self.issues.push(FieldIssue {
            path: self.path.clone(),
            severity,
            message,
        });
    }

    /// All issues recorded so far.
    pub fn issues(&self) -> &[FieldIssue] {
        &self.issues
    }

    /// Consumes the checker, returning its issues.
    pub fn into_issues(self) -> Vec<FieldIssue> {
        self.issues
    }
}

/// Validates `spec` with paths rooted at `spec` and returns the issues.
pub fn check<T: Validate + ?Sized>(spec: &T) -> Vec<FieldIssue> {
    let mut cx = Checker::new("spec");
    spec.validate(&mut cx);
    cx.into_issues()
}

/// Defines the helpers every kind's validation tests use, for spec type `$ty`:
/// `parse`, `issues`, `assert_issue`, `assert_error`, `assert_warning`, `assert_clean`.
#[cfg(test)]
macro_rules! validation_test_helpers {
    ($ty:ty) => {
        fn parse(v: serde_json::Value) -> $ty {
            serde_json::from_value(v).unwrap()
        }

        fn issues(v: serde_json::Value) -> Vec<$crate::validate::FieldIssue> {
            $crate::validate::check(&parse(v))
        }

        #[track_caller]
        fn assert_issue(
            v: serde_json::Value,
            severity: $crate::diag::Severity,
            path: &str,
            word: &str,
        ) {
            let found = issues(v);
            assert!(
                found
                    .iter()
                    .any(|i| i.severity == severity && i.path == path && i.message.contains(word)),
                "expected {severity:?} at {path} mentioning {word:?}, got {found:#?}"
            );
        }

        #[track_caller]
        fn assert_error(v: serde_json::Value, path: &str, word: &str) {
            assert_issue(v, $crate::diag::Severity::Error, path, word);
        }

        #[track_caller]
        fn assert_warning(v: serde_json::Value, path: &str, word: &str) {
            assert_issue(v, $crate::diag::Severity::Warning, path, word);
        }

        #[track_caller]
        fn assert_clean(v: serde_json::Value) {
            let found = issues(v);
            assert!(found.is_empty(), "expected no issues, got {found:#?}");
        }
    };
}
#[cfg(test)]
pub(crate) use validation_test_helpers;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_nest_and_unwind() {
        let mut cx = Checker::new("spec");
        cx.each("http", &[1, 2], |cx, n| {
            if *n == 2 {
                cx.field("route", |cx| cx.index(0, |cx| cx.error_at("weight", "bad")));
            }
        });
        cx.warning("top");
        let issues = cx.into_issues();
        assert_eq!(issues[0].path, "spec.http[1].route[0].weight");
        assert_eq!(issues[1].path, "spec");
        assert_eq!(issues[1].severity, Severity::Warning);
    }
}
