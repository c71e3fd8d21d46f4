//! Tool arguments: typed reads that name the field and never echo what the client sent (a value
//! may be a secret sent in the wrong field, and so may an argument's name).

use serde_json::{Map, Value};

use super::ToolError;

pub struct Args<'a> {
    map: &'a Map<String, Value>,
}

impl<'a> Args<'a> {
    /// Checks that every argument is one the tool knows. The error names the arguments the
    /// tool takes, not the one it was sent.
    pub fn new(map: &'a Map<String, Value>, known: &[&str]) -> Result<Self, ToolError> {
        if map.keys().any(|k| !known.contains(&k.as_str())) {
            let message = if known.is_empty() {
                "unknown argument: this tool takes no arguments".to_owned()
            } else {
                format!("unknown argument: this tool takes {}", known.join(", "))
            };
            return Err(ToolError::new(super::ErrorKind::ValidationError, message));
        }
        Ok(Self { map })
    }

    /// An optional string; `null` counts as absent.
    pub fn string(&self, field: &str) -> Result<Option<&'a str>, ToolError> {
        match self.map.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(ToolError::validation(
                field,
                format!("'{field}' must be a string, not {}", kind(other)),
            )),
        }
    }

    /// An optional boolean; `null` counts as absent.
    pub fn boolean(&self, field: &str) -> Result<Option<bool>, ToolError> {
        match self.map.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(other) => Err(ToolError::validation(
                field,
                format!("'{field}' must be a boolean, not {}", kind(other)),
            )),
        }
    }

    /// An optional `environment_id`, as `aws_set_environment` answers them.
    pub fn environment_id(&self) -> Result<Option<&'a str>, ToolError> {
        let Some(id) = self.string("environment_id")? else {
            return Ok(None);
        };
        let valid = id.len() == 26
            && id.starts_with("env_")
            && id[4..]
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !valid {
            return Err(ToolError::validation(
                "environment_id",
                "'environment_id' must be one that aws_set_environment answered: env_ and 22 letters, digits, - or _",
            ));
        }
        Ok(Some(id))
    }

    /// An optional profile name.
    pub fn profile(&self) -> Result<Option<&'a str>, ToolError> {
        let Some(name) = self.string("profile")? else {
            return Ok(None);
        };
        let valid = !name.is_empty()
            && name.chars().count() <= 128
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.@+/:".contains(c));
        if !valid {
            return Err(ToolError::validation(
                "profile",
                "'profile' must be 1 to 128 characters: letters, digits and - _ . @ + / :",
            ));
        }
        Ok(Some(name))
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn unknown_arguments_name_what_is_expected_not_what_was_sent() {
        let m = map(json!({"wJalrXUtnFEMI/K7MDENG": "x"}));
        let err = Args::new(&m, &["profile"]).err().unwrap();
        assert_eq!(err.field, None);
        assert_eq!(err.message, "unknown argument: this tool takes profile");
    }

    #[test]
    fn wrong_types_name_the_field_not_the_value() {
        let m = map(json!({"include_session_token": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"}));
        let args = Args::new(&m, &["include_session_token"]).unwrap();
        let err = args.boolean("include_session_token").unwrap_err();
        assert_eq!(err.field.as_deref(), Some("include_session_token"));
        assert!(!err.message.contains("wJalr"));
        assert!(err.message.contains("must be a boolean, not a string"));
    }

    #[test]
    fn null_is_absent() {
        let m = map(json!({"profile": null}));
        assert_eq!(
            Args::new(&m, &["profile"]).unwrap().profile().unwrap(),
            None
        );
    }

    #[test]
    fn profile_names_are_checked() {
        for bad in [
            json!(""),
            json!("a b"),
            json!("x".repeat(129)),
            json!("[evil]"),
        ] {
            let m = map(json!({ "profile": bad }));
            let err = Args::new(&m, &["profile"]).unwrap().profile().unwrap_err();
            assert_eq!(err.field.as_deref(), Some("profile"));
        }
        let m = map(json!({"profile": "prod-eu_1.admin@corp"}));
        assert!(Args::new(&m, &["profile"]).unwrap().profile().is_ok());
    }
}
