//! Names several layers share: the five tools and the error kinds a tool call can end with.
//!
//! This module depends on nothing else in the crate, so that the wire formats, the tools, the
//! session store and the metrics can all name a tool or an error kind without importing from
//! each other.

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ToolName {
    GetCredentials,
    SetEnvironment,
    ListProfiles,
    GetAccountInfo,
    ValidateCredentials,
}

impl ToolName {
    pub const ALL: [ToolName; 5] = [
        ToolName::GetCredentials,
        ToolName::SetEnvironment,
        ToolName::ListProfiles,
        ToolName::GetAccountInfo,
        ToolName::ValidateCredentials,
    ];

    /// Accepts the reference document's names (`aws/get-credentials`) and the MCP-safe ones
    /// (`aws_get_credentials`).
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|t| t.reference_name() == name || t.mcp_name() == name)
    }

    pub fn reference_name(self) -> &'static str {
        match self {
            ToolName::GetCredentials => "aws/get-credentials",
            ToolName::SetEnvironment => "aws/set-environment",
            ToolName::ListProfiles => "aws/list-profiles",
            ToolName::GetAccountInfo => "aws/get-account-info",
            ToolName::ValidateCredentials => "aws/validate-credentials",
        }
    }

    /// The name in `tools/list`: many MCP hosts reject `/` in tool names.
    pub fn mcp_name(self) -> &'static str {
        match self {
            ToolName::GetCredentials => "aws_get_credentials",
            ToolName::SetEnvironment => "aws_set_environment",
            ToolName::ListProfiles => "aws_list_profiles",
            ToolName::GetAccountInfo => "aws_get_account_info",
            ToolName::ValidateCredentials => "aws_validate_credentials",
        }
    }

    /// Tools that test credentials (set-environment, validate-credentials): they are subject to
    /// the stricter rate limit, against credential stuffing.
    pub fn tests_credentials(self) -> bool {
        matches!(
            self,
            ToolName::SetEnvironment | ToolName::ValidateCredentials
        )
    }

    /// Tools whose answer depends on the caller's credentials, and so on the connection's (or
    /// the handle's) stored overrides. `list-profiles` reads only the config files.
    pub fn uses_credentials(self) -> bool {
        !matches!(self, ToolName::ListProfiles)
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

/// Why a tool call did not succeed: the reference document's error codes, and
/// `session_unavailable` (the connection's stored state could not be read, so the call was
/// refused rather than answered with other credentials).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    NoCredentials,
    InvalidCredentials,
    ClientError,
    ValidationError,
    ExecutionError,
    SessionUnavailable,
}

impl ErrorKind {
    pub const ALL: [ErrorKind; 6] = [
        ErrorKind::NoCredentials,
        ErrorKind::InvalidCredentials,
        ErrorKind::ClientError,
        ErrorKind::ValidationError,
        ErrorKind::ExecutionError,
        ErrorKind::SessionUnavailable,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::NoCredentials => "no_credentials",
            ErrorKind::InvalidCredentials => "invalid_credentials",
            ErrorKind::ClientError => "client_error",
            ErrorKind::ValidationError => "validation_error",
            ErrorKind::ExecutionError => "execution_error",
            ErrorKind::SessionUnavailable => "session_unavailable",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_name_styles_are_accepted() {
        for tool in ToolName::ALL {
            assert_eq!(ToolName::parse(tool.reference_name()), Some(tool));
            assert_eq!(ToolName::parse(tool.mcp_name()), Some(tool));
            assert!(!tool.mcp_name().contains('/'));
        }
        assert_eq!(ToolName::parse("aws/unknown"), None);
    }

    #[test]
    fn indexes_follow_all() {
        for (i, tool) in ToolName::ALL.into_iter().enumerate() {
            assert_eq!(tool.index(), i);
        }
        for (i, kind) in ErrorKind::ALL.into_iter().enumerate() {
            assert_eq!(kind.index(), i);
        }
    }
}
