//! SASL on the Kafka listeners: SaslHandshake v0/v1, SaslAuthenticate v0–v2, the
//! OAUTHBEARER (RFC 7628) and PLAIN mechanisms carrying a JWT, and KIP-368
//! re-authentication.
//!
//! Protocol facts relied on here:
//! - Before authentication only ApiVersions, SaslHandshake and SaslAuthenticate are
//!   allowed; anything else closes the connection (as a Kafka broker does).
//! - After a v0 handshake the client sends raw SASL tokens (length-prefixed, no
//!   Kafka header) and gets raw answers; after v1 it wraps them in SaslAuthenticate.
//! - OAUTHBEARER failure: a challenge `{"status":"invalid_token"}` with error 0, the
//!   client answers `0x01`, then error 58 SASL_AUTHENTICATION_FAILED. PLAIN fails
//!   with 58 at once. Either way the connection is then closed.
//! - KIP-368: `session_lifetime_ms` (v1+) tells the client when to re-authenticate
//!   (Java does so at 85–95% of it); re-authentication reuses the connection, may
//!   not change principal or tenant. A lapsed session may still re-authenticate;
//!   any other request on it closes the connection (as Kafka's broker does).

use std::future::Future;
use std::time::{Duration, SystemTime};

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest, SaslHandshakeResponse,
};
use kafka_protocol::protocol::{Decodable, StrBytes};
use tokio::time::Instant;

use crate::protocol::{encode_response, RequestHeaderView};

pub const UNSUPPORTED_SASL_MECHANISM: i16 = 33;
pub const ILLEGAL_SASL_STATE: i16 = 34;
pub const SASL_AUTHENTICATION_FAILED: i16 = 58;

/// The OAUTHBEARER failure challenge of RFC 7628 section 3.2.2.
const INVALID_TOKEN_CHALLENGE: &[u8] = br#"{"status":"invalid_token"}"#;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    OAuthBearer,
    Plain,
}

impl Mechanism {
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::OAuthBearer => "OAUTHBEARER",
            Mechanism::Plain => "PLAIN",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "OAUTHBEARER" => Some(Mechanism::OAuthBearer),
            "PLAIN" => Some(Mechanism::Plain),
            _ => None,
        }
    }
}

/// Who a verified token says the client is.
pub trait Identity: Clone + Send + Sync + 'static {
    fn subject(&self) -> &str;
    fn tenant(&self) -> &str;
    fn expires_at(&self) -> SystemTime;
}

/// Why a token or SASL message was refused.
#[derive(Debug, Clone)]
pub struct Rejection {
    /// A message the user can act on; it is sent to the client, so no secrets.
    pub reason: String,
    /// Whether the token's signature held (it failed on a claim, e.g. expiry). Only
    /// such failures count against the principal it names: anyone can *claim* a
    /// principal in an unsigned token, and must not be able to lock it out.
    pub authentic: bool,
}

impl Rejection {
    fn forged(reason: impl Into<String>) -> Self {
        Self { reason: reason.into(), authentic: false }
    }
}

/// Checks a bearer token.
pub trait TokenVerifier: Send + Sync + 'static {
    type Principal: Identity;
    fn verify(&self, token: &str) -> impl Future<Output = Result<Self::Principal, Rejection>> + Send;
}

/// Why a client message is not a well-formed SASL message.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SaslParseError {
    #[error("OAUTHBEARER message does not start with a GS2 header (\"n,\")")]
    Gs2Header,
    #[error("OAUTHBEARER message is not terminated by \\x01\\x01")]
    Unterminated,
    #[error("OAUTHBEARER message has no auth=Bearer <token>")]
    NoBearer,
    #[error("OAUTHBEARER extension {0:?} is malformed")]
    BadExtension(String),
    #[error("PLAIN message is not authzid NUL username NUL password")]
    PlainShape,
    #[error("SASL message is not UTF-8")]
    NotUtf8,
}

/// A parsed OAUTHBEARER initial client response.
#[derive(Debug, PartialEq, Eq)]
pub struct OAuthBearerMessage<'a> {
    pub authzid: Option<&'a str>,
    pub token: &'a str,
    pub extensions: Vec<(&'a str, &'a str)>,
}

