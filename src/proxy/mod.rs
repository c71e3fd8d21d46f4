//! `proxy`: MCP on stdin and stdout for desktop hosts (Claude Desktop and Code, VS Code,
//! Cursor), forwarded to a deployed stack or a local `serve`:
//!
//! - `ws://` / `wss://`: the WebSocket API, one connection, its `$connect` presigned with SigV4
//!   ([`websocket`]);
//! - `http://` / `https://`: Streamable HTTP, each message POSTed and signed with SigV4, with
//!   the routing headers the specification asks for ([`http`]).
//!
//! One message per line each way (the stdio transport), passed through unchanged. Signing uses
//! the local AWS credentials (aws-config: a profile, SSO, the environment) through aws-sigv4.
//! A refused signature is reported as one line on stderr, and every request gets an answer, a
//! JSON-RPC error when the endpoint gave none, so that a host never waits on a lost message.
//! The proxy stops when stdin closes, once the answers owed have arrived.

mod http;
mod websocket;

use std::borrow::Cow;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_credential_types::Credentials;
use aws_runtime::env_config::file::EnvConfigFiles;
use aws_types::os_shim_internal::{Env, Fs};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;

use crate::aws::credentials::Cached;
use crate::aws::sigv4;
use crate::aws::{CaBundle, TrustRoots};

/// The largest message read from stdin; a longer line is answered with an error, not sent.
pub const MAX_LINE_BYTES: usize = 1024 * 1024;
/// How long one request may take end to end (a tool call is bounded well below this).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(45);
/// Connecting (TCP, TLS, the WebSocket handshake).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// Loading the local credentials, whatever the provider (the SDK's own calls, to STS or SSO,
/// give up after 20 s; a `credential_process` has no other limit).
pub const CREDENTIALS_TIMEOUT: Duration = Duration::from_secs(30);
/// After stdin closes, how long answers still owed are waited for.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(50);

/// The JSON-RPC code of an answer the proxy makes itself: the endpoint could not be reached,
/// refused the request or gave no answer (implementation-defined range; the SDKs use -32000
/// for a closed connection).
pub const UPSTREAM_ERROR: i32 = -32000;

/// What `mcp-aws-tools proxy` was asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    pub url: String,
    pub profile: Option<String>,
    pub region: Option<String>,
    /// Sign requests (`--no-sign` turns it off, for a local `serve` without `--iam`).
    pub sign: bool,
}

/// Why the proxy could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(
        "the URL must start with ws://, wss://, http:// or https:// (a WebSocket API stage, or an endpoint ending in /mcp)"
    )]
    Scheme,
    #[error("the URL is not valid: {0}")]
    Url(String),
    #[error("no AWS region to sign for: pass --region, or set one in the profile or AWS_REGION")]
    NoRegion,
    #[error("TLS could not be set up: {0}")]
    Tls(String),
    #[error("AWS_CA_BUNDLE: {0}")]
    CaBundle(String),
    #[error("the ca_bundle of profile {profile}: {reason}")]
    ProfileCaBundle { profile: String, reason: String },
}

/// Signs requests with the local credentials, for one region and service.
pub struct Signer {
    /// The credentials, reused until five minutes before they expire; `None` with `--no-sign`.
    cached: Option<Cached>,
    pub region: String,
    pub service: &'static str,
    profile: Option<String>,
}

impl Signer {
    /// Current credentials. A failure is also reported on stderr (once per distinct reason).
    pub async fn credentials(&self, output: &Output) -> Result<Credentials, String> {
        let Some(cached) = &self.cached else {
            return Err("signing is off".into());
        };
        let profile = self
            .profile
            .as_deref()
            .map_or("the default credential chain".to_owned(), |p| {
                format!("profile {p}")
            });
        let problem = match tokio::time::timeout(CREDENTIALS_TIMEOUT, cached.get()).await {
            Ok(Ok(credentials)) => return Ok(credentials),
            Ok(Err(cause)) => format!("no AWS credentials to sign with from {profile}: {cause}"),
            Err(_) => format!(
                "no AWS credentials to sign with: {profile} did not answer within {}s",
                CREDENTIALS_TIMEOUT.as_secs()
            ),
        };
        output.report(&problem);
        Err(problem)
    }

