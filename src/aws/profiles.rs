//! Named profiles from the AWS config and credentials files, as aws-config parses them.
//!
//! The files are read once, on first use (`AWS_CONFIG_FILE` and `AWS_SHARED_CREDENTIALS_FILE`
//! are honoured by aws-config), and kept: a Lambda's files do not change while it runs.

use aws_config::profile::ProfileSet;
use aws_runtime::env_config::file::EnvConfigFiles;
use aws_types::os_shim_internal::{Env, Fs};
use tokio::sync::OnceCell;

#[derive(Debug, Clone, thiserror::Error)]
#[error("the AWS config files could not be read")]
pub struct ProfilesError {
    /// Which file and line, for the log; the client gets the short message above.
    pub detail: String,
}

#[derive(Debug, Default)]
pub struct Profiles {
    set: OnceCell<Result<ProfileSet, ProfilesError>>,
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
                    detail: err.to_string(),
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
}
