//! The session store in a DynamoDB table (`SESSION_TABLE`), so that every Lambda instance sees
//! the same state.
//!
//! One item per scope, keyed `pk` (`connection#...`, `environment#...`, `caller#...`):
//! `region`, `access_key_id`, the sealed `secret` and `token` (binary; never a plaintext
//! secret), the caller (`caller_arn`, `caller_account`, `source_ip`) and the handle's `binding`,
//! `connected_at` (ms), `expires_at` (s, the table's TTL attribute) and `cred_tat` (the
//! credential-tool bucket, µs). Reads are strongly consistent. Writes are conditional where two
//! instances could race: a handle is created only if its id is new and changed only by its
//! caller, and the bucket is updated only if it still holds what was read (else read again).

use std::collections::HashMap;

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;

use super::{Caller, Change, Gcra, Record, Scope, StoreError, Taken, now_s};
use crate::aws::OnFirstUse;
use crate::aws::error::AwsError;

/// How messages name the table's service.
const SERVICE: &str = "Amazon DynamoDB";

/// Attempts at a bucket update that another instance's update keeps overtaking.
const TOKEN_ATTEMPTS: usize = 8;

pub struct DynamoStore {
    client: OnFirstUse<aws_sdk_dynamodb::Client>,
    table: String,
}

type Item = HashMap<String, AttributeValue>;

fn failed<E>(
    err: &SdkError<E, aws_smithy_runtime_api::client::orchestrator::HttpResponse>,
) -> StoreError
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata + std::error::Error + 'static,
{
    let classified = AwsError::logged_sdk(SERVICE, err);
    StoreError {
        detail: classified.to_string(),
    }
}

fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_owned())
}

fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn b(value: &[u8]) -> AttributeValue {
    AttributeValue::B(Blob::new(value.to_vec()))
}

fn to_item(scope: &Scope<'_>, record: &Record) -> Item {
    let mut item = Item::new();
    item.insert("pk".into(), s(&scope.key()));
    let mut put_s = |name: &str, value: &Option<String>| {
        if let Some(value) = value {
            item.insert(name.into(), s(value));
        }
    };
    put_s("region", &record.region);
    put_s("access_key_id", &record.access_key_id);
    put_s("binding", &record.binding);
    if let Some(caller) = &record.caller {
        put_s("caller_arn", &caller.arn);
        put_s("caller_account", &caller.account_id);
        put_s("source_ip", &caller.source_ip);
    }
    if let Some(secret) = &record.secret {
        item.insert("secret".into(), b(secret));
    }
    if let Some(token) = &record.token {
        item.insert("token".into(), b(token));
    }
    if let Some(at) = record.connected_at {
        item.insert("connected_at".into(), n(at));
    }
    if let Some(tat) = record.credential_tat {
        item.insert("cred_tat".into(), n(tat));
    }
    item.insert("expires_at".into(), n(record.expires_at));
    item
}

fn from_item(item: &Item) -> Record {
    let text = |name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned();
    let bytes = |name: &str| {
        item.get(name)
            .and_then(|v| v.as_b().ok())
            .map(|b| b.as_ref().to_vec())
    };
    let number = |name: &str| item.get(name).and_then(|v| v.as_n().ok());
    let caller = Caller {
        arn: text("caller_arn"),
        account_id: text("caller_account"),
        source_ip: text("source_ip"),
    };
    Record {
        region: text("region"),
        access_key_id: text("access_key_id"),
        secret: bytes("secret"),
        token: bytes("token"),
        caller: caller.is_known().then_some(caller),
        binding: text("binding"),
        connected_at: number("connected_at").and_then(|v| v.parse().ok()),
        expires_at: number("expires_at")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
        credential_tat: number("cred_tat").and_then(|v| v.parse().ok()),
    }
}

impl DynamoStore {
    pub fn new(client: OnFirstUse<aws_sdk_dynamodb::Client>, table: String) -> Self {
        Self { client, table }
    }

    fn key(scope: &Scope<'_>) -> Item {
        HashMap::from([("pk".to_owned(), s(&scope.key()))])
    }