    pub fn signs(&self) -> bool {
        self.cached.is_some()
    }
}

/// The service and region a URL's host names: `*.execute-api.REGION.amazonaws.com` (API
/// Gateway) or `*.lambda-url.REGION.on.aws` (a Function URL).
pub fn service_and_region(host: &str) -> (&'static str, Option<String>) {
    let labels: Vec<&str> = host.split('.').collect();
    if let Some(i) = labels.iter().position(|l| *l == "lambda-url") {
        return (sigv4::LAMBDA, labels.get(i + 1).map(|r| (*r).to_owned()));
    }
    if let Some(i) = labels.iter().position(|l| *l == "execute-api") {
        return (
            sigv4::EXECUTE_API,
            labels.get(i + 1).map(|r| (*r).to_owned()),
        );
    }
    (sigv4::EXECUTE_API, None)
}

/// TLS for `https://` and `wss://`: rustls with ring, trusting `bundle` (`AWS_CA_BUNDLE`) when
/// there is one, else the system's roots (which honours `SSL_CERT_FILE` and `SSL_CERT_DIR`); no
/// roots are loaded for plain `http://`/`ws://`.
pub fn tls_config(
    roots: bool,
    bundle: Option<&CaBundle>,
) -> Result<Arc<rustls::ClientConfig>, StartError> {
    let store = match (roots, bundle) {
        (false, _) => rustls::RootCertStore::empty(),
        (true, Some(bundle)) => bundle.root_store(),
        (true, None) => TrustRoots::System.root_store(),
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| StartError::Tls(e.to_string()))?
        .with_root_certificates(store)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Why the endpoint at `host` gave no answer, in one sentence: a certificate no trusted root
/// vouches for (a TLS-inspecting proxy, a private CA) is named as such, with what to set.
pub fn unreached(host: &str, error: &(dyn std::error::Error + 'static)) -> String {
    if crate::aws::error::untrusted_certificate(error) {
        format!(
            "the endpoint at {host} presented a certificate no trusted root vouches for; set AWS_CA_BUNDLE or the profile's ca_bundle to the CA bundle of the endpoint or proxy"
        )
    } else {
        format!(
            "the endpoint at {host} could not be reached ({})",
            root_cause(error)
        )
    }
}

/// The innermost error of a chain, which names what happened ("Connection refused").
pub fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut current = error;
    while let Some(source) = current.source() {
        current = source;
    }
    current.to_string()
}

/// What the proxy reads of a message to route and answer it; the message itself is sent as
/// it came.
#[derive(Debug, Default, Clone)]
pub struct Peek {
    /// A single request's id.
    pub id: Option<Value>,
    /// The answers the endpoint owes for this message, by id: the request's; each request's
    /// in a batch; `null` for what it cannot read (not JSON, no message), which it answers
    /// with `id: null`. Empty for notifications and responses.
    pub owed: Vec<Value>,
    pub method: Option<String>,
    /// `_meta["io.modelcontextprotocol/protocolVersion"]`: a 2026-07-28 request.
    pub modern_version: Option<String>,
    /// The name `Mcp-Name` carries: a tool's or a prompt's name, a resource's URI.
    pub name: Option<String>,
}

/// The id a message is owed an answer under, if any.
fn owed_for(message: &Value) -> Option<Value> {
    let Value::Object(object) = message else {
        return Some(Value::Null);
    };
    if object.contains_key("result") || object.contains_key("error") {
        return None;
    }
    match (object.get("method"), object.get("id")) {
        (Some(_), None) => None,
        (_, Some(id)) if id.is_string() || id.is_number() => Some(id.clone()),
        _ => Some(Value::Null),
    }
}

impl Peek {
    pub fn of(line: &str) -> Peek {
        let message = match serde_json::from_str::<Value>(line) {
            Ok(Value::Object(message)) => message,
            Ok(Value::Array(items)) if !items.is_empty() => {
                return Peek {
                    owed: items.iter().filter_map(owed_for).collect(),
                    ..Peek::default()
                };
            }
            _ => {
                return Peek {
                    owed: vec![Value::Null],
                    ..Peek::default()
                };
            }
        };
        let params = message.get("params");
        let method = message.get("method").and_then(Value::as_str);
        let name = match method {
            Some("tools/call" | "prompts/get") => params.and_then(|p| p.get("name")),
            Some("resources/read") => params.and_then(|p| p.get("uri")),
            _ => None,
        };
        let owed = owed_for(&Value::Object(message.clone()));
        Peek {
            id: owed.clone().filter(|id| !id.is_null()),
            owed: owed.into_iter().collect(),
            method: method.map(str::to_owned),
            modern_version: params
                .and_then(|p| p.get("_meta"))
                .and_then(|m| m.get(crate::protocol::mcp::PROTOCOL_VERSION_KEY))
                .and_then(Value::as_str)
                .map(str::to_owned),
            name: name.and_then(Value::as_str).map(str::to_owned),
        }
    }

    /// Whether the endpoint owes this message an answer.
    pub fn is_request(&self) -> bool {
        !self.owed.is_empty()
    }
}

/// Lines to stdout, one writer; and the one stderr line per kind of trouble.
#[derive(Clone)]
pub struct Output {
    lines: mpsc::UnboundedSender<Option<String>>,
    reported: Arc<std::sync::Mutex<Vec<String>>>,
}

impl Output {
    fn start() -> (Output, tokio::task::JoinHandle<()>) {
        let (lines, mut queue) = mpsc::unbounded_channel::<Option<String>>();
        let writer = tokio::spawn(async move {
            let mut stdout = tokio::io::stdout();
            // `None`: everything queued before it is written; the proxy is stopping.
            while let Some(Some(mut line)) = queue.recv().await {
                line.push('\n');
                if stdout.write_all(line.as_bytes()).await.is_err() || stdout.flush().await.is_err()
                {
                    // The host went away: nothing more can be delivered.
                    break;
                }
            }
        });
        let output = Output {
            lines,
            reported: Arc::default(),
        };
        (output, writer)
    }

    /// A message for the host, as one line.
    pub fn send(&self, message: String) {
        let _ = self.lines.send(Some(message));
    }

    /// Stops the writer once what is queued is written.
    fn finish(&self) {
        let _ = self.lines.send(None);
    }

    /// The proxy's own answer to a request the endpoint did not answer.
    pub fn error(&self, id: &Value, message: &str) {
        self.send(
            json!({"jsonrpc": "2.0", "id": id, "error": {"code": UPSTREAM_ERROR, "message": message}})
                .to_string(),
        );
    }

    /// One line on stderr, the first time this text comes up.
    pub fn report(&self, text: &str) {
        let mut reported = self
            .reported
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !reported.iter().any(|r| r == text) {
            reported.push(text.to_owned());
            eprintln!("mcp-aws-tools proxy: {text}");
        }
    }

    /// The endpoint refused the signature: said once on stderr, and in every answer owed.
    pub fn refused(&self, detail: &str) -> String {
        let text = format!(
            "the endpoint refused the request's signature ({detail}); check the AWS credentials (--profile), the region (--region) and that they may invoke this API"
        );
        self.report(&text);
        text
    }
}

/// Reads stdin line by line, at most [`MAX_LINE_BYTES`] a line: `Ok(None)` at the end, `Err`
/// with the size for a line that was too long (skipped up to its end).
struct Lines<R> {
    reader: BufReader<R>,
}

impl<R: tokio::io::AsyncRead + Unpin> Lines<R> {
    async fn next(&mut self) -> std::io::Result<Option<Result<String, usize>>> {
        let mut line = Vec::new();
        let mut too_long = 0usize;
        loop {
            let buffer = self.reader.fill_buf().await?;
            if buffer.is_empty() {
                if line.is_empty() && too_long == 0 {
                    return Ok(None);
                }
                break;
            }
            let (chunk, done) = match buffer.iter().position(|b| *b == b'\n') {
                Some(end) => (&buffer[..end], Some(end + 1)),
                None => (buffer, None),
            };
            if too_long > 0 || line.len() + chunk.len() > MAX_LINE_BYTES {
                too_long += line.len() + chunk.len();
                line.clear();
            } else {
                line.extend_from_slice(chunk);
            }
            let used = done.unwrap_or(buffer.len());
            self.reader.consume(used);
            if done.is_some() {
                break;
            }
        }
        if too_long > 0 {
            return Ok(Some(Err(too_long)));
        }
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        Ok(Some(Ok(String::from_utf8_lossy(&line).into_owned())))
    }
}

/// The CA bundle the AWS CLI would use: the one `AWS_CA_BUNDLE` names, else the `ca_bundle` of
/// the profile in use (`--profile`, else `AWS_PROFILE`, else `default`) in the shared config
/// file; read and checked now. `None` when neither names one, or when the config files cannot
/// be read: loading the credentials then says why.
async fn ca_bundle(
    env: &Env,
    fs: &Fs,
    profile: Option<&str>,
) -> Result<Option<CaBundle>, StartError> {
    if let Some(path) = env
        .get("AWS_CA_BUNDLE")
        .ok()
        .filter(|path| !path.is_empty())
    {
        return CaBundle::read(Path::new(&path))
            .map(Some)
            .map_err(StartError::CaBundle);
    }
    let selected = profile.map(|name| Cow::Owned(name.to_owned()));
    let Ok(profiles) =
        aws_config::profile::load(fs, env, &EnvConfigFiles::default(), selected).await
    else {
        return Ok(None);
    };
    let name = profiles.selected_profile();
    let Some(path) = profiles
        .get_profile(name)
        .and_then(|profile| profile.get("ca_bundle"))
        .filter(|path| !path.is_empty())
    else {
        return Ok(None);
    };
    CaBundle::read(Path::new(path))
        .map(Some)
        .map_err(|reason| StartError::ProfileCaBundle {
            profile: name.to_owned(),
            reason,
        })
}

/// A way to the endpoint.
enum Upstream {
    Http(http::Forwarder),
    WebSocket(websocket::Forwarder),
}

/// Runs the proxy until stdin closes. Returns an error only when it cannot start.
pub async fn run(options: Options) -> Result<(), StartError> {
    let url = url::Url::parse(&options.url).map_err(|e| StartError::Url(e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https" | "ws" | "wss") {
        return Err(StartError::Scheme);
    }
    let (service, url_region) = service_and_region(url.host_str().unwrap_or_default());
    // A bundle of one's own, as the AWS CLI reads it (a TLS-inspecting proxy's CA), checked
    // before anything is sent; else the laptop's own roots: corporate CAs live there, and a
    // desktop host starts the proxy once.
    let bundle = ca_bundle(&Env::real(), &Fs::real(), options.profile.as_deref()).await?;
    let roots = bundle
        .clone()
        .map_or(TrustRoots::System, TrustRoots::Bundle);
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .http_client(crate::aws::https_client(roots))
        .timeout_config(
            aws_smithy_types::timeout::TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(5))
                .operation_timeout(Duration::from_secs(20))
                .build(),
        );
    if let Some(profile) = &options.profile {
        loader = loader.profile_name(profile);
    }
    if let Some(region) = options.region.clone().or(url_region) {
        loader = loader.region(aws_config::Region::new(region));
    }
    let sdk_config = loader.load().await;
    let region = sdk_config.region().map(|r| r.to_string());
    let region = match (region, options.sign) {
        (Some(region), _) => region,
        (None, false) => String::new(),
        (None, true) => return Err(StartError::NoRegion),
    };
    let signer = Arc::new(Signer {
        cached: sdk_config
            .credentials_provider()
            .filter(|_| options.sign)
            .map(Cached::new),
        region,
        service,
        profile: options.profile.clone(),
    });
    let (output, writer) = Output::start();
    let upstream = match url.scheme() {
        "http" | "https" => Upstream::Http(http::Forwarder::new(
            url.clone(),
            signer.clone(),
            output.clone(),
            bundle.as_ref(),
        )?),
        "ws" | "wss" => Upstream::WebSocket(websocket::Forwarder::new(
            url.clone(),
            signer.clone(),
            output.clone(),
            bundle.as_ref(),
        )?),
        _ => return Err(StartError::Scheme),
    };
    if let Upstream::WebSocket(forwarder) = &upstream {
        // Connect now, so that a refused signature shows before the host's first message.
        forwarder.connect_if_closed().await;
    }
    let mut lines = Lines {
        reader: BufReader::new(tokio::io::stdin()),
    };
    loop {
        let line = match lines.next().await {
            Ok(Some(Ok(line))) => line,
            Ok(Some(Err(size))) => {
                output.report(&format!(
                    "a message of {size} bytes from the host is over the {MAX_LINE_BYTES}-byte limit and was not sent"
                ));
                output.send(
                    json!({"jsonrpc": "2.0", "id": null, "error": {"code": -32600,
                        "message": format!("the message is over {MAX_LINE_BYTES} bytes and was not sent")}})
                    .to_string(),
                );
                continue;
            }
            Ok(None) => break,
            Err(err) => {
                output.report(&format!("cannot read stdin: {err}"));
                break;
            }
        };
        if line.trim().is_empty() {
            continue;
        }
        let peek = Peek::of(&line);
        match &upstream {
            Upstream::Http(forwarder) => forwarder.forward(line, peek).await,
            Upstream::WebSocket(forwarder) => forwarder.forward(line, peek).await,
        }
    }
    // stdin closed: the answers owed, then out.
    match &upstream {
        Upstream::Http(forwarder) => forwarder.drain(DRAIN_TIMEOUT).await,
        Upstream::WebSocket(forwarder) => forwarder.drain(DRAIN_TIMEOUT).await,
    }
    drop(upstream);
    output.finish();
    let _ = writer.await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn services_and_regions_from_hosts() {
        assert_eq!(
            service_and_region("a1b2c3d4e5.execute-api.eu-west-1.amazonaws.com"),
            ("execute-api", Some("eu-west-1".into()))
        );
        assert_eq!(
            service_and_region("abcdefghij.lambda-url.us-east-2.on.aws"),
            ("lambda", Some("us-east-2".into()))
        );
        assert_eq!(service_and_region("127.0.0.1"), ("execute-api", None));
    }

    #[test]
    fn peeks() {
        let peek = Peek::of(
            r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"aws_list_profiles","_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}"#,
        );
        assert_eq!(peek.id, Some(json!(3)));
        assert_eq!(peek.method.as_deref(), Some("tools/call"));
        assert_eq!(peek.name.as_deref(), Some("aws_list_profiles"));
        assert_eq!(peek.modern_version.as_deref(), Some("2026-07-28"));
        assert_eq!(peek.owed, vec![json!(3)]);
        let notification = Peek::of(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#);
        assert!(!notification.is_request());
        // A response to the server is owed nothing, whatever its id.
        assert!(!Peek::of(r#"{"jsonrpc":"2.0","id":1,"result":{}}"#).is_request());
        // What the endpoint cannot read, it answers with id null.
        assert_eq!(Peek::of("not json").owed, vec![Value::Null]);
        assert_eq!(Peek::of("[]").owed, vec![Value::Null]);
        assert_eq!(
            Peek::of(r#"{"jsonrpc":"2.0","id":{}}"#).owed,
            vec![Value::Null]
        );
        assert_eq!(
            Peek::of(r#"{"jsonrpc":"2.0","id":"a"}"#).owed,
            vec![json!("a")]
        );
        let batch = Peek::of(
            r#"[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","method":"n"},7]"#,
        );
        assert_eq!(batch.owed, vec![json!(1), Value::Null]);
        assert_eq!(batch.id, None);
    }

    /// The roots of the bundle chosen with `files` as the file system, `vars` as the
    /// environment and `profile` as `--profile`, or the refusal's text.
    async fn chosen(
        files: &[(&str, &str)],
        vars: &[(&str, &str)],
        profile: Option<&str>,
    ) -> Result<Option<usize>, String> {
        let mut all = vec![
            ("AWS_CONFIG_FILE", "/config"),
            ("AWS_SHARED_CREDENTIALS_FILE", "/credentials"),
        ];
        all.extend_from_slice(vars);
        ca_bundle(&Env::from_slice(&all), &Fs::from_slice(files), profile)
            .await
            .map(|bundle| bundle.map(|bundle| bundle.root_store().len()))
            .map_err(|err| err.to_string())
    }

    /// As the AWS CLI chooses it: `AWS_CA_BUNDLE`, else the `ca_bundle` of the profile in use
    /// (`--profile`, else `AWS_PROFILE`, else `default`); a bundle that cannot be used stops the
    /// start, naming where it was named.
    #[tokio::test]
    async fn the_ca_bundle_comes_from_the_variable_then_the_profile_in_use() {
        let dir = std::env::temp_dir().join(format!(
            "mcp-aws-tools-proxy-bundles-{}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).expect("a directory");
        let [one, two, missing] = ["one.pem", "two.pem", "missing.pem"].map(|f| dir.join(f));
        std::fs::write(&one, crate::aws::tests::compiled_pem(1)).expect("write");
        std::fs::write(&two, crate::aws::tests::compiled_pem(2)).expect("write");
        let [one, two, missing] = [&one, &two, &missing].map(|p| p.display().to_string());
        let config = format!(
            "[default]\nca_bundle = {one}\n\n[profile corp]\nca_bundle = {two}\n\n\
             [profile broken]\nca_bundle = {missing}\n\n[profile plain]\nregion = us-east-1\n"
        );
        let files = [("/config", config.as_str()), ("/credentials", "")];

        assert_eq!(chosen(&files, &[], None).await, Ok(Some(1)));
        assert_eq!(chosen(&files, &[], Some("corp")).await, Ok(Some(2)));
        assert_eq!(
            chosen(&files, &[("AWS_PROFILE", "corp")], None).await,
            Ok(Some(2))
        );
        assert_eq!(
            chosen(&files, &[("AWS_PROFILE", "plain")], Some("corp")).await,
            Ok(Some(2)),
            "--profile comes before AWS_PROFILE"
        );
        assert_eq!(chosen(&files, &[], Some("plain")).await, Ok(None));
        assert_eq!(chosen(&files, &[], Some("nobody")).await, Ok(None));
        assert_eq!(chosen(&[], &[], None).await, Ok(None), "no config file");

        // The variable comes first, and then the profile's is not read at all.
        assert_eq!(
            chosen(&files, &[("AWS_CA_BUNDLE", &two)], None).await,
            Ok(Some(2))
        );
        assert_eq!(
            chosen(&files, &[("AWS_CA_BUNDLE", &two)], Some("broken")).await,
            Ok(Some(2))
        );
        assert_eq!(
            chosen(&files, &[("AWS_CA_BUNDLE", "")], Some("corp")).await,
            Ok(Some(2)),
            "an empty variable is unset"
        );

        let refused = chosen(&files, &[], Some("broken")).await.unwrap_err();
        assert!(
            refused.starts_with(&format!(
                "the ca_bundle of profile broken: {missing} could not be read ("
            )),
            "{refused}"
        );
        let refused = chosen(&files, &[("AWS_CA_BUNDLE", &missing)], None)
            .await
            .unwrap_err();
        assert!(
            refused.starts_with(&format!("AWS_CA_BUNDLE: {missing} could not be read (")),
            "{refused}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn long_lines_are_refused_and_the_next_one_read() {
        let mut input = vec![b'x'; MAX_LINE_BYTES + 10];
        input.extend_from_slice(b"\n{\"a\":1}\r\nlast");
        let mut lines = Lines {
            reader: BufReader::new(input.as_slice()),
        };
        assert_eq!(lines.next().await.unwrap(), Some(Err(MAX_LINE_BYTES + 10)));
        assert_eq!(lines.next().await.unwrap(), Some(Ok("{\"a\":1}".into())));
        assert_eq!(lines.next().await.unwrap(), Some(Ok("last".into())));
        assert_eq!(lines.next().await.unwrap(), None);
    }
}
