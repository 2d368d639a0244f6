//! HTTP plumbing shared by every route module: the request context
//! (request ids, the standard error body for framework-made errors), request
//! extractors that reject in the standard body, the client's address, list pagination, rate limits,
//! and the server loop with its shutdown drain.

pub mod answers;
pub mod client_ip;
pub mod extract;
pub mod pagination;
pub mod rate_limit;
pub mod request_context;
pub mod request_id;
pub mod server;
