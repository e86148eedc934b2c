//! The HTTP server on a listener: the actix-web app served through actix-http and
//! actix-server directly, as actix-web's own `HttpServer` does, because only there can an
//! `Expect: 100-continue` request be answered before `100 Continue` (see `routes::expect`).
//! The timeouts are `HttpServer`'s defaults. Connections are capped (`MAX_CONNECTIONS`): the
//! HTTP layer buffers a connection's bytes before the byte budget sees them, so only a cap on
//! connections bounds that memory.
//!
//! HTTP/1.1 only, with TLS too (ALPN offers `http/1.1` alone): ZEGOCLOUD posts HTTP/1.1, and an
//! HTTP/2 server is a second protocol to bound (header lists, CONTINUATION floods, streams,
//! idle PINGs) for no caller that needs it.

use std::net::TcpListener;
use std::time::Duration;

use actix_http::{HttpService, Request};
use actix_server::Server;
use actix_service::{fn_service, map_config, ServiceFactoryExt};
use actix_tls::accept::rustls_0_23::{Acceptor, TlsStream};
use actix_tls::accept::TlsError;
use actix_web::dev::AppConfig;
use actix_web::{web, App};
use rustls::ServerConfig;
use tokio::net::TcpStream;

use super::head_timer::HeadTimed;
use crate::routes::{callback, errors, expect, health, AppState};

/// How long a client may take to send a request head: actix times the first of a connection,
/// `HeadTimed` every one after it.
const CLIENT_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a connection lingers after its answer before it is closed.
const CLIENT_DISCONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// Binds the app to `listener` (over TLS when `tls` is given) and starts it. `drain_timeout`
/// bounds how long in-flight requests get once the server is told to stop.
pub fn serve(
    listener: TcpListener,
    tls: Option<ServerConfig>,
    state: web::Data<AppState>,
    drain_timeout: Duration,
) -> std::io::Result<Server> {
    // Signals are ours (see `Application::run_until_stopped`): readiness drops before the drain.
    // The connection cap is per worker in actix-server; the operator's is for the process.
    let workers = std::thread::available_parallelism().map_or(2, usize::from);
    let per_worker = state.limits.max_connections.div_ceil(workers);
    let builder = Server::build()
        .workers(workers)
        .max_concurrent_connections(per_worker)
        .disable_signals()
        .shutdown_timeout(drain_timeout.as_secs());
    // Tells keep-alive connections to close once the stop begins, instead of idling it out.
    let stopping = builder.graceful_shutdown_signal();
    // The same service either way; only the transport differs, and its type with it.
    macro_rules! http_service {
        () => {{
            let stopping = stopping.clone();
            let expect_state = state.clone();
            HttpService::build()
                .client_request_timeout(CLIENT_REQUEST_TIMEOUT)
                .client_disconnect_timeout(CLIENT_DISCONNECT_TIMEOUT)
                .graceful_shutdown_signal(move || {
                    let stopping = stopping.clone();
                    async move { stopping.notified().await }
                })
                .expect(fn_service(move |request: Request| {
                    let checked = expect::continue_or_refuse(&expect_state, request);
                    async move { checked }
                }))
                .h1(map_config(app(state.clone()), |_| AppConfig::default()))
        }};
    }
    // Each connection's transport (TCP, or TLS over it) gets a deadline on every request head.
    let builder = match tls {
        Some(tls) => builder.listen("zego-kafka-bridge-https", listener, move || {
            Acceptor::new(tls.clone())
                .map_init_err(|_| unreachable!("the TLS acceptor does not fail to start"))
                .map_err(TlsError::into_service_error)
                .map(|io: TlsStream<TcpStream>| {
                    let peer = io.get_ref().0.peer_addr().ok();
                    (HeadTimed::new(io, CLIENT_REQUEST_TIMEOUT), peer)
                })
                .and_then(http_service!().map_err(TlsError::Service))
        })?,
        None => builder.listen("zego-kafka-bridge", listener, move || {
            fn_service(|io: TcpStream| {
                let peer = io.peer_addr().ok();
                std::future::ready(Ok::<_, actix_http::error::DispatchError>((
                    HeadTimed::new(io, CLIENT_REQUEST_TIMEOUT),
                    peer,
                )))
            })
            .and_then(http_service!())
        })?,
    };
    Ok(builder.run())
}

/// The routes: health, readiness, metrics, each product's callback path, and JSON for
/// everything else.
fn app(
    state: web::Data<AppState>,
) -> App<
    impl actix_service::ServiceFactory<
        actix_web::dev::ServiceRequest,
        Config = (),
        Response = actix_web::dev::ServiceResponse,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let product_paths: Vec<_> = state.limits.product_paths().collect();
    let app = App::new()
        .app_data(state)
        // HEAD too: some load balancers and uptime checks probe with it.
        .route("/healthz", web::get().to(health::healthz))
        .route("/healthz", web::head().to(health::healthz))
        .route("/readyz", web::get().to(health::readyz))
        .route("/readyz", web::head().to(health::readyz))
        .route("/metrics", web::get().to(health::metrics));
    product_paths
        .into_iter()
        .fold(app, |app, (product, path)| {
            app.service(
                web::resource(path.as_str())
                    .route(web::post().to(move |request, payload, state| {
                        callback::receive(request, payload, state, product)
                    }))
                    .default_service(web::to(errors::method_not_allowed)),
            )
        })
        .default_service(web::to(errors::not_found))
}
