//! sluice gateway: a Kafka-protocol gateway that turns one shared Apache Kafka pool
//! into many private clusters.
//!
//! The request path, top to bottom: `codec` frames bytes, `protocol` reads headers in
//! place, `api_table` says what each API needs, `connection` forwards in order and
//! `rewrite` points every broker address a response carries at the gateway. `pool`
//! discovers the brokers and `server` keeps one listener per broker.
#![forbid(unsafe_code)]
// serde_json::json! of the OpenAPI document (`api::openapi`) nests deeply.
#![recursion_limit = "256"]

pub mod admin;
pub mod api;
pub mod api_table;
pub mod audit;
pub mod clients;
pub mod codec;
pub mod issuer;
pub mod journal;
pub mod kclient;
pub mod load;
pub mod meters;
pub mod placement;
pub mod config;
pub mod fleet;
pub mod guard;
pub mod connection;
pub mod pool;
pub mod pool_metrics;
pub mod protocol;
pub mod reload;
pub mod rewrite;
pub mod sasl;
pub mod scram;
pub mod server;
pub mod source_limits;
pub mod store;
pub mod telemetry;
pub mod tenant;
pub mod tls;
pub mod upstream;
pub mod usage;
