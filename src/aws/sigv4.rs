//! SigV4 at both ends of an IAM-authorized API, through aws-sigv4: signing a request or
//! presigning a URL (the stdio proxy), and checking a signed request as API Gateway's
//! `AWS_IAM` authorization does (`serve --iam`). Checking re-signs the request with the
//! expected credentials, at the request's own time, over exactly the headers it says it signed,
//! and compares the signatures.

use std::borrow::Cow;
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    SignableBody, SignableRequest, SignatureLocation, SigningSettings, sign,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use http::{HeaderMap, Method, Uri};

/// The service API Gateway APIs are signed for.
pub const EXECUTE_API: &str = "execute-api";
/// The service Lambda Function URLs are signed for.
pub const LAMBDA: &str = "lambda";

const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// How far a signature's time may be from the verifier's clock (API Gateway allows 5 minutes).
pub const MAX_SKEW: Duration = Duration::from_secs(5 * 60);
/// The longest a presigned URL may be valid (SigV4's limit: seven days).
pub const MAX_EXPIRES: Duration = Duration::from_secs(7 * 24 * 60 * 60);

/// Signing failed: the request cannot be represented for signing (an invalid header value).
#[derive(Debug, thiserror::Error)]
#[error("the request could not be signed: {0}")]
pub struct SignError(String);

fn params<'a>(
    identity: &'a Identity,
    region: &'a str,
    service: &'a str,
    time: SystemTime,
    settings: SigningSettings,
) -> Result<aws_sigv4::http_request::SigningParams<'a>, SignError> {
    v4::SigningParams::builder()
        .identity(identity)
        .region(region)
        .name(service)
        .time(time)
        .settings(settings)
        .build()
        .map(Into::into)
        .map_err(|e| SignError(e.to_string()))
}

/// Signs `request` in place (`Authorization`, `X-Amz-Date`, and `X-Amz-Security-Token` for
/// temporary credentials), over its headers and its body.
pub fn sign_request(
    request: &mut http::Request<Vec<u8>>,
    credentials: &Credentials,
    region: &str,
    service: &str,
    time: SystemTime,
) -> Result<(), SignError> {
    let identity: Identity = credentials.clone().into();
    let params = params(&identity, region, service, time, SigningSettings::default())?;
    let headers: Vec<(&str, &str)> = request
        .headers()
        .iter()
        .filter_map(|(n, v)| Some((n.as_str(), v.to_str().ok()?)))
        .collect();
    let uri = request.uri().to_string();
    let signable = SignableRequest::new(
        request.method().as_str(),
        &uri,
        headers.into_iter(),
        SignableBody::Bytes(request.body()),
    )
    .map_err(|e| SignError(e.to_string()))?;
    let (instructions, _signature) = sign(signable, &params)
        .map_err(|e| SignError(e.to_string()))?
        .into_parts();
    instructions.apply_to_request_http1x(request);
    Ok(())
}

/// A presigned `GET` URL (the signature in the query), valid for `expires`: what a WebSocket
/// `$connect` carries, since a browser-style handshake cannot set `Authorization`.
pub fn presign(
    url: &Uri,
    credentials: &Credentials,
    region: &str,
    service: &str,
    expires: Duration,
    time: SystemTime,
) -> Result<Uri, SignError> {
    let identity: Identity = credentials.clone().into();
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(expires);
    let params = params(&identity, region, service, time, settings)?;
    let text = url.to_string();
    let signable = SignableRequest::new("GET", &text, std::iter::empty(), SignableBody::Bytes(&[]))
        .map_err(|e| SignError(e.to_string()))?;
    let (instructions, _signature) = sign(signable, &params)
        .map_err(|e| SignError(e.to_string()))?
        .into_parts();
    let mut request = http::Request::builder()
        .uri(url.clone())
        .body(())
        .map_err(|e| SignError(e.to_string()))?;
    instructions.apply_to_request_http1x(&mut request);
    Ok(request.uri().clone())
}