/// Parses `n,[a=authzid],\x01auth=Bearer <token>\x01[key=value\x01]*\x01`.
pub fn parse_oauthbearer(msg: &[u8]) -> Result<OAuthBearerMessage<'_>, SaslParseError> {
    let msg = std::str::from_utf8(msg).map_err(|_| SaslParseError::NotUtf8)?;
    let rest = msg.strip_prefix("n,").or_else(|| msg.strip_prefix("y,")).ok_or(SaslParseError::Gs2Header)?;
    let (authzid, rest) = rest.split_once(',').ok_or(SaslParseError::Gs2Header)?;
    let authzid = match authzid {
        "" => None,
        a => Some(a.strip_prefix("a=").ok_or(SaslParseError::Gs2Header)?),
    };
    let body = rest
        .strip_prefix('\x01')
        .and_then(|r| r.strip_suffix("\x01\x01"))
        .ok_or(SaslParseError::Unterminated)?;
    let mut token = None;
    let mut extensions = Vec::new();
    for pair in body.split('\x01') {
        let (key, value) = pair.split_once('=').ok_or_else(|| SaslParseError::BadExtension(pair.to_owned()))?;
        if key == "auth" {
            let (scheme, value) = value.split_once(' ').ok_or(SaslParseError::NoBearer)?;
            if !scheme.eq_ignore_ascii_case("bearer") || value.is_empty() {
                return Err(SaslParseError::NoBearer);
            }
            token = Some(value.trim());
        } else {
            let key_ok = !key.is_empty() && key.bytes().all(|b| b.is_ascii_alphabetic());
            let value_ok =
                !value.is_empty() && value.bytes().all(|b| (0x21..=0x7e).contains(&b) || b" \t\r\n".contains(&b));
            if !key_ok || !value_ok {
                return Err(SaslParseError::BadExtension(key.to_owned()));
            }
            extensions.push((key, value));
        }
    }
    Ok(OAuthBearerMessage { authzid, token: token.ok_or(SaslParseError::NoBearer)?, extensions })
}

/// Parses PLAIN `authzid \0 username \0 password` and returns the password (the JWT).
pub fn parse_plain(msg: &[u8]) -> Result<&str, SaslParseError> {
    let msg = std::str::from_utf8(msg).map_err(|_| SaslParseError::NotUtf8)?;
    let mut parts = msg.split('\0');
    let (Some(_authzid), Some(_username), Some(password), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(SaslParseError::PlainShape);
    };
    if password.is_empty() {
        return Err(SaslParseError::PlainShape);
    }
    Ok(password)
}

/// Tokens checked by the tenancy crate's issuers.
pub struct JwtVerifier(pub sluice_tenancy::Authenticator);

impl Identity for sluice_tenancy::Principal {
    fn subject(&self) -> &str {
        &self.subject
    }
    fn tenant(&self) -> &str {
        self.tenant.as_str()
    }
    fn expires_at(&self) -> SystemTime {
        self.expires_at
    }
}

impl TokenVerifier for JwtVerifier {
    type Principal = sluice_tenancy::Principal;
    async fn verify(&self, token: &str) -> Result<Self::Principal, Rejection> {
        use sluice_tenancy::AuthError::*;
        self.0.verify(token).await.map_err(|e| Rejection {
            // jsonwebtoken checks the signature before the claims, so these come
            // only from tokens the issuer really signed.
            authentic: matches!(
                e,
                Expired | NotYetValid | WrongAudience { .. } | MissingExpiry | MissingSubject | MissingTenant
                    | InvalidTenantId { .. } | UnknownTenant { .. } | InvalidClaim { .. }
            ),
            reason: e.to_string(),
        })
    }
}

