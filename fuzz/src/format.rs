//! The request text format of the corpus and the filter configuration with every plugin on
//! literal credentials. Plain Rust with no dependency but serde_json, so that the workspace's
//! harness tests can replay the `wasm_requests` corpus with it (`tests/harness/tests/fuzz_corpus.rs`).

/// A request decoded from fuzz input.
#[derive(Debug, Default, Clone)]
pub struct Request {
    pub route: Vec<u8>,
    pub headers: Vec<(Vec<u8>, Vec<u8>)>,
    pub body: Vec<u8>,
}

/// Decodes the request format above. Never fails: any bytes are some request.
pub fn parse_request(data: &[u8]) -> Request {
    let mut lines = data.splitn(2, |b| *b == b'\n');
    let route = lines.next().unwrap_or_default().to_vec();
    let mut rest = lines.next().unwrap_or_default();
    let mut headers = Vec::new();
    loop {
        let (line, after) = match rest.iter().position(|b| *b == b'\n') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, &[][..]),
        };
        if line.is_empty() {
            rest = after;
            break;
        }
        let split = line
            .windows(2)
            .skip(1)
            .position(|w| w == b": ")
            .map(|i| i + 1);
        headers.push(match split {
            Some(i) => (line[..i].to_vec(), line[i + 2..].to_vec()),
            None => (line.to_vec(), Vec::new()),
        });
        rest = after;
        if rest.is_empty() {
            break;
        }
    }
    Request {
        route,
        headers,
        body: rest.to_vec(),
    }
}

/// The route names of `config_json`; the first byte of the route line picks one in the plugin
/// targets (which cannot take any name).
pub const ROUTES: [&str; 4] = ["", "hide", "anon", "limited"];

/// The route for a route line: the named route if it is one, else by its first byte.
pub fn route_name(route: &[u8]) -> Option<&'static str> {
    if let Some(r) = ROUTES.iter().find(|r| r.as_bytes() == route) {
        return (!r.is_empty()).then_some(*r);
    }
    let r = ROUTES[usize::from(route.first().copied().unwrap_or(0)) % ROUTES.len()];
    (!r.is_empty()).then_some(r)
}

