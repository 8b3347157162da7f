//! A static file server on 127.0.0.1 for update repositories made by `weft-release`.

use std::path::Path;

/// Serves `dir` over HTTP on 127.0.0.1 until dropped.
pub struct StaticServer {
    /// `http://127.0.0.1:PORT/`.
    pub base: String,
    server: std::sync::Arc<tiny_http::Server>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl StaticServer {
    /// Serves `dir`.
    pub fn serve(dir: &Path) -> StaticServer {
        let server = std::sync::Arc::new(tiny_http::Server::http("127.0.0.1:0").unwrap());
        let port = server.server_addr().to_ip().unwrap().port();
        let (s, root) = (server.clone(), dir.to_owned());
        let thread = std::thread::spawn(move || {
            for request in s.incoming_requests() {
                let path = request.url().trim_start_matches('/').to_owned();
                let _ = match std::fs::read(root.join(&path)) {
                    Ok(bytes) if !path.contains("..") => {
                        request.respond(tiny_http::Response::from_data(bytes))
                    }
                    _ => request.respond(tiny_http::Response::empty(404)),
                };
            }
        });
        StaticServer {
            base: format!("http://127.0.0.1:{port}/"),
            server,
            thread: Some(thread),
        }
    }
}

impl Drop for StaticServer {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
