//! Raw bindings generated from the vendored WIT of the `wasi:keyvalue`
//! proposal (`wit/deps/keyvalue-0.2.0-draft2/` and
//! `wit/deps/keyvalue-0.2.0-draft/`), async and sync, as
//! [`crate::bindings`] has them for `mini:storage`.
//!
//! Both versions map their `bucket` and `cas` resources to the same host
//! types, [`BucketHandle`](super::BucketHandle) and
//! [`CasHandle`](super::CasHandle), and their `error` to
//! [`HostError`](crate::HostError) (trappable): one implementation serves
//! both. Each bindings has its own records and `error` (the sync ones
//! too), converted from the implementation's.

#![allow(missing_docs, non_camel_case_types, clippy::all)]

/// `wasi:keyvalue@0.2.0-draft2`: what Spin and the current proposal use.
pub mod draft2 {
    wasmtime::component::bindgen!({
        path: "../../wit",
        interfaces: "
            import wasi:keyvalue/store@0.2.0-draft2;
            import wasi:keyvalue/atomics@0.2.0-draft2;
            import wasi:keyvalue/batch@0.2.0-draft2;
        ",
        // Reads never wait: sync host functions, no future per call.
        imports: {
            "wasi:keyvalue/store.[method]bucket.get": trappable | tracing,
            "wasi:keyvalue/store.[method]bucket.exists": trappable | tracing,
            "wasi:keyvalue/store.[method]bucket.list-keys": trappable | tracing,
            "wasi:keyvalue/atomics.[static]cas.new": trappable | tracing,
            "wasi:keyvalue/atomics.[method]cas.current": trappable | tracing,
            "wasi:keyvalue/batch.get-many": trappable | tracing,
            default: async | trappable | tracing,
        },
        trappable_error_type: {
            "wasi:keyvalue/store@0.2.0-draft2.error" => crate::HostError,
        },
        with: {
            "wasi:keyvalue/store.bucket": crate::keyvalue::BucketHandle,
            "wasi:keyvalue/atomics.cas": crate::keyvalue::CasHandle,
        },
        require_store_data_send: true,
    });

    pub use self::wasi::keyvalue0_2_0_draft2::{atomics, batch, store};

    /// The same interfaces with blocking host functions.
    pub mod sync {
        wasmtime::component::bindgen!({
            path: "../../wit",
            interfaces: "
                import wasi:keyvalue/store@0.2.0-draft2;
                import wasi:keyvalue/atomics@0.2.0-draft2;
                import wasi:keyvalue/batch@0.2.0-draft2;
            ",
            imports: { default: trappable | tracing },
            trappable_error_type: {
                "wasi:keyvalue/store@0.2.0-draft2.error" => crate::HostError,
            },
            with: {
                "wasi:keyvalue/store.bucket": crate::keyvalue::BucketHandle,
                "wasi:keyvalue/atomics.cas": crate::keyvalue::CasHandle,
            },
            require_store_data_send: true,
        });

        pub use self::wasi::keyvalue0_2_0_draft2::{atomics, batch, store};
    }
}

/// `wasi:keyvalue@0.2.0-draft`: what wasmtime-wasi-keyvalue and wasmCloud
/// components import (a `u64` cursor, an unsigned `increment`, no CAS).
pub mod draft {
    wasmtime::component::bindgen!({
        path: "../../wit",
        interfaces: "
            import wasi:keyvalue/store@0.2.0-draft;
            import wasi:keyvalue/atomics@0.2.0-draft;
            import wasi:keyvalue/batch@0.2.0-draft;
        ",
        imports: {
            "wasi:keyvalue/store.[method]bucket.get": trappable | tracing,
            "wasi:keyvalue/store.[method]bucket.exists": trappable | tracing,
            "wasi:keyvalue/store.[method]bucket.list-keys": trappable | tracing,
            "wasi:keyvalue/batch.get-many": trappable | tracing,
            default: async | trappable | tracing,
        },
        trappable_error_type: {
            "wasi:keyvalue/store@0.2.0-draft.error" => crate::HostError,
        },
        with: {
            "wasi:keyvalue/store.bucket": crate::keyvalue::BucketHandle,
        },
        require_store_data_send: true,
    });

    pub use self::wasi::keyvalue0_2_0_draft::{atomics, batch, store};

    /// The same interfaces with blocking host functions.
    pub mod sync {
        wasmtime::component::bindgen!({
            path: "../../wit",
            interfaces: "
                import wasi:keyvalue/store@0.2.0-draft;
                import wasi:keyvalue/atomics@0.2.0-draft;
                import wasi:keyvalue/batch@0.2.0-draft;
            ",
            imports: { default: trappable | tracing },
            trappable_error_type: {
                "wasi:keyvalue/store@0.2.0-draft.error" => crate::HostError,
            },
            with: {
                "wasi:keyvalue/store.bucket": crate::keyvalue::BucketHandle,
            },
            require_store_data_send: true,
        });

        pub use self::wasi::keyvalue0_2_0_draft::{atomics, batch, store};
    }
}
