use std::{
    io::{BufRead, BufReader, Write},
    net::TcpListener,
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use weft_workspace::{AppLookup, AppUrl, RestartPolicy};

use super::*;

fn web(app_id: &str, url: &str) -> serde_json::Value {
    serde_json::json!({"appId": app_id, "title": app_id, "type": "web", "details": {"url": url}})
}

fn directory_file(dir: &Path, name: &str, records: &[serde_json::Value]) -> DirectorySource {
    let path = dir.join(name);
    std::fs::write(
        &path,
        serde_json::json!({"applications": records}).to_string(),
    )
    .unwrap();
    DirectorySource::File(path)
}

#[test]
fn valid_records_load_and_invalid_ones_are_named_by_app_id_and_field() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("blotter.html"), "<p>blotter</p>").unwrap();
    let full = serde_json::json!({
        "appId": "blotter", "title": "Order Blotter", "type": "web",
        "details": {"url": "blotter.html"},
        "version": "1.2", "description": "Orders", "tooltip": "Blotter", "publisher": "Acme",
        "icons": [{"src": "https://example.com/i.png", "size": "64x64", "type": "image/png"}],
        "categories": ["trading"], "contactEmail": "a@example.com",
        "interop": {
            "intents": {
                "listensFor": {
                    "ViewOrders": {"displayName": "View orders", "contexts": ["fdc3.instrument"]},
                    "CreateOrder": {"contexts": ["fdc3.order"], "resultType": "channel<fdc3.order>"}
                },
                "raises": {"ViewChart": ["fdc3.instrument"]}
            },
            "userChannels": {"broadcasts": ["fdc3.instrument"], "listensFor": ["fdc3.instrument"]},
            "appChannels": [{"id": "orders", "description": "Orders", "broadcasts": ["fdc3.order"]}]
        },
        "hostManifests": {
            "weft": {"restart": "never", "limits": {"memoryMb": 300}},
            "Glue42": {"type": "window"}
        }
    });
    let records = [
        full,
        web("news", "https://news.example.com/"),
        serde_json::json!({"appId": "no-type", "title": "T", "details": {"url": "https://x.example/"}}),
        serde_json::json!({"appId": "native", "title": "T", "type": "native", "details": {"path": "/bin/x"}}),
        serde_json::json!({"appId": "bad-url", "title": "T", "type": "web", "details": {"url": "ftp://x/"}}),
        serde_json::json!({"appId": "no-title", "type": "web", "details": {"url": "https://x.example/"}}),
        serde_json::json!({"appId": "bad-icons", "title": "T", "type": "web", "details": {"url": "https://x.example/"}, "icons": [{"src": 7}]}),
        serde_json::json!({"appId": "bad-weft", "title": "T", "type": "web", "details": {"url": "https://x.example/"}, "hostManifests": {"weft": {"limits": {"memoryMb": 1}}}}),
        serde_json::json!({"appId": "bad-result", "title": "T", "type": "web", "details": {"url": "https://x.example/"}, "interop": {"intents": {"listensFor": {"X": {"contexts": [], "resultType": "channel<>"}}}}}),
        serde_json::json!({"appId": "weft-agent", "title": "T", "type": "web", "details": {"url": "https://x.example/"}}),
        serde_json::json!({"title": "no id"}),
        serde_json::json!(["not", "a", "record"]),
    ];
    let source = directory_file(dir.path(), "appd.json", &records);
    let directory = Directory::load(std::slice::from_ref(&source));

    let ids: Vec<_> = directory.apps().iter().map(|a| a.app_id.as_str()).collect();
    assert_eq!(ids, ["blotter", "news"]);
    let blotter = directory.get("blotter").unwrap();
    assert_eq!(blotter.title, "Order Blotter");
    assert_eq!(
        blotter.url,
        AppUrl::Local {
            root: std::fs::canonicalize(dir.path()).unwrap(),
            path: "blotter.html".into()
        }
    );
    assert_eq!(blotter.icons[0].size.as_deref(), Some("64x64"));
    let create = &blotter.interop.listens_for["CreateOrder"];
    assert_eq!(create.result_type.as_deref(), Some("channel<fdc3.order>"));
    assert_eq!(create.contexts, ["fdc3.order"]);
    assert_eq!(blotter.interop.raises["ViewChart"], ["fdc3.instrument"]);
    assert_eq!(blotter.interop.app_channels[0].id, "orders");
    assert_eq!(
        blotter.interop.user_channels.broadcasts,
        ["fdc3.instrument"]
    );
    assert_eq!(
        blotter.find("blotter"),
        directory.find("blotter"),
        "a record is its own directory"
    );
    assert_eq!(blotter.find("news"), None);
    let found = directory.find("blotter").unwrap();
    let settings = found.settings.check().unwrap();
    assert_eq!(settings.restart.policy, RestartPolicy::Never);
    assert_eq!(settings.limits.memory_mb, Some(300));

    let named: Vec<(Option<usize>, Option<&str>, Option<&str>)> = directory
        .problems
        .iter()
        .map(|p| {
            (
                p.index,
                p.detail.app_id.as_deref(),
                p.detail.field.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        named,
        [
            (Some(2), Some("no-type"), Some("type")),
            (Some(3), Some("native"), Some("type")),
            (Some(4), Some("bad-url"), Some("details.url")),
            (Some(5), Some("no-title"), Some("title")),
            (Some(6), Some("bad-icons"), Some("icons[0].src")),
            (
                Some(7),
                Some("bad-weft"),
                Some("hostManifests.weft.limits.memoryMb")
            ),
            (
                Some(8),
                Some("bad-result"),
                Some("interop.intents.listensFor.X.resultType")
            ),
            (Some(9), Some("weft-agent"), Some("appId")),
            (Some(10), None, None),
            (Some(11), None, None),
        ]
    );
    let text = directory.problems[2].to_string();
    assert!(
        text.starts_with(&format!(
            "app directory {}: applications[4] (appId \"bad-url\"): field `details.url`: ",
            source
        )),
        "{text}"
    );
    assert!(text.contains("scheme \"ftp\""), "{text}");
    assert!(
        directory.problems[8]
            .detail
            .problem
            .contains("missing field `appId`"),
        "{}",
        directory.problems[8]
    );
}

#[test]
fn unreadable_sources_are_reported_and_the_others_load() {
    let dir = tempfile::tempdir().unwrap();
    let good = directory_file(
        dir.path(),
        "good.json",
        &[web("news", "https://n.example/")],
    );
    let later = directory_file(
        dir.path(),
        "later.json",
        &[
            web("news", "https://other.example/"),
            web("chart", "https://c.example/"),
        ],
    );
    std::fs::write(dir.path().join("broken.json"), "{\"applications\": [").unwrap();
    std::fs::write(dir.path().join("other.json"), "{\"apps\": []}").unwrap();
    let sources = [
        DirectorySource::File(dir.path().join("missing.json")),
        DirectorySource::File(dir.path().join("broken.json")),
        DirectorySource::File(dir.path().join("other.json")),
        good,
        later,
    ];
    let directory = Directory::load(&sources);
    assert_eq!(directory.apps().len(), 2);
    assert_eq!(
        directory.get("news").unwrap().url,
        AppUrl::Remote("https://n.example/".into()),
        "the first directory listed wins"
    );
    let problems: Vec<String> = directory.problems.iter().map(|p| p.to_string()).collect();
    assert!(
        problems[0].contains("missing.json: cannot read the file"),
        "{problems:?}"
    );
    assert!(
        problems[1].contains("broken.json: invalid JSON"),
        "{problems:?}"
    );
    assert!(problems[2].contains("not an App Directory"), "{problems:?}");
    assert!(
        problems[3].contains("applications[0] (appId \"news\")"),
        "{problems:?}"
    );
    assert!(
        problems[3].contains("already has this appId"),
        "{problems:?}"
    );
}

/// A real HTTP server on 127.0.0.1 answering `GET path` from a fixed table, until
/// dropped.
struct Server {
    url: url::Url,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    fn start(routes: Vec<(&'static str, u16, String)>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = url::Url::parse(&format!("http://{}/", listener.local_addr().unwrap())).unwrap();
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::spawn(move || {
            while !stopping.load(Ordering::Acquire) {
                let Ok((stream, _)) = listener.accept() else {
                    std::thread::park_timeout(std::time::Duration::from_millis(5));
                    continue;
                };
                stream.set_nonblocking(false).unwrap();
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut request = String::new();
                reader.read_line(&mut request).unwrap();
                let path = request.split_whitespace().nth(1).unwrap_or("").to_owned();
                loop {
                    let mut header = String::new();
                    if reader.read_line(&mut header).unwrap() <= 2 {
                        break;
                    }
                }
                let (status, body) = routes
                    .iter()
                    .find(|(p, _, _)| *p == path)
                    .map(|(_, s, b)| (*s, b.clone()))
                    .unwrap_or((404, "not found".into()));
                let mut stream = stream;
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        Server {
            url,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}

#[test]
fn directories_are_fetched_from_urls_and_appd_servers() {
    let doc =
        |records: Vec<serde_json::Value>| serde_json::json!({"applications": records}).to_string();
    let server = Server::start(vec![
        (
            "/appd/v2/apps",
            200,
            doc(vec![web("blotter", "/apps/blotter/")]),
        ),
        (
            "/static/dir.json",
            200,
            doc(vec![web("news", "news/index.html")]),
        ),
        ("/down/v2/apps", 500, "oops".into()),
    ]);
    let source = |path: &str| DirectorySource::Url(server.url.join(path).unwrap());
    let directory = Directory::load(&[source("appd"), source("static/dir.json"), source("down/")]);
    assert_eq!(
        directory.get("blotter").unwrap().url,
        AppUrl::Remote(server.url.join("apps/blotter/").unwrap().into()),
        "the REST form, a relative URL resolved against the server"
    );
    assert_eq!(
        directory.get("news").unwrap().url,
        AppUrl::Remote(server.url.join("static/news/index.html").unwrap().into())
    );
    assert_eq!(directory.problems.len(), 1, "{:?}", directory.problems);
    let problem = directory.problems[0].to_string();
    assert!(
        problem.contains("down/v2/apps answered HTTP 500"),
        "{problem}"
    );
    drop(server);
}

#[test]
fn which_url_is_fetched() {
    let apps = |u: &str| fetch::apps_url(&url::Url::parse(u).unwrap()).to_string();
    assert_eq!(
        apps("https://appd.example.com"),
        "https://appd.example.com/v2/apps"
    );
    assert_eq!(
        apps("https://appd.example.com/api"),
        "https://appd.example.com/api/v2/apps"
    );
    assert_eq!(
        apps("https://appd.example.com/api/"),
        "https://appd.example.com/api/v2/apps"
    );
    assert_eq!(
        apps("https://a.example/v2/apps"),
        "https://a.example/v2/apps"
    );
    assert_eq!(
        apps("http://localhost:8080/dir.json"),
        "http://localhost:8080/dir.json"
    );
}

#[test]
fn result_types() {
    for ok in ["fdc3.instrument", "channel", "channel<fdc3.order>", "x"] {
        assert!(valid_result_type(ok), "{ok}");
    }
    for bad in ["", "channel<>", "channel<a", "a>", " x", "channel< x>"] {
        assert!(!valid_result_type(bad), "{bad}");
    }
}

proptest::proptest! {
    /// Arbitrary documents, and records of roughly the right shape, never panic.
    #[test]
    fn reading_never_panics(
        bytes in proptest::collection::vec(proptest::arbitrary::any::<u8>(), 0..300),
        id in "\\PC{0,12}", url in "\\PC{0,30}", rt in "\\PC{0,12}",
    ) {
        let dir = tempfile::tempdir().unwrap();
        let source = DirectorySource::File(dir.path().join("d.json"));
        let mut directory = Directory::default();
        directory.add_document(&source, &bytes, &Base::Folder(dir.path()));
        let record = serde_json::json!({"applications": [{
            "appId": id, "title": "t", "type": "web", "details": {"url": url},
            "interop": {"intents": {"listensFor": {"I": {"contexts": [], "resultType": rt}}}}
        }]});
        directory.add_document(&source, record.to_string().as_bytes(), &Base::Folder(dir.path()));
        let base = url::Url::parse("http://127.0.0.1:1/d/").unwrap();
        directory.add_document(&source, record.to_string().as_bytes(), &Base::Url(&base));
    }
}

#[test]
fn a_records_signature_is_checked_as_read_and_named_as_its_manifest() {
    use weft_manifest_signing::{RECORD_SIGNATURE, SecretKey, SignatureCheck, sign};
    let dir = tempfile::tempdir().unwrap();
    let key = SecretKey::generate();
    let mut signed = web("news", "https://news.example/");
    sign(&mut signed, RECORD_SIGNATURE, &key).unwrap();
    let mut tampered = web("rates", "https://rates.example/");
    sign(&mut tampered, RECORD_SIGNATURE, &key).unwrap();
    tampered["details"]["url"] = serde_json::json!("https://evil.example/");
    let source = directory_file(
        dir.path(),
        "appd.json",
        &[signed, tampered, web("plain", "https://plain.example/")],
    );
    let directory = Directory::load(&[source]);
    assert!(directory.problems.is_empty(), "{:?}", directory.problems);
    let manifest = |id: &str| directory.find(id).unwrap().manifest;
    assert_eq!(
        manifest("news").signature,
        SignatureCheck::Signed(key.public())
    );
    assert_eq!(manifest("news").what, "the App Directory record news");
    assert!(matches!(
        manifest("rates").signature,
        SignatureCheck::Invalid(_)
    ));
    assert_eq!(manifest("plain").signature, SignatureCheck::Unsigned);
}