/// Every plugin on literal credentials: alice has one credential of each type; bob, carol and
/// dave have RS256, ES256 and EdDSA public keys and a base64 HS256 secret. The default route
/// enables key-, basic-, jwt- and hmac-auth and a local limit-count; `hide` hides credentials,
/// checks the hmac body digest and keys the limit on a header and an argument; `anon` falls
/// back to an anonymous consumer; `limited` allows 2 requests a second per `x-user`.
pub fn config_json() -> String {
    serde_json::json!({
        "refresh_interval_s": 30,
        "consumers": [
            {"username": "alice", "labels": {"custom_id": "alice-001"},
             "credentials": [
                {"id": "alice-key", "type": "key-auth", "key": ALICE_KEY},
                {"id": "alice-basic", "type": "basic-auth", "username": "alice",
                 "password": ALICE_PASSWORD},
                {"id": "alice-jwt", "type": "jwt-auth", "key": "alice-jwt-key",
                 "secret": ALICE_JWT_SECRET},
                {"id": "alice-hmac", "type": "hmac-auth", "key_id": "alice-keyid",
                 "secret_key": ALICE_HMAC_SECRET}
             ]},
            {"username": "bob",
             "credentials": [
                {"id": "bob-rsa", "type": "jwt-auth", "key": "bob-rsa", "algorithm": "RS256",
                 "public_key": RSA_PUBLIC_PEM},
                {"id": "bob-basic", "type": "basic-auth", "username": "bob", "password": "pa:ss"}
             ]},
            {"username": "carol",
             "credentials": [
                {"id": "carol-ec", "type": "jwt-auth", "key": "carol-ec", "algorithm": "ES256",
                 "public_key": EC_PUBLIC_PEM},
                {"id": "carol-key", "type": "key-auth", "key": "carol-k\u{e9}y"}
             ]},
            {"username": "dave",
             "credentials": [
                {"id": "dave-ed", "type": "jwt-auth", "key": "dave-ed", "algorithm": "EdDSA",
                 "public_key": ED_PUBLIC_PEM},
                {"id": "dave-b64", "type": "jwt-auth", "key": "dave-b64", "algorithm": "HS512",
                 "secret": "ZGF2ZS1iYXNlNjQtc2VjcmV0", "base64_secret": true,
                 "lifetime_grace_period": 60}
             ]},
            {"username": "anon"}
        ],
        "plugins": {
            "key-auth": {},
            "basic-auth": {},
            "jwt-auth": {},
            "hmac-auth": {},
            "limit-count": {"count": 1_000_000_000u64, "time_window": 60}
        },
        "routes": {
            "hide": {
                "key-auth": {"hide_credentials": true},
                "basic-auth": {"hide_credentials": true},
                "jwt-auth": {"hide_credentials": true, "claims_to_verify": ["exp", "nbf"]},
                "hmac-auth": {"hide_credentials": true, "validate_request_body": true,
                              "signed_headers": ["date"], "max_req_body_size": 4096,
                              "allowed_algorithms": ["hmac-sha256", "hmac-sha512"]},
                "limit-count": {"count": 1_000_000_000u64, "time_window": 60,
                                "key_type": "var_combination",
                                "key": "$http_x_user $arg_user $consumer_name"}
            },
            "anon": {
                "key-auth": {"anonymous_consumer": "anon", "header": "x-api-key", "query": "key"},
                "jwt-auth": {"anonymous_consumer": "anon", "header": "x-jwt", "query": "token",
                             "cookie": "tok"},
                "limit-count": {"count": 1_000_000_000u64, "time_window": 1,
                                "key_type": "constant", "key": "all"}
            },
            "limited": {
                "limit-count": {"count": 2, "time_window": 1, "key": "http_x_user",
                                "rejected_code": 429, "rejected_msg": "slow down"}
            }
        }
    })
    .to_string()
}

pub const ALICE_KEY: &str = "alice-key";
pub const ALICE_PASSWORD: &str = "alice-password";
pub const ALICE_JWT_SECRET: &str = "alice-jwt-secret-value";
pub const ALICE_HMAC_SECRET: &str = "alice-hmac-secret-value";
pub const RSA_PUBLIC_PEM: &str = "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAr2bbmm4lkzx6Hcswf25e\nnd4m4toN84mngGZDVKsnxc47ruXu96+e9ufb3T9rEqJdPrnmKe8iH3u+HpX4qRN5\nwVG2l8s/BZDG4MCUSTC4VDcLXCs+Qb6bqEUmZsoJ75d4tgCLwQOmh7GRuNaHgo7D\nrSGwXRBjEplQBs3gaBS0t2ZO65RBx3Tn74hONGAm2hkkxqx0vj/Dvlo1WMceHyfZ\nUVw2qx2pPtHLzrSl8uxRZMov+rErJoD9atojxuao+tOoL5tA3lFc6p0zjMK+yoNd\nUP5P3hHgBR+aMr2vt0w5w6fsKm/WBl2fTw2dXaxbL8Ayktv5zd0TpPUAvQxSbG/8\nDQIDAQAB\n-----END PUBLIC KEY-----\n";
pub const EC_PUBLIC_PEM: &str = "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEI2RpiCDIMfKokL7TodVTaBYSuEdA\nmuLXVbh7WuEQQL5350Rx31YT8dmiEKBlgHCPu+K6JiVBGHO6uMWyokinFw==\n-----END PUBLIC KEY-----\n";
pub const ED_PUBLIC_PEM: &str = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA9KHlwG5xQSVm9XtHUwrQHbe2/2lsURp9GS4yeZC3HiQ=\n-----END PUBLIC KEY-----\n";