/// Why a request's signature was refused, as API Gateway words it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("Missing Authentication Token")]
    Missing,
    #[error("Authorization header requires {0}.")]
    Incomplete(&'static str),
    #[error("The security token included in the request is invalid.")]
    UnknownKey,
    #[error("Credential should be scoped to a valid region and to the service {service}.")]
    WrongScope { service: &'static str },
    #[error("Signature expired or not yet current: its time is more than 5 minutes from now.")]
    Expired,
    #[error(
        "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method."
    )]
    Mismatch,
}

impl Refused {
    /// The `x-amzn-ErrorType` API Gateway sends with it.
    pub fn error_type(&self) -> &'static str {
        match self {
            Refused::Missing => "MissingAuthenticationTokenException",
            Refused::Incomplete(_) => "IncompleteSignatureException",
            Refused::UnknownKey => "UnrecognizedClientException",
            Refused::WrongScope { .. } | Refused::Expired | Refused::Mismatch => {
                "InvalidSignatureException"
            }
        }
    }
}

/// What a request says about its signature, from `Authorization` or from the query.
struct Claimed {
    access_key_id: String,
    date: String,
    region: String,
    service: String,
    signed_headers: Vec<String>,
    signature: String,
    /// `X-Amz-Date`.
    time: String,
    /// `X-Amz-Expires` of a presigned URL.
    expires: Option<Duration>,
    location: SignatureLocation,
}

/// The query parameters a presigned URL adds; removed before re-signing.
const PRESIGN_PARAMS: [&str; 7] = [
    "X-Amz-Algorithm",
    "X-Amz-Credential",
    "X-Amz-Date",
    "X-Amz-Expires",
    "X-Amz-SignedHeaders",
    "X-Amz-Signature",
    "X-Amz-Security-Token",
];

fn credential_scope(claimed: &mut Claimed, credential: &str) -> Result<(), Refused> {
    let parts: Vec<&str> = credential.split('/').collect();
    let [key, date, region, service, "aws4_request"] = parts.as_slice() else {
        return Err(Refused::Incomplete(
            "a Credential of the form KEY/DATE/REGION/SERVICE/aws4_request",
        ));
    };
    claimed.access_key_id = (*key).to_owned();
    claimed.date = (*date).to_owned();
    claimed.region = (*region).to_owned();
    claimed.service = (*service).to_owned();
    Ok(())
}

fn claimed(headers: &HeaderMap, query: &[(String, String)]) -> Result<Claimed, Refused> {
    let mut claimed = Claimed {
        access_key_id: String::new(),
        date: String::new(),
        region: String::new(),
        service: String::new(),
        signed_headers: Vec::new(),
        signature: String::new(),
        time: String::new(),
        expires: None,
        location: SignatureLocation::Headers,
    };
    let param = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    if let Some(authorization) = headers.get(http::header::AUTHORIZATION) {
        let authorization = authorization
            .to_str()
            .map_err(|_| Refused::Incomplete("a readable Authorization header"))?;
        let Some(fields) = authorization.strip_prefix(ALGORITHM) else {
            return Err(Refused::Incomplete("the AWS4-HMAC-SHA256 algorithm"));
        };
        let field = |name: &str| {
            fields
                .split(',')
                .map(str::trim)
                .find_map(|f| f.strip_prefix(name)?.strip_prefix('='))
        };
        let credential = field("Credential").ok_or(Refused::Incomplete("a Credential"))?;
        credential_scope(&mut claimed, credential)?;
        claimed.signed_headers = field("SignedHeaders")
            .ok_or(Refused::Incomplete("SignedHeaders"))?
            .split(';')
            .map(str::to_owned)
            .collect();
        claimed.signature = field("Signature")
            .ok_or(Refused::Incomplete("a Signature"))?
            .to_owned();
        claimed.time = headers
            .get("x-amz-date")
            .and_then(|v| v.to_str().ok())
            .ok_or(Refused::Incomplete("an X-Amz-Date header"))?
            .to_owned();
    } else if let Some(signature) = param("X-Amz-Signature") {
        if param("X-Amz-Algorithm") != Some(ALGORITHM) {
            return Err(Refused::Incomplete("X-Amz-Algorithm=AWS4-HMAC-SHA256"));
        }
        claimed.location = SignatureLocation::QueryParams;
        claimed.signature = signature.to_owned();
        credential_scope(
            &mut claimed,
            param("X-Amz-Credential").ok_or(Refused::Incomplete("X-Amz-Credential"))?,
        )?;
        claimed.signed_headers = param("X-Amz-SignedHeaders")
            .ok_or(Refused::Incomplete("X-Amz-SignedHeaders"))?
            .split(';')
            .map(str::to_owned)
            .collect();
        claimed.time = param("X-Amz-Date")
            .ok_or(Refused::Incomplete("X-Amz-Date"))?
            .to_owned();
        let expires = param("X-Amz-Expires")
            .and_then(|e| e.parse::<u64>().ok())
            .map(Duration::from_secs)
            .filter(|e| *e <= MAX_EXPIRES)
            .ok_or(Refused::Incomplete(
                "X-Amz-Expires of at most 604800 seconds",
            ))?;
        claimed.expires = Some(expires);
    } else {
        return Err(Refused::Missing);
    }
    Ok(claimed)
}

