//! Named profiles from the AWS config and credentials files, as aws-config parses them.
//!
//! The files are read once, on first use (`AWS_CONFIG_FILE` and `AWS_SHARED_CREDENTIALS_FILE`
//! are honoured by aws-config), and kept: a Lambda's files do not change while it runs.
//!
//! [`Profiles::problem`] checks a profile the way aws-config will resolve it (its
//! `source_profile` chain, its credential source) and says in one sentence what is wrong, so a
//! misconfigured profile gets the same specific answer every time and never reaches a provider
//! that would fail in a less readable way.

use aws_config::profile::{Profile, ProfileSet};
use aws_runtime::env_config::file::EnvConfigFiles;
use aws_types::os_shim_internal::{Env, Fs};
use tokio::sync::OnceCell;

#[derive(Debug, Clone, thiserror::Error)]
#[error("the AWS config files could not be read")]
pub struct ProfilesError {
    /// Which file, which line and what is wrong there, for the log; the client gets the short
    /// message above.
    pub detail: String,
}

impl ProfilesError {
    /// Logs the detail: the file and line at fault.
    pub fn log(&self) {
        tracing::warn!(detail = %self.detail, "AWS config files could not be read");
    }
}

#[derive(Debug, Default)]
pub struct Profiles {
    set: OnceCell<Result<ProfileSet, ProfilesError>>,
}

/// The credential sources aws-config's profile provider knows for `credential_source`.
const CREDENTIAL_SOURCES: [&str; 3] = ["Environment", "Ec2InstanceMetadata", "EcsContainer"];

/// Names from the config files are shown (they are the server's, not the client's), bounded.
fn shown(name: &str) -> String {
    let mut out: String = name.chars().take(64).collect();
    if out.len() < name.len() {
        out.push_str("...");
    }
    out
}

/// Every message of an error's chain, for the log: `could not parse profile file: error
/// parsing /home/x/.aws/config on line 3: ...`.
fn chain_text(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(err) = source {
        text.push_str(": ");
        text.push_str(&err.to_string().replace('\n', " "));
        source = err.source();
    }
    text
}

impl Profiles {
    async fn set(&self) -> Result<&ProfileSet, ProfilesError> {
        self.set
            .get_or_init(|| async {
                aws_config::profile::load(
                    &Fs::real(),
                    &Env::real(),
                    &EnvConfigFiles::default(),
                    None,
                )
                .await
                .map_err(|err| ProfilesError {
                    detail: chain_text(&err),
                })
            })
            .await
            .as_ref()
            .map_err(Clone::clone)
    }

    /// Every profile in either file, sorted, `default` first.
    pub async fn names(&self) -> Result<Vec<String>, ProfilesError> {
        let mut names: Vec<String> = self.set().await?.profiles().map(str::to_owned).collect();
        names.sort_by(|a, b| (a != "default", a).cmp(&(b != "default", b)));
        Ok(names)
    }

    pub async fn contains(&self, name: &str) -> Result<bool, ProfilesError> {
        Ok(self.set().await?.get_profile(name).is_some())
    }

    /// The `region` a profile names, if any.
    pub async fn region(&self, name: &str) -> Option<String> {
        let set = self.set().await.ok()?;
        set.get_profile(name)?.get("region").map(str::to_owned)
    }

    /// The profile the default chain reads: `AWS_PROFILE`, else `default`.
    pub async fn selected(&self) -> Option<String> {
        let set = self.set().await.ok()?;
        Some(set.selected_profile().to_owned())
    }

    /// What is wrong with profile `name` (which exists), in one sentence, or `None` when
    /// aws-config can resolve it.
    pub async fn problem(&self, name: &str) -> Result<Option<String>, ProfilesError> {
        Ok(chain_problem(self.set().await?, name))
    }
}

/// Follows `name`'s chain as aws-config's `resolve_chain` does.
fn chain_problem(set: &ProfileSet, name: &str) -> Option<String> {
    let mut visited: Vec<&str> = Vec::new();
    let mut current = name;
    loop {
        let Some(profile) = set.get_profile(current) else {
            let from = visited.last().copied().unwrap_or(name);
            return Some(format!(
                "profile '{}' names source_profile '{}', which is not defined in the AWS config files",
                shown(from),
                shown(current)
            ));
        };
        if visited.contains(&current) {
            let mut path: Vec<String> = visited.iter().map(|p| shown(p)).collect();
            path.push(shown(current));
            return Some(format!(
                "profile '{}' forms a source_profile loop: {}",
                shown(name),
                path.join(" -> ")
            ));
        }
        visited.push(current);
        // After the first profile, static keys end the chain.
        if visited.len() > 1 && has_static_keys(profile) {
            return None;
        }
        let assumes_role =
            profile.get("role_arn").is_some() && profile.get("web_identity_token_file").is_none();
        if !assumes_role {
            return base_problem(profile);
        }
        match (
            profile.get("source_profile"),
            profile.get("credential_source"),
        ) {
            (Some(_), Some(_)) => {
                return Some(format!(
                    "profile '{}' sets both source_profile and credential_source; it may set only one",
                    shown(current)
                ));
            }
            (None, None) => {
                return Some(format!(
                    "profile '{}' sets role_arn but neither source_profile nor credential_source",
                    shown(current)
                ));
            }
            (Some(source), None) if source == current => return base_problem(profile),
            (Some(source), None) => current = source,
            (None, Some(source)) => return credential_source_problem(current, source),
        }
    }
}

