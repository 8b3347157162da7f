//! Serving an app's files through Weft's own URL scheme, `weft://localhost/…`.
//!
//! Only files inside the app's root folder are served (links leading out of it are
//! refused), only with GET or HEAD, and every response carries a strict
//! Content-Security-Policy: wry has no CSP setting on Linux, so the headers are the
//! only place to set it.

use std::{
    borrow::Cow,
    fs,
    path::{Path, PathBuf},
};

use wry::http::{Method, Request, Response, StatusCode, header};

/// The scheme app content is served under.
pub const SCHEME: &str = "weft";
/// The host part of every content URL.
pub const HOST: &str = "localhost";

/// The policy sent with every served file: only the app's own origin (plus, for
/// frames, connections and images, the other origins its manifest declares), no
/// plugins, no inline or evaluated scripts.
pub fn content_security_policy(declared_origins: &[String]) -> String {
    let extra: String = declared_origins
        .iter()
        .filter(|o| o.starts_with("https://") || o.starts_with("http://"))
        .map(|o| format!(" {o}"))
        .collect();
    format!(
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
         img-src 'self' data:{extra}; font-src 'self' data:; connect-src 'self'{extra}; \
         frame-src 'self'{extra}; object-src 'none'; base-uri 'none'; form-action 'self'; \
         frame-ancestors 'self'"
    )
}

/// Serves one app's folder.
pub struct ContentServer {
    root: PathBuf,
    policy: String,
}

/// The URL of `path` (relative to the root, with any query) under the content scheme.
pub fn url_for(path: &str) -> String {
    format!("{SCHEME}://{HOST}/{path}")
}

impl ContentServer {
    /// Serves files of `root` (canonical), with the policy for `origins` (the app's
    /// allowed origins).
    pub fn new(root: PathBuf, origins: &[String]) -> Self {
        Self {
            root,
            policy: content_security_policy(origins),
        }
    }

    /// Answers one request for a file under the root.
    pub fn serve(&self, request: &Request<Vec<u8>>) -> Response<Cow<'static, [u8]>> {
        serve(&self.root, &self.policy, request)
    }
}

fn serve(root: &Path, policy: &str, request: &Request<Vec<u8>>) -> Response<Cow<'static, [u8]>> {
    let respond = |status, mime, body| respond(status, mime, policy, body);
    match locate(root, request) {
        Ok(file) => match fs::read(&file) {
            Ok(body) => {
                let body = if request.method() == Method::HEAD {
                    Vec::new()
                } else {
                    body
                };
                respond(StatusCode::OK, mime_type(&file), body)
            }
            Err(e) => {
                tracing::warn!("cannot read {}: {e}", file.display());
                respond(StatusCode::NOT_FOUND, "text/plain", b"not found".to_vec())
            }
        },
        Err((status, why)) => {
            tracing::warn!(uri = %request.uri(), "refused a content request: {why}");
            respond(status, "text/plain", why.as_bytes().to_vec())
        }
    }
}

fn locate(root: &Path, request: &Request<Vec<u8>>) -> Result<PathBuf, (StatusCode, &'static str)> {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return Err((
            StatusCode::METHOD_NOT_ALLOWED,
            "only GET and HEAD are served",
        ));
    }
    if request.uri().host() != Some(HOST) {
        return Err((StatusCode::NOT_FOUND, "unknown host"));
    }
    let decoded = percent_encoding::percent_decode_str(request.uri().path())
        .decode_utf8()
        .map_err(|_| (StatusCode::BAD_REQUEST, "the path is not UTF-8"))?;
    let mut path = root.to_path_buf();
    for segment in decoded.split('/').filter(|s| !s.is_empty() && *s != ".") {
        if segment == ".." || segment.contains(['\\', '\0']) {
            return Err((StatusCode::FORBIDDEN, "the path leaves the app's folder"));
        }
        path.push(segment);
    }
    let canonical = fs::canonicalize(&path).map_err(|_| (StatusCode::NOT_FOUND, "not found"))?;
    if !canonical.starts_with(root) {
        return Err((StatusCode::FORBIDDEN, "the path leaves the app's folder"));
    }
    if canonical.is_dir() {
        let index = canonical.join("index.html");
        return if index.is_file() {
            Ok(index)
        } else {
            Err((StatusCode::NOT_FOUND, "not found"))
        };
    }
    Ok(canonical)
}