/// The principal a SASL message *claims* (`tenant/subject` from the token's unverified
/// payload, or the PLAIN username), used only to count failed attempts per principal.
pub fn claimed_principal(auth_bytes: &[u8]) -> Option<String> {
    let (token, plain_user) = match parse_oauthbearer(auth_bytes) {
        Ok(m) => (m.token, None),
        Err(_) => {
            let text = std::str::from_utf8(auth_bytes).ok()?;
            let mut parts = text.split('\0');
            let (_, user, password) = (parts.next()?, parts.next()?, parts.next()?);
            (password, Some(user))
        }
    };
    let payload = token.split('.').nth(1)?;
    let claims: serde_json::Value = base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, payload)
        .ok()
        .and_then(|raw| serde_json::from_slice(&raw).ok())?;
    match (claims.get("sluice:tenant").and_then(|t| t.as_str()), claims.get("sub").and_then(|s| s.as_str())) {
        (Some(tenant), Some(sub)) => Some(format!("{tenant}/{sub}")),
        _ => plain_user.map(|u| format!("user:{u}")),
    }
}

/// A SaslAuthenticate answer refusing the attempt without checking it (rate limit).
pub fn refusal(correlation_id: i32, version: i16, message: &str) -> Bytes {
    let resp = SaslAuthenticateResponse::default()
        .with_error_code(SASL_AUTHENTICATION_FAILED)
        .with_error_message(Some(StrBytes::from_string(message.to_owned())));
    encode_response(correlation_id, ApiKey::SaslAuthenticate, version, &resp).unwrap_or_default()
}

/// Listener-wide SASL settings.
pub struct SaslSettings<V> {
    pub mechanisms: Vec<Mechanism>,
    /// Upper bound of a session (Kafka's `connections.max.reauth.ms`).
    pub max_session: Duration,
    pub verifier: V,
}

enum State<P> {
    /// Nothing negotiated yet.
    Start,
    /// v1 handshake done: the next SaslAuthenticate carries the token.
    Handshaken { mechanism: Mechanism, raw: bool },
    /// OAUTHBEARER challenge sent; waiting for the client's 0x01 before failing.
    Challenged { rejection: Rejection, what: &'static str },
    Authenticated { principal: P, expires: Instant },
    /// Re-authentication in progress on an authenticated connection.
    Reauthenticating { principal: P, expires: Instant, mechanism: Mechanism },
}

/// What the connection should do with a frame.
pub enum Step<P> {
    /// Not SASL business: forward the request (the session allows it).
    Forward,
    /// Answer locally and continue.
    Reply(Bytes),
    /// Answer locally; the client is now authenticated as this principal.
    Authenticated(Bytes, P),
    /// Answer locally, then close: authentication failed.
    Fail(Bytes, Rejection),
    /// Close without an answer.
    Close(String),
}

/// The SASL state of one connection.
pub struct SaslSession<P> {
    state: State<P>,
    /// Mechanism of the first authentication; re-authentication must use the same one.
    mechanism: Option<Mechanism>,
}

impl<P: Identity> Default for SaslSession<P> {
    fn default() -> Self {
        Self { state: State::Start, mechanism: None }
    }
}

impl<P: Identity> SaslSession<P> {
    pub fn principal(&self) -> Option<&P> {
        match &self.state {
            State::Authenticated { principal, .. } | State::Reauthenticating { principal, .. } => Some(principal),
            _ => None,
        }
    }

    /// When the session lapses unless the client re-authenticates.
    pub fn expires(&self) -> Option<Instant> {
        match &self.state {
            State::Authenticated { expires, .. } | State::Reauthenticating { expires, .. } => Some(*expires),
            _ => None,
        }
    }

    /// Whether the next frame is a raw SASL token (after a v0 handshake).
    pub fn expects_raw_token(&self) -> bool {
        matches!(self.state, State::Handshaken { raw: true, .. })
    }

    /// Handles a raw token frame (after a v0 handshake). Raw failures have no error
    /// channel: the connection just closes, as with a Kafka broker.
    pub async fn on_raw_token<V: TokenVerifier<Principal = P>>(
        &mut self,
        payload: &[u8],
        settings: &SaslSettings<V>,
    ) -> Step<P> {
        let State::Handshaken { mechanism, raw: true } = self.state else {
            return Step::Close("raw SASL token outside a v0 handshake".into());
        };
        match self.check_token(mechanism, payload, settings).await {
            Ok(principal) => {
                let mut out = BytesMut::with_capacity(4);
                out.put_i32(0);
                self.state = State::Authenticated { expires: session_expiry(&principal, settings).0, principal: principal.clone() };
                self.mechanism = Some(mechanism);
                Step::Authenticated(out.freeze(), principal)
            }
            Err(rejection) => Step::Fail(Bytes::new(), rejection),
        }
    }