/// `20261124T160000Z` as a time.
fn parse_time(text: &str) -> Option<SystemTime> {
    let time = chrono::NaiveDateTime::parse_from_str(text, "%Y%m%dT%H%M%SZ").ok()?;
    let seconds = u64::try_from(time.and_utc().timestamp()).ok()?;
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(seconds))
}

/// Equal, in time that does not depend on where two signatures first differ.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// Checks SigV4 signatures as API Gateway's `AWS_IAM` authorization does, against one set of
/// credentials.
pub struct Verifier {
    credentials: Credentials,
    /// The region the API is in, when known: a signature scoped to another is refused.
    region: Option<String>,
    service: &'static str,
}

impl Verifier {
    pub fn new(credentials: Credentials, region: Option<String>) -> Self {
        Self {
            credentials,
            region,
            service: EXECUTE_API,
        }
    }

    /// Checks a request: `uri` as received (path and query), `host` the `Host` it was sent to,
    /// `body` its bytes (empty for a `$connect`).
    pub fn verify(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        body: &[u8],
        now: SystemTime,
    ) -> Result<(), Refused> {
        let query: Vec<(String, String)> = uri
            .query()
            .map(|q| {
                url::form_urlencoded::parse(q.as_bytes())
                    .into_owned()
                    .collect()
            })
            .unwrap_or_default();
        let claimed = claimed(headers, &query)?;
        if claimed.access_key_id != self.credentials.access_key_id() {
            return Err(Refused::UnknownKey);
        }
        if claimed.service != self.service
            || self.region.as_deref().is_some_and(|r| r != claimed.region)
        {
            return Err(Refused::WrongScope {
                service: self.service,
            });
        }
        let time = parse_time(&claimed.time).ok_or(Refused::Incomplete(
            "an X-Amz-Date of the form YYYYMMDDTHHMMSSZ",
        ))?;
        if !claimed.time.starts_with(&claimed.date) {
            return Err(Refused::Mismatch);
        }
        let early = time.duration_since(now).unwrap_or_default();
        let late = now.duration_since(time).unwrap_or_default();
        let allowed = claimed.expires.unwrap_or(MAX_SKEW);
        if early > MAX_SKEW || late > allowed {
            return Err(Refused::Expired);
        }

        // Re-sign what the client says it signed, at its time, with the expected credentials.
        let identity: Identity = self.credentials.clone().into();
        let mut settings = SigningSettings::default();
        // Exactly the headers named, nothing left out by a default list.
        settings.excluded_headers = None;
        settings.signature_location = claimed.location;
        settings.expires_in = claimed.expires;
        let params = params(&identity, &claimed.region, self.service, time, settings)
            .map_err(|_| Refused::Mismatch)?;
        // The signer adds x-amz-date and the session token itself, from the time and the
        // credentials.
        let derived = ["x-amz-date", "x-amz-security-token"];
        let mut signed: Vec<(&str, Cow<'_, str>)> = Vec::new();
        for name in &claimed.signed_headers {
            if derived.contains(&name.as_str()) && claimed.location == SignatureLocation::Headers {
                continue;
            }
            let values: Vec<&str> = headers
                .get_all(name.as_str())
                .iter()
                .filter_map(|v| v.to_str().ok())
                .collect();
            if values.is_empty() {
                return Err(Refused::Mismatch);
            }
            for value in values {
                signed.push((name.as_str(), Cow::Borrowed(value)));
            }
        }
        let unsigned_payload = headers
            .get("x-amz-content-sha256")
            .is_some_and(|v| v.as_bytes() == b"UNSIGNED-PAYLOAD");
        let body = if unsigned_payload {
            SignableBody::UnsignedPayload
        } else {
            SignableBody::Bytes(body)
        };
        // The URI without the presigning parameters, which the signer puts back.
        let kept: Vec<(String, String)> = query
            .into_iter()
            .filter(|(k, _)| !PRESIGN_PARAMS.contains(&k.as_str()))
            .collect();
        let mut target = format!("http://placeholder{}", uri.path());
        if !kept.is_empty() {
            target.push('?');
            target.push_str(
                &url::form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(kept)
                    .finish(),
            );
        }
        let signable = SignableRequest::new(
            method.as_str(),
            &target,
            signed.iter().map(|(n, v)| (*n, v.as_ref())),
            body,
        )
        .map_err(|_| Refused::Mismatch)?;
        let output = sign(signable, &params).map_err(|_| Refused::Mismatch)?;
        if same(output.signature(), &claimed.signature) {
            Ok(())
        } else {
            Err(Refused::Mismatch)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn credentials(token: Option<&str>) -> Credentials {
        Credentials::new(
            "AKIDEXAMPLE000000001",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            token.map(str::to_owned),
            None,
            "test",
        )
    }

    fn signed_post(creds: &Credentials, time: SystemTime, body: &[u8]) -> http::Request<Vec<u8>> {
        let mut request = http::Request::builder()
            .method("POST")
            .uri("http://127.0.0.1:8000/mcp")
            .header("host", "127.0.0.1:8000")
            .header("content-type", "application/json")
            .header("user-agent", "proxy/1")
            .body(body.to_vec())
            .unwrap();
        sign_request(&mut request, creds, "us-east-1", EXECUTE_API, time).unwrap();
        request
    }

    fn verify(
        verifier: &Verifier,
        request: &http::Request<Vec<u8>>,
        now: SystemTime,
    ) -> Result<(), Refused> {
        verifier.verify(
            request.method(),
            request.uri(),
            request.headers(),
            request.body(),
            now,
        )
    }

    #[test]
    fn a_signed_request_passes_and_any_change_fails() {
        let now = SystemTime::now();
        for token in [None, Some("FwoGZXIvYXdzEXAMPLETOKEN")] {
            let creds = credentials(token);
            let verifier = Verifier::new(creds.clone(), Some("us-east-1".into()));
            let request = signed_post(&creds, now, br#"{"jsonrpc":"2.0"}"#);
            assert_eq!(verify(&verifier, &request, now), Ok(()));

            let mut body = request.clone();
            body.body_mut().push(b' ');
            assert_eq!(verify(&verifier, &body, now), Err(Refused::Mismatch));

            let mut header = request.clone();
            header
                .headers_mut()
                .insert("content-type", HeaderValue::from_static("text/plain"));
            assert_eq!(verify(&verifier, &header, now), Err(Refused::Mismatch));

            // User-Agent is not signed: a proxy may change it.
            let mut agent = request.clone();
            agent
                .headers_mut()
                .insert("user-agent", HeaderValue::from_static("other"));
            assert_eq!(verify(&verifier, &agent, now), Ok(()));

            let late = now + Duration::from_secs(6 * 60);
            assert_eq!(verify(&verifier, &request, late), Err(Refused::Expired));

            let mut unsigned = request.clone();
            unsigned.headers_mut().remove("authorization");
            assert_eq!(verify(&verifier, &unsigned, now), Err(Refused::Missing));
        }
    }

    #[test]
    fn wrong_keys_and_scopes_are_refused() {
        let now = SystemTime::now();
        let creds = credentials(None);
        let verifier = Verifier::new(creds.clone(), Some("us-east-1".into()));
        let wrong_secret = Credentials::new(
            creds.access_key_id(),
            "not-the-secret-0000000000000000000000000",
            None,
            None,
            "test",
        );
        let request = signed_post(&wrong_secret, now, b"{}");
        assert_eq!(verify(&verifier, &request, now), Err(Refused::Mismatch));
        let other_key = Credentials::new("AKIDOTHER00000000001", "s", None, None, "test");
        let request = signed_post(&other_key, now, b"{}");
        assert_eq!(verify(&verifier, &request, now), Err(Refused::UnknownKey));
        let elsewhere = Verifier::new(creds.clone(), Some("eu-west-1".into()));
        let request = signed_post(&creds, now, b"{}");
        assert!(matches!(
            verify(&elsewhere, &request, now),
            Err(Refused::WrongScope { .. })
        ));
    }

    #[test]
    fn presigned_urls_pass_until_they_expire() {
        let now = SystemTime::now();
        for token in [None, Some("FwoGZXIvYXdzEXAMPLETOKEN")] {
            let creds = credentials(token);
            let verifier = Verifier::new(creds.clone(), None);
            let url: Uri = "ws://127.0.0.1:8000/ws?stage=local".parse().unwrap();
            let presigned = presign(
                &url,
                &creds,
                "us-east-1",
                EXECUTE_API,
                Duration::from_secs(60),
                now,
            )
            .unwrap();
            assert!(presigned.query().unwrap().contains("X-Amz-Signature="));
            let mut headers = HeaderMap::new();
            headers.insert("host", HeaderValue::from_static("127.0.0.1:8000"));
            let check = |uri: &Uri, at| verifier.verify(&Method::GET, uri, &headers, &[], at);
            assert_eq!(check(&presigned, now), Ok(()));
            assert_eq!(
                check(&presigned, now + Duration::from_secs(61)),
                Err(Refused::Expired)
            );
            let tampered: Uri = presigned
                .to_string()
                .replace("stage=local", "stage=other")
                .parse()
                .unwrap();
            assert_eq!(check(&tampered, now), Err(Refused::Mismatch));
            let mut other_host = HeaderMap::new();
            other_host.insert("host", HeaderValue::from_static("127.0.0.1:9000"));
            assert_eq!(
                verifier.verify(&Method::GET, &presigned, &other_host, &[], now),
                Err(Refused::Mismatch)
            );
        }
    }

    #[test]
    fn malformed_authorization_is_incomplete_not_a_panic() {
        let verifier = Verifier::new(credentials(None), None);
        for value in [
            "AWS4-HMAC-SHA256",
            "AWS4-HMAC-SHA256 Credential=a/b",
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE000000001/20261124/us-east-1/execute-api/aws4_request",
            "Basic dXNlcjpwYXNz",
        ] {
            let mut headers = HeaderMap::new();
            headers.insert("authorization", HeaderValue::from_str(value).unwrap());
            let uri: Uri = "/mcp".parse().unwrap();
            let refused = verifier
                .verify(&Method::POST, &uri, &headers, b"", SystemTime::now())
                .unwrap_err();
            assert!(
                matches!(refused, Refused::Incomplete(_)),
                "{value}: {refused:?}"
            );
        }
    }
}