fn has_static_keys(profile: &Profile) -> bool {
    profile.get("aws_access_key_id").is_some() && profile.get("aws_secret_access_key").is_some()
}

/// The profile where the chain ends: it must hold keys or name a source this server supports.
fn base_problem(profile: &Profile) -> Option<String> {
    let name = shown(profile.name());
    if let Some(source) = profile.get("credential_source") {
        return credential_source_problem(profile.name(), source);
    }
    if profile.get("web_identity_token_file").is_some() {
        return None;
    }
    let unsupported = |what: &str| {
        Some(format!(
            "profile '{name}' uses {what}, which this server does not support; use keys, a role or a credential_source"
        ))
    };
    if [
        "sso_session",
        "sso_start_url",
        "sso_account_id",
        "sso_role_name",
    ]
    .iter()
    .any(|key| profile.get(key).is_some())
    {
        return unsupported("AWS IAM Identity Center (SSO)");
    }
    if profile.get("login_session").is_some() {
        return unsupported("a console login session (login_session)");
    }
    if profile.get("credential_process").is_some() {
        return unsupported("credential_process");
    }
    match (
        profile.get("aws_access_key_id"),
        profile.get("aws_secret_access_key"),
    ) {
        (Some(_), Some(_)) => None,
        (Some(_), None) => Some(format!(
            "profile '{name}' sets aws_access_key_id but not aws_secret_access_key"
        )),
        (None, Some(_)) => Some(format!(
            "profile '{name}' sets aws_secret_access_key but not aws_access_key_id"
        )),
        (None, None) => Some(format!(
            "profile '{name}' holds no credentials: no keys, no role_arn and no credential_source"
        )),
    }
}

fn credential_source_problem(profile: &str, source: &str) -> Option<String> {
    if CREDENTIAL_SOURCES.contains(&source) {
        return None;
    }
    Some(format!(
        "profile '{}' has credential_source '{}'; it must be Environment, Ec2InstanceMetadata or EcsContainer",
        shown(profile),
        shown(source)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn set_of(config: &str) -> ProfileSet {
        let fs = Fs::from_slice(&[("/config", config), ("/credentials", "")]);
        let env = Env::from_slice(&[
            ("AWS_CONFIG_FILE", "/config"),
            ("AWS_SHARED_CREDENTIALS_FILE", "/credentials"),
        ]);
        aws_config::profile::load(&fs, &env, &EnvConfigFiles::default(), None)
            .await
            .expect("parses")
    }

    async fn problem(config: &str, name: &str) -> Option<String> {
        chain_problem(&set_of(config).await, name)
    }

    #[tokio::test]
    async fn each_mistake_is_named() {
        let role = "role_arn = arn:aws:iam::123456789012:role/x";
        let cases = [
            (
                format!("[profile a]\n{role}\nsource_profile = doesnotexist\n"),
                "names source_profile 'doesnotexist', which is not defined",
            ),
            (
                format!(
                    "[profile a]\n{role}\nsource_profile = b\n[profile b]\n{role}\nsource_profile = a\n"
                ),
                "forms a source_profile loop: a -> b -> a",
            ),
            (
                format!("[profile a]\n{role}\ncredential_source = Bogus\n"),
                "credential_source 'Bogus'; it must be",
            ),
            (
                "[profile a]\ncredential_process = /bin/echo secret\n".into(),
                "uses credential_process, which this server does not support",
            ),
            (
                "[profile a]\nsso_start_url = https://example.awsapps.com/start\nsso_account_id = 1\nsso_role_name = r\nsso_region = us-east-1\n".into(),
                "uses AWS IAM Identity Center (SSO)",
            ),
            (
                format!("[profile a]\n{role}\n"),
                "neither source_profile nor credential_source",
            ),
            (
                "[profile a]\naws_access_key_id = AKIAEXAMPLE0000000001\n".into(),
                "sets aws_access_key_id but not aws_secret_access_key",
            ),
            ("[profile a]\nregion = us-east-1\n".into(), "holds no credentials"),
        ];
        for (config, expected) in cases {
            let found = problem(&config, "a").await.unwrap_or_default();
            assert!(found.contains(expected), "{config}: {found}");
            assert!(!found.contains("https://"), "{found}");
            assert!(!found.contains("/bin/echo"), "{found}");
        }
    }

    #[tokio::test]
    async fn working_chains_have_no_problem() {
        let config = "[profile base]\naws_access_key_id = AKIAEXAMPLE0000000001\naws_secret_access_key = s\n\
            [profile deploy]\nrole_arn = arn:aws:iam::123456789012:role/x\nsource_profile = base\n\
            [profile ci]\nrole_arn = arn:aws:iam::123456789012:role/x\ncredential_source = Environment\n\
            [profile selfish]\nrole_arn = arn:aws:iam::123456789012:role/x\nsource_profile = selfish\naws_access_key_id = AKIAEXAMPLE0000000002\naws_secret_access_key = s\n\
            [profile web]\nrole_arn = arn:aws:iam::123456789012:role/x\nweb_identity_token_file = /token\n";
        for name in ["base", "deploy", "ci", "selfish", "web"] {
            assert_eq!(problem(config, name).await, None, "{name}");
        }
    }

    #[test]
    fn long_names_are_bounded() {
        assert_eq!(shown(&"x".repeat(100)).len(), 67);
    }
}