fn respond(
    status: StatusCode,
    mime: &str,
    policy: &str,
    body: Vec<u8>,
) -> Response<Cow<'static, [u8]>> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, mime)
        .header(header::CONTENT_SECURITY_POLICY, policy)
        .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(Cow::Owned(body))
        .expect("static headers are valid")
}

fn mime_type(path: &Path) -> &'static str {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    match ext.as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "ico" => "image/x-icon",
        "woff" => "font/woff",
        "woff2" => "font/woff2",
        "ttf" => "font/ttf",
        "wasm" => "application/wasm",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> (tempfile::TempDir, PathBuf) {
        let d = tempfile::tempdir().unwrap();
        fs::create_dir(d.path().join("app")).unwrap();
        fs::write(d.path().join("app/index.html"), "<p>hi</p>").unwrap();
        fs::write(d.path().join("app/main.js"), "1").unwrap();
        let root = fs::canonicalize(d.path()).unwrap();
        (d, root)
    }

    fn get(root: &Path, uri: &str) -> Response<Cow<'static, [u8]>> {
        ContentServer::new(root.to_owned(), &[]).serve(&Request::get(uri).body(Vec::new()).unwrap())
    }

    #[test]
    fn serves_files_with_csp_and_types() {
        let (_d, root) = root();
        let r = get(&root, "weft://localhost/app/index.html?x=1");
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(&r.body()[..], b"<p>hi</p>");
        assert_eq!(
            r.headers()[header::CONTENT_TYPE],
            "text/html; charset=utf-8"
        );
        let policy = r.headers()[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap();
        assert_eq!(policy, content_security_policy(&[]));
        assert!(policy.contains("script-src 'self';") && policy.contains("frame-src 'self';"));
        let declared =
            content_security_policy(&["weft://localhost".into(), "https://charts.example".into()]);
        assert!(
            declared.contains("frame-src 'self' https://charts.example;")
                && declared.contains("script-src 'self';"),
            "{declared}"
        );
        let r = get(&root, "weft://localhost/app/main.js");
        assert_eq!(
            r.headers()[header::CONTENT_TYPE],
            "text/javascript; charset=utf-8"
        );
        let r = get(&root, "weft://localhost/app/");
        assert_eq!(&r.body()[..], b"<p>hi</p>");
        let r = get(&root, "weft://localhost/app/%69ndex.html");
        assert_eq!(r.status(), StatusCode::OK);
    }

    #[test]
    fn refuses_escapes_links_other_hosts_and_methods() {
        let (d, root) = root();
        let outside = tempfile::NamedTempFile::new().unwrap();
        std::os::unix::fs::symlink(outside.path(), d.path().join("app/link")).unwrap();
        for uri in [
            "weft://localhost/../etc/passwd",
            "weft://localhost/app/%2e%2e/%2e%2e/etc/passwd",
            "weft://localhost/app/link",
        ] {
            assert_eq!(get(&root, uri).status(), StatusCode::FORBIDDEN, "{uri}");
        }
        assert_eq!(
            get(&root, "weft://evil/app/index.html").status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            get(&root, "weft://localhost/nope.html").status(),
            StatusCode::NOT_FOUND
        );
        let post = Request::post("weft://localhost/app/index.html")
            .body(Vec::new())
            .unwrap();
        assert_eq!(
            ContentServer::new(root.clone(), &[]).serve(&post).status(),
            StatusCode::METHOD_NOT_ALLOWED
        );
    }
}