    /// Handles one request frame. `body` is the request body after the header.
    pub async fn on_request<V: TokenVerifier<Principal = P>>(
        &mut self,
        header: &RequestHeaderView,
        api: ApiKey,
        body: Bytes,
        settings: &SaslSettings<V>,
    ) -> Step<P> {
        let corr = header.correlation_id;
        let version = header.api_version;
        match api {
            ApiKey::SaslHandshake => {
                let Ok(req) = SaslHandshakeRequest::decode(&mut body.clone(), version) else {
                    return Step::Close("malformed SaslHandshake".into());
                };
                let offered: Vec<StrBytes> =
                    settings.mechanisms.iter().map(|m| StrBytes::from_static_str(m.name())).collect();
                let reply = |code: i16| {
                    let resp = SaslHandshakeResponse::default().with_error_code(code).with_mechanisms(offered.clone());
                    encode_response(corr, api, version, &resp).unwrap_or_default()
                };
                let requested = Mechanism::parse(req.mechanism.as_str()).filter(|m| settings.mechanisms.contains(m));
                let Some(mechanism) = requested else {
                    return Step::Fail(
                        reply(UNSUPPORTED_SASL_MECHANISM),
                        Rejection::forged(format!("unsupported SASL mechanism {:?}", req.mechanism.as_str())),
                    );
                };
                match std::mem::replace(&mut self.state, State::Start) {
                    State::Start => {
                        self.state = State::Handshaken { mechanism, raw: version == 0 };
                        Step::Reply(reply(0))
                    }
                    State::Authenticated { principal, expires } if version >= 1 => {
                        if self.mechanism != Some(mechanism) {
                            return Step::Fail(
                                reply(ILLEGAL_SASL_STATE),
                                Rejection::forged("re-authentication changed mechanism"),
                            );
                        }
                        self.state = State::Reauthenticating { principal, expires, mechanism };
                        Step::Reply(reply(0))
                    }
                    _ => Step::Fail(reply(ILLEGAL_SASL_STATE), Rejection::forged("SaslHandshake out of sequence")),
                }
            }
            ApiKey::SaslAuthenticate => {
                let Ok(req) = SaslAuthenticateRequest::decode(&mut body.clone(), version) else {
                    return Step::Close("malformed SaslAuthenticate".into());
                };
                let reply = |code: i16, message: Option<String>, auth_bytes: Bytes, lifetime_ms: i64| {
                    let resp = SaslAuthenticateResponse::default()
                        .with_error_code(code)
                        .with_error_message(message.map(StrBytes::from_string))
                        .with_auth_bytes(auth_bytes)
                        .with_session_lifetime_ms(if version >= 1 { lifetime_ms } else { 0 });
                    encode_response(corr, api, version, &resp).unwrap_or_default()
                };
                match std::mem::replace(&mut self.state, State::Start) {
                    State::Handshaken { mechanism, raw: false } => {
                        match self.check_token(mechanism, &req.auth_bytes, settings).await {
                            Ok(principal) => {
                                let (expires, lifetime_ms) = session_expiry(&principal, settings);
                                self.state = State::Authenticated { principal: principal.clone(), expires };
                                self.mechanism = Some(mechanism);
                                Step::Authenticated(reply(0, None, Bytes::new(), lifetime_ms), principal)
                            }
                            Err(rejection) => self.fail(mechanism, rejection, "Authentication", reply),
                        }
                    }
                    State::Challenged { rejection, what } => {
                        // The client's answer to the challenge is 0x01; either way we fail now.
                        let message = format!("{what} failed: {}", rejection.reason);
                        Step::Fail(reply(SASL_AUTHENTICATION_FAILED, Some(message), Bytes::new(), 0), rejection)
                    }
                    State::Reauthenticating { principal: current, mechanism, .. } => {
                        match self.check_token(mechanism, &req.auth_bytes, settings).await {
                            Ok(principal)
                                if principal.subject() == current.subject() && principal.tenant() == current.tenant() =>
                            {
                                let (expires, lifetime_ms) = session_expiry(&principal, settings);
                                self.state = State::Authenticated { principal: principal.clone(), expires };
                                Step::Authenticated(reply(0, None, Bytes::new(), lifetime_ms), principal)
                            }
                            Ok(principal) => {
                                let reason = format!(
                                    "re-authentication may not change principal (was {}/{}, token is for {}/{})",
                                    current.tenant(),
                                    current.subject(),
                                    principal.tenant(),
                                    principal.subject()
                                );
                                let rejection = Rejection { reason, authentic: true };
                                self.fail(mechanism, rejection, "Re-authentication", reply)
                            }
                            Err(rejection) => self.fail(mechanism, rejection, "Re-authentication", reply),
                        }
                    }
                    _ => Step::Fail(
                        reply(ILLEGAL_SASL_STATE, Some("SaslAuthenticate without a SaslHandshake".into()), Bytes::new(), 0),
                        Rejection::forged("SaslAuthenticate out of sequence"),
                    ),
                }
            }
            ApiKey::ApiVersions => Step::Forward,
            _ => match &self.state {
                State::Authenticated { .. } | State::Reauthenticating { .. } => Step::Forward,
                _ => Step::Close(format!("{api:?} before authentication")),
            },
        }
    }

