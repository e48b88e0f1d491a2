//! Hooks: authentication before routing, CORS on every response (and its
//! preflight), and a request ID, without touching the handlers.
//!
//! ```text
//! cargo run --release --example hooks [PORT]          # default 8080; 0 picks one
//! curl -i http://127.0.0.1:8080/admin/stats                              # 401
//! curl -i -H 'Authorization: Bearer let-me-in' http://127.0.0.1:8080/admin/stats
//! curl -i -X OPTIONS -H 'Origin: https://app.example' \
//!      -H 'Access-Control-Request-Method: PUT' http://127.0.0.1:8080/api/items   # 204
//! ```
//! `before` hooks run in the order added and may answer the request
//! themselves; `after` hooks see every response, the server's own 404 and
//! 503 included. The token comes from `SOLO_TOKEN` (default `let-me-in`).

use std::cell::Cell;
use std::rc::Rc;

use solo::http::{Request, Response, Server};

/// Origins allowed to call the API from a browser.
const ALLOWED_ORIGINS: [&str; 2] = ["https://app.example", "http://localhost:3000"];

fn main() -> std::io::Result<()> {
    let port: u16 = match std::env::args().nth(1) {
        Some(p) => p
            .parse()
            .map_err(|e| std::io::Error::other(format!("port {p:?}: {e}")))?,
        None => 8080,
    };
    let token = format!(
        "Bearer {}",
        std::env::var("SOLO_TOKEN").unwrap_or_else(|_| "let-me-in".into())
    );
    let next_id = Rc::new(Cell::new(0u64));
    let server = Server::bind(("127.0.0.1", port))?
        // CORS preflight: answered here, before routing, for any path.
        .before(|req: &mut Request| {
            let preflight = req.method_str() == "OPTIONS" && req.header("access-control-request-method").is_some();
            let origin = req.header("origin")?;
            if !preflight || !ALLOWED_ORIGINS.contains(&origin) {
                return None;
            }
            Some(
                Response::status(204)
                    .header("Access-Control-Allow-Origin", origin.to_string())
                    .header("Access-Control-Allow-Methods", "GET, POST, PUT, DELETE")
                    .header("Access-Control-Allow-Headers", "Authorization, Content-Type")
                    .header("Access-Control-Max-Age", "600")
                    .header("Vary", "Origin"),
            )
        })
        // Authentication: everything under /admin needs the bearer token.
        .before(move |req: &mut Request| {
            if !req.path().starts_with("/admin/") || req.header("authorization") == Some(token.as_str()) {
                return None;
            }
            Some(
                Response::text("a bearer token is required\n")
                    .with_status(401)
                    .header("WWW-Authenticate", "Bearer"),
            )
        })
        // Every response: a request ID, and `Access-Control-Allow-Origin: *`
        // so a page on any origin may read it. `*` is right for an API
        // called with a token in `Authorization` (not a CORS credential);
        // one that relies on cookies must echo the origin instead, from the
        // handler, which sees the request.
        .after(move |resp: Response| {
            next_id.set(next_id.get() + 1);
            resp.header("X-Request-Id", next_id.get().to_string())
                .header("Access-Control-Allow-Origin", "*")
        })
        .get("/api/items", |_req: Request| async {
            Response::json(r#"[{"id":1,"name":"first"}]"#)
        })
        .put("/api/items", |mut req: Request| async move {
            let body = req.body().await?;
            Ok::<_, std::io::Error>(Response::json(body).with_status(201))
        })
        .get("/admin/stats", |_req: Request| async {
            Response::text("secret figures\n")
        });
    eprintln!("hooks: listening on http://{}", server.local_addr()?);
    server.run()
}