    async fn read(&self, scope: &Scope<'_>) -> Result<Option<Item>, StoreError> {
        let output = self
            .client
            .get()
            .get_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(scope)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|err| failed(&err))?;
        Ok(output.item)
    }

    pub async fn get(&self, scope: &Scope<'_>) -> Result<Option<Record>, StoreError> {
        let Some(item) = self.read(scope).await? else {
            return Ok(None);
        };
        // TTL deletion lags: an expired item is none.
        let record = from_item(&item);
        Ok((record.expires_at > now_s()).then_some(record))
    }

    pub async fn put(
        &self,
        scope: &Scope<'_>,
        record: &Record,
        only_new: bool,
    ) -> Result<bool, StoreError> {
        let mut request = self
            .client
            .get()
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_item(scope, record)));
        if only_new {
            request = request
                .condition_expression("attribute_not_exists(pk) OR expires_at <= :now")
                .expression_attribute_values(":now", n(now_s()));
        }
        match request.send().await {
            Ok(_) => Ok(true),
            Err(err) if conditional_check_failed(&err) => Ok(false),
            Err(err) => Err(failed(&err)),
        }
    }

    pub async fn change(
        &self,
        scope: &Scope<'_>,
        change: &Change,
        expires_at: u64,
        binding: Option<&str>,
    ) -> Result<bool, StoreError> {
        let mut set = Vec::new();
        let mut remove = Vec::new();
        let mut values = Item::new();
        // Names for attributes that are reserved words; DynamoDB refuses names an expression
        // does not use.
        let mut names = HashMap::new();
        if let Some(region) = &change.region {
            set.push("#region = :region");
            names.insert("#region".to_owned(), "region".to_owned());
            values.insert(":region".into(), s(region));
        }
        if let Some(credentials) = &change.credentials {
            set.push("access_key_id = :key_id");
            set.push("secret = :secret");
            values.insert(":key_id".into(), s(&credentials.access_key_id));
            values.insert(":secret".into(), b(&credentials.secret));
            names.insert("#token".to_owned(), "token".to_owned());
            match &credentials.token {
                Some(token) => {
                    set.push("#token = :token");
                    values.insert(":token".into(), b(token));
                }
                None => remove.push("#token"),
            }
        }
        values.insert(":expires".into(), n(expires_at));
        let mut request = self
            .client
            .get()
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(scope)))
            .set_expression_attribute_names((!names.is_empty()).then_some(names));
        match binding {
            Some(binding) => {
                set.push("expires_at = :expires");
                values.insert(":binding".into(), s(binding));
                values.insert(":now".into(), n(now_s()));
                request = request.condition_expression("binding = :binding AND expires_at > :now");
            }
            None => set.push("expires_at = if_not_exists(expires_at, :expires)"),
        }
        let mut expression = format!("SET {}", set.join(", "));
        if !remove.is_empty() {
            expression.push_str(&format!(" REMOVE {}", remove.join(", ")));
        }
        let sent = request
            .update_expression(expression)
            .set_expression_attribute_values(Some(values))
            .send()
            .await;
        match sent {
            Ok(_) => Ok(true),
            Err(err) if conditional_check_failed(&err) => Ok(false),
            Err(err) => Err(failed(&err)),
        }
    }

    pub async fn delete(&self, scope: &Scope<'_>) -> Result<(), StoreError> {
        self.client
            .get()
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(scope)))
            .send()
            .await
            .map(|_| ())
            .map_err(|err| failed(&err))
    }

    /// Reads the bucket, takes a token, and writes it back only if no other instance wrote in
    /// between; else reads again.
    pub async fn take_token(
        &self,
        scope: &Scope<'_>,
        bucket: &Gcra,
        now_us: u64,
        expires_at: u64,
    ) -> Result<Taken, StoreError> {
        for _ in 0..TOKEN_ATTEMPTS {
            let current = self
                .read(scope)
                .await?
                .and_then(|item| from_item(&item).credential_tat);
            let tat = match bucket.take(current, now_us) {
                Ok(tat) => tat,
                Err(wait) => return Ok(Taken::Wait(wait)),
            };
            let mut request = self
                .client
                .get()
                .update_item()
                .table_name(&self.table)
                .set_key(Some(Self::key(scope)))
                .update_expression(
                    "SET cred_tat = :tat, expires_at = if_not_exists(expires_at, :expires)",
                )
                .expression_attribute_values(":tat", n(tat))
                .expression_attribute_values(":expires", n(expires_at));
            request = match current {
                Some(old) => request
                    .condition_expression("cred_tat = :old")
                    .expression_attribute_values(":old", n(old)),
                None => request.condition_expression("attribute_not_exists(cred_tat)"),
            };
            match request.send().await {
                Ok(_) => return Ok(Taken::Token),
                Err(err) if conditional_check_failed(&err) => continue,
                Err(err) => return Err(failed(&err)),
            }
        }
        Err(StoreError {
            detail: "the credential-tool bucket kept changing under concurrent updates".into(),
        })
    }
}

fn conditional_check_failed<E: aws_sdk_dynamodb::error::ProvideErrorMetadata, R>(
    err: &SdkError<E, R>,
) -> bool {
    err.as_service_error()
        .and_then(|e| e.code())
        .is_some_and(|code| code == "ConditionalCheckFailedException")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_round_trip() {
        let record = Record {
            region: Some("eu-west-1".into()),
            access_key_id: Some("AKIAEXAMPLE000000001".into()),
            secret: Some(vec![1, 2, 3]),
            token: Some(vec![4, 5]),
            caller: Some(Caller {
                arn: Some("arn:aws:iam::123456789012:user/alice".into()),
                account_id: Some("123456789012".into()),
                source_ip: Some("203.0.113.10".into()),
            }),
            binding: Some("arn:arn:aws:iam::123456789012:user/alice".into()),
            connected_at: Some(1_764_000_000_000),
            expires_at: 1_764_007_500,
            credential_tat: Some(1_764_000_000_000_123),
        };
        let scope = Scope::Connection("L0SM9cOFvHcCIhw=".into());
        let item = to_item(&scope, &record);
        assert_eq!(item["pk"], s("connection#L0SM9cOFvHcCIhw="));
        assert_eq!(from_item(&item), record);
        assert_eq!(
            from_item(&to_item(&scope, &Record::default())),
            Record::default()
        );
    }
}
