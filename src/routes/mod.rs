//! HTTP routes: the callback endpoint, health and readiness, metrics, and JSON errors.

pub mod callback;
pub mod errors;
pub mod expect;
pub mod health;
pub mod held_payload;
pub mod limits;
pub mod state;

pub use errors::ApiError;
pub use state::AppState;
