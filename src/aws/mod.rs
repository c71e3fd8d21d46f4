//! AWS: credential resolution, named profiles, masking of secrets, and the STS calls.

pub mod credentials;
pub mod profiles;
pub mod secret;
pub mod sts;