    /// A failed (re-)authentication: OAUTHBEARER first sends the RFC 7628 challenge and
    /// fails on the client's answer; PLAIN fails at once.
    fn fail(
        &mut self,
        mechanism: Mechanism,
        rejection: Rejection,
        what: &'static str,
        reply: impl Fn(i16, Option<String>, Bytes, i64) -> Bytes,
    ) -> Step<P> {
        match mechanism {
            Mechanism::OAuthBearer => {
                self.state = State::Challenged { rejection, what };
                Step::Reply(reply(0, None, Bytes::from_static(INVALID_TOKEN_CHALLENGE), 0))
            }
            Mechanism::Plain => {
                let message = format!("{what} failed: {}", rejection.reason);
                Step::Fail(reply(SASL_AUTHENTICATION_FAILED, Some(message), Bytes::new(), 0), rejection)
            }
        }
    }

    async fn check_token<V: TokenVerifier<Principal = P>>(
        &self,
        mechanism: Mechanism,
        auth_bytes: &[u8],
        settings: &SaslSettings<V>,
    ) -> Result<P, Rejection> {
        let principal = match mechanism {
            Mechanism::OAuthBearer => {
                let msg = parse_oauthbearer(auth_bytes).map_err(|e| Rejection::forged(e.to_string()))?;
                let principal = settings.verifier.verify(msg.token).await?;
                if let Some(authzid) = msg.authzid.filter(|a| *a != principal.subject()) {
                    return Err(Rejection {
                        reason: format!("authorization id {authzid:?} does not match the token's subject"),
                        authentic: true,
                    });
                }
                principal
            }
            Mechanism::Plain => {
                let token = parse_plain(auth_bytes).map_err(|e| Rejection::forged(e.to_string()))?;
                settings.verifier.verify(token).await?
            }
        };
        Ok(principal)
    }
}

/// When the session ends and the `session_lifetime_ms` to announce: the token's expiry,
/// capped by the configured maximum.
fn session_expiry<P: Identity, V>(principal: &P, settings: &SaslSettings<V>) -> (Instant, i64) {
    let until_exp = principal.expires_at().duration_since(SystemTime::now()).unwrap_or(Duration::ZERO);
    let lifetime = until_exp.min(settings.max_session);
    (Instant::now() + lifetime, i64::try_from(lifetime.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_minimal_and_extended_oauthbearer() {
        let m = parse_oauthbearer(b"n,,\x01auth=Bearer abc.def.ghi\x01\x01").unwrap();
        assert_eq!(m, OAuthBearerMessage { authzid: None, token: "abc.def.ghi", extensions: vec![] });
        let m = parse_oauthbearer(b"n,a=alice,\x01auth=bearer t.o.k\x01traceId=42 x\x01\x01").unwrap();
        assert_eq!(m.authzid, Some("alice"));
        assert_eq!(m.token, "t.o.k");
        assert_eq!(m.extensions, vec![("traceId", "42 x")]);
    }

    #[test]
    fn rejects_malformed_oauthbearer() {
        for bad in [
            &b""[..],
            b"garbage",
            b"n,,auth=Bearer x\x01\x01",
            b"n,,\x01auth=Bearer x\x01",
            b"n,,\x01auth=Basic x\x01\x01",
            b"n,,\x01auth=Bearer \x01\x01",
            b"n,,\x01k3y=v\x01auth=Bearer x\x01\x01",
            b"n,,\x01\x01",
            b"p=tls,,\x01auth=Bearer x\x01\x01",
            b"n,,\x01auth=Bearer \xff\x01\x01",
        ] {
            assert!(parse_oauthbearer(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn plain_takes_the_password() {
        assert_eq!(parse_plain(b"\0anyone\0a.b.c").unwrap(), "a.b.c");
        assert_eq!(parse_plain(b"zid\0u\0tok").unwrap(), "tok");
        assert!(parse_plain(b"\0u").is_err());
        assert!(parse_plain(b"\0u\0").is_err());
        assert!(parse_plain(b"a\0b\0c\0d").is_err());
    }

    #[derive(Clone, Debug)]
    struct Who(String, String, SystemTime);
    impl Identity for Who {
        fn subject(&self) -> &str {
            &self.1
        }
        fn tenant(&self) -> &str {
            &self.0
        }
        fn expires_at(&self) -> SystemTime {
            self.2
        }
    }

    /// Accepts tokens of the form `ok.<tenant>.<subject>`, valid for an hour.
    struct Fake;
    impl TokenVerifier for Fake {
        type Principal = Who;
        async fn verify(&self, token: &str) -> Result<Who, Rejection> {
            match token.split('.').collect::<Vec<_>>()[..] {
                ["ok", tenant, subject] => {
                    Ok(Who(tenant.into(), subject.into(), SystemTime::now() + Duration::from_secs(3600)))
                }
                _ => Err(Rejection { reason: "token expired".into(), authentic: true }),
            }
        }
    }

    fn settings() -> SaslSettings<Fake> {
        SaslSettings {
            mechanisms: vec![Mechanism::OAuthBearer, Mechanism::Plain],
            max_session: Duration::from_secs(60),
            verifier: Fake,
        }
    }

    fn header(api: ApiKey, version: i16) -> RequestHeaderView {
        RequestHeaderView { api_key: api as i16, api_version: version, correlation_id: 7, client_id: None, body_offset: Some(0) }
    }

    fn body<M: kafka_protocol::protocol::Encodable>(m: &M, version: i16) -> Bytes {
        let mut b = BytesMut::new();
        m.encode(&mut b, version).unwrap();
        b.freeze()
    }

    async fn handshake(s: &mut SaslSession<Who>, mech: &'static str, version: i16) -> Step<Who> {
        let req = SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str(mech));
        s.on_request(&header(ApiKey::SaslHandshake, version), ApiKey::SaslHandshake, body(&req, version), &settings()).await
    }

    async fn authenticate(s: &mut SaslSession<Who>, bytes: &'static [u8]) -> Step<Who> {
        let req = SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from_static(bytes));
        s.on_request(&header(ApiKey::SaslAuthenticate, 2), ApiKey::SaslAuthenticate, body(&req, 2), &settings()).await
    }

    fn authenticate_response(bytes: &Bytes) -> SaslAuthenticateResponse {
        let (_, at) = crate::protocol::parse_response_header(&bytes[4..], ApiKey::SaslAuthenticate, 2).unwrap();
        SaslAuthenticateResponse::decode(&mut bytes.slice(4 + at..), 2).unwrap()
    }

    #[tokio::test]
    async fn oauthbearer_success_then_reauth_with_the_same_principal() {
        let mut s = SaslSession::default();
        assert!(matches!(handshake(&mut s, "OAUTHBEARER", 1).await, Step::Reply(_)));
        let Step::Authenticated(bytes, who) = authenticate(&mut s, b"n,,\x01auth=Bearer ok.acme.alice\x01\x01").await else {
            panic!("expected success");
        };
        assert_eq!(who.tenant(), "acme");
        let resp = authenticate_response(&bytes);
        assert_eq!(resp.error_code, 0);
        assert!(resp.session_lifetime_ms > 59_000 && resp.session_lifetime_ms <= 60_000, "capped by max_session");
        let metadata = header(ApiKey::Metadata, 12);
        assert!(matches!(s.on_request(&metadata, ApiKey::Metadata, Bytes::new(), &settings()).await, Step::Forward));

        assert!(matches!(handshake(&mut s, "OAUTHBEARER", 1).await, Step::Reply(_)));
        assert!(matches!(authenticate(&mut s, b"n,,\x01auth=Bearer ok.acme.alice\x01\x01").await, Step::Authenticated(..)));
        assert!(matches!(handshake(&mut s, "OAUTHBEARER", 1).await, Step::Reply(_)));
        // A different principal gets the challenge, then 58 on the client's answer.
        assert!(matches!(authenticate(&mut s, b"n,,\x01auth=Bearer ok.other.mallory\x01\x01").await, Step::Reply(_)));
        let Step::Fail(bytes, rejection) = authenticate(&mut s, b"\x01").await else {
            panic!("a different principal must fail");
        };
        assert!(rejection.reason.contains("may not change principal"));
        assert_eq!(authenticate_response(&bytes).error_code, SASL_AUTHENTICATION_FAILED);
    }

    #[tokio::test]
    async fn oauthbearer_failure_is_a_challenge_then_error_58() {
        let mut s = SaslSession::default();
        handshake(&mut s, "OAUTHBEARER", 1).await;
        let Step::Reply(bytes) = authenticate(&mut s, b"n,,\x01auth=Bearer expired.x.y\x01\x01").await else {
            panic!("expected the challenge");
        };
        let challenge = authenticate_response(&bytes);
        assert_eq!(challenge.error_code, 0);
        assert_eq!(&challenge.auth_bytes[..], INVALID_TOKEN_CHALLENGE);
        let Step::Fail(bytes, _) = authenticate(&mut s, b"\x01").await else { panic!("expected failure") };
        let resp = authenticate_response(&bytes);
        assert_eq!(resp.error_code, SASL_AUTHENTICATION_FAILED);
        assert!(resp.error_message.unwrap().as_str().contains("token expired"));
    }

    #[tokio::test]
    async fn plain_fails_at_once_and_garbage_is_refused() {
        let mut s = SaslSession::default();
        handshake(&mut s, "PLAIN", 1).await;
        assert!(matches!(authenticate(&mut s, b"\0u\0bad").await, Step::Fail(..)));
        let mut s = SaslSession::default();
        handshake(&mut s, "PLAIN", 1).await;
        assert!(matches!(authenticate(&mut s, b"\0u\0ok.acme.bob").await, Step::Authenticated(..)));
        let mut s = SaslSession::<Who>::default();
        handshake(&mut s, "OAUTHBEARER", 1).await;
        assert!(matches!(authenticate(&mut s, b"\xff\xfe garbage").await, Step::Reply(_)), "garbage gets the challenge");
    }

    #[tokio::test]
    async fn order_and_mechanism_are_enforced() {
        let mut s = SaslSession::<Who>::default();
        let metadata = header(ApiKey::Metadata, 12);
        assert!(matches!(s.on_request(&metadata, ApiKey::Metadata, Bytes::new(), &settings()).await, Step::Close(_)));
        let api_versions = header(ApiKey::ApiVersions, 3);
        assert!(matches!(s.on_request(&api_versions, ApiKey::ApiVersions, Bytes::new(), &settings()).await, Step::Forward));
        assert!(matches!(authenticate(&mut s, b"n,,\x01auth=Bearer ok.a.b\x01\x01").await, Step::Fail(..)));
        let mut s = SaslSession::<Who>::default();
        assert!(matches!(handshake(&mut s, "SCRAM-SHA-512", 1).await, Step::Fail(..)));
    }

    #[tokio::test]
    async fn v0_handshake_takes_a_raw_token() {
        let mut s = SaslSession::<Who>::default();
        assert!(matches!(handshake(&mut s, "PLAIN", 0).await, Step::Reply(_)));
        assert!(s.expects_raw_token());
        assert!(matches!(s.on_raw_token(b"\0u\0ok.acme.carol", &settings()).await, Step::Authenticated(..)));
        assert!(s.principal().is_some());
    }
}
