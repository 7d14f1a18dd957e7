//! `wasi:keyvalue@0.2.0-draft2` (async and sync) on the implementation in
//! [`super`].

use wasmtime::component::Resource;

use super::bindings::draft2;
use super::{BucketHandle, CasHandle, KvFailure};
use crate::HostError;
use crate::ctx::MiniCtxView;

/// Implements the traits of the bindings `$m` for [`MiniCtxView`], each
/// function (`async` when `$kw` is) finishing the implementation's future
/// with `$finish!` (`.await`, or run inline).
macro_rules! draft2_host {
    ($m:path, [$($kw:tt)?], $finish:ident) => {
        const _: () = {
            use $m as m;
            use m::{atomics, batch, store};

            store_and_batch_host!([$($kw)?], $finish);

            impl store::HostBucket for MiniCtxView<'_> {
                fn get(&mut self, bucket: Resource<BucketHandle>, key: String) -> Result<Option<Vec<u8>>, HostError> {
                    self.kv_get(bucket, key)
                }

                $($kw)? fn set(&mut self, bucket: Resource<BucketHandle>, key: String, value: Vec<u8>) -> Result<(), HostError> {
                    $finish!(self.kv_set(bucket, key, value))
                }

                $($kw)? fn delete(&mut self, bucket: Resource<BucketHandle>, key: String) -> Result<(), HostError> {
                    $finish!(self.kv_delete(bucket, key))
                }

                fn exists(&mut self, bucket: Resource<BucketHandle>, key: String) -> Result<bool, HostError> {
                    self.kv_exists(bucket, key)
                }

                fn list_keys(&mut self, bucket: Resource<BucketHandle>, cursor: Option<String>) -> Result<store::KeyResponse, HostError> {
                    let page = self.kv_list(bucket, cursor)?;
                    Ok(store::KeyResponse { keys: page.keys, cursor: page.next_after })
                }

                $($kw)? fn drop(&mut self, bucket: Resource<BucketHandle>) -> wasmtime::Result<()> {
                    self.drop_handle(bucket);
                    Ok(())
                }
            }

            impl atomics::Host for MiniCtxView<'_> {
                $($kw)? fn increment(&mut self, bucket: Resource<BucketHandle>, key: String, delta: i64) -> Result<i64, HostError> {
                    $finish!(self.kv_increment(bucket, key, delta))
                }

                $($kw)? fn swap(&mut self, cas: Resource<CasHandle>, value: Vec<u8>) -> wasmtime::Result<Result<(), atomics::CasError>> {
                    match $finish!(self.kv_swap(cas, value)) {
                        Ok(Ok(())) => Ok(Ok(())),
                        Ok(Err(failed)) => Ok(Err(atomics::CasError::CasFailed(failed.0))),
                        Err(err) => Ok(Err(atomics::CasError::StoreError(store_error(self.kv_failure(err)?)))),
                    }
                }
            }

            impl atomics::HostCas for MiniCtxView<'_> {
                fn new(&mut self, bucket: Resource<BucketHandle>, key: String) -> Result<Resource<CasHandle>, HostError> {
                    self.kv_cas_new(bucket, key)
                }

                fn current(&mut self, cas: Resource<CasHandle>) -> Result<Option<Vec<u8>>, HostError> {
                    self.kv_cas_current(cas)
                }

                $($kw)? fn drop(&mut self, cas: Resource<CasHandle>) -> wasmtime::Result<()> {
                    self.drop_handle(cas);
                    Ok(())
                }
            }
        };
    };
}

draft2_host!(draft2, [async], awaited);
draft2_host!(draft2::sync, [], ran_inline);
