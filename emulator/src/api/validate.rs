//! Model constraints (required, length, range, enum, pattern) checked the way AWS reports them:
//! every violation of a request is collected, then returned as one `ValidationException`
//! reading `2 validation errors detected: Value '…' at 'maxResults' failed to satisfy
//! constraint: …; Value null at 'instanceId' failed to satisfy constraint: …`.
//!
//! Paths are the member names with a lower-case first letter, and list members are
//! `<list>.<n>.member` counted from 1, as AWS writes them.

use super::error::ApiError;

/// The violations found so far in one request.
#[derive(Debug, Default)]
pub(crate) struct Violations(Vec<String>);

impl Violations {
    pub(crate) fn new() -> Violations {
        Violations::default()
    }

    fn push(&mut self, value: Option<&str>, path: &str, constraint: &str) {
        let value = match value {
            Some(v) => format!("'{v}'"),
            None => "null".to_owned(),
        };
        self.0.push(format!(
            "Value {value} at '{path}' failed to satisfy constraint: {constraint}"
        ));
    }

    /// A required member is present. Returns the value for further checks.
    pub(crate) fn required<'a, T>(&mut self, path: &str, value: &'a Option<T>) -> Option<&'a T> {
        if value.is_none() {
            self.push(None, path, "Member must not be null");
        }
        value.as_ref()
    }

    /// A string's length (in characters) is within `min..=max`.
    pub(crate) fn length(&mut self, path: &str, value: &str, min: usize, max: usize) {
        let len = value.chars().count();
        if len < min {
            self.push(
                Some(value),
                path,
                &format!("Member must have length greater than or equal to {min}"),
            );
        } else if len > max {
            self.push(
                Some(value),
                path,
                &format!("Member must have length less than or equal to {max}"),
            );
        }
    }

    /// A list's length is within `min..=max`. `shown` is how the list is printed.
    pub(crate) fn count<T: AsRef<str>>(&mut self, path: &str, items: &[T], min: usize, max: usize) {
        let shown = format!(
            "[{}]",
            items
                .iter()
                .map(|s| s.as_ref().to_owned())
                .collect::<Vec<_>>()
                .join(", ")
        );
        self.count_shown(path, items.len(), &shown, min, max);
    }

    /// A list of `len` items, printed as `shown`, has a length within `min..=max`.
    pub(crate) fn count_shown(
        &mut self,
        path: &str,
        len: usize,
        shown: &str,
        min: usize,
        max: usize,
    ) {
        if len < min {
            self.push(
                Some(shown),
                path,
                &format!("Member must have length greater than or equal to {min}"),
            );
        } else if len > max {
            self.push(
                Some(shown),
                path,
                &format!("Member must have length less than or equal to {max}"),
            );
        }
    }

    /// An integer is within `min..=max`.
    pub(crate) fn range(&mut self, path: &str, value: i64, min: i64, max: i64) {
        let shown = value.to_string();
        if value < min {
            self.push(
                Some(&shown),
                path,
                &format!("Member must have value greater than or equal to {min}"),
            );
        } else if value > max {
            self.push(
                Some(&shown),
                path,
                &format!("Member must have value less than or equal to {max}"),
            );
        }
    }

    /// A string is one of `allowed`.
    pub(crate) fn one_of(&mut self, path: &str, value: &str, allowed: &[&str]) -> bool {
        let ok = allowed.contains(&value);
        if !ok {
            self.push(
                Some(value),
                path,
                &format!(
                    "Member must satisfy enum value set: [{}]",
                    allowed.join(", ")
                ),
            );
        }
        ok
    }

    /// A string matches the model's regular expression `pattern`; `ok` is the caller's check.
    pub(crate) fn pattern(&mut self, path: &str, value: &str, ok: bool, pattern: &str) {
        if !ok {
            self.push(
                Some(value),
                path,
                &format!("Member must satisfy regular expression pattern: {pattern}"),
            );
        }
    }

    /// `Ok` if nothing was found, else the `ValidationException`.
    pub(crate) fn finish(self) -> Result<(), ApiError> {
        match self.0.len() {
            0 => Ok(()),
            n => Err(ApiError::Validation(format!(
                "{n} validation error{} detected: {}",
                if n == 1 { "" } else { "s" },
                self.0.join("; ")
            ))),
        }
    }
}

/// Checks an optional `MaxResults` against `min..=max` and returns the page size to use.
pub(crate) fn max_results(
    v: &mut Violations,
    value: Option<i64>,
    min: i64,
    max: i64,
    default: usize,
) -> usize {
    match value {
        Some(n) => {
            v.range("maxResults", n, min, max);
            usize::try_from(n.clamp(min, max)).unwrap_or(default)
        }
        None => default,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_violation_reads_like_aws() {
        let mut v = Violations::new();
        v.range("maxResults", 1, 5, 50);
        assert_eq!(
            v.finish(),
            Err(ApiError::Validation(
                "1 validation error detected: Value '1' at 'maxResults' failed to satisfy \
                 constraint: Member must have value greater than or equal to 5"
                    .to_owned()
            ))
        );
    }

    #[test]
    fn several_violations_are_joined() {
        let mut v = Violations::new();
        v.required::<String>("instanceId", &None);
        v.one_of("resourceType", "Bucket", &["Document", "ManagedInstance"]);
        let Err(ApiError::Validation(msg)) = v.finish() else {
            panic!("expected a ValidationException")
        };
        assert_eq!(
            msg,
            "2 validation errors detected: Value null at 'instanceId' failed to satisfy \
             constraint: Member must not be null; Value 'Bucket' at 'resourceType' failed to \
             satisfy constraint: Member must satisfy enum value set: [Document, ManagedInstance]"
        );
    }
}
