//! `LockStore`: leases (`LOCK#<name>`), and single-use tokens made from them.

use std::time::Duration;

use aws_sdk_dynamodb::types::ReturnValue;
use reelay_domain::UtcTime;
use reelay_domain::ports::{LockStore, StoreError};

use super::{ATTR_PK, ATTR_SK, DynamoStore, get_s, key, n, s, unavailable};

const LOCK_SK: &str = "LOCK";
/// Leases linger this long past their end before TTL removes them.
const TTL_GRACE: Duration = Duration::from_secs(24 * 3600);

fn lock_pk(name: &str) -> String {
    format!("LOCK#{name}")
}

impl LockStore for DynamoStore {
    /// A lease: free, expired, or already ours (renewal). A dead holder's lease simply expires.
    async fn acquire_lock(
        &self,
        name: &str,
        owner: &str,
        now: UtcTime,
        until: UtcTime,
    ) -> Result<bool, StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(self.table())
            .item(ATTR_PK, s(lock_pk(name)))
            .item(ATTR_SK, s(LOCK_SK))
            .item("t", s("lock"))
            .item("owner_id", s(owner))
            .item("until_ms", n(until.as_millis()))
            .item("expires_at", n(until.plus(TTL_GRACE).as_secs()))
            .condition_expression(
                "attribute_not_exists(pk) OR until_ms < :now OR owner_id = :owner",
            )
            .expression_attribute_values(":now", n(now.as_millis()))
            .expression_attribute_values(":owner", s(owner))
            .return_consumed_capacity(self.capacity())
            .send()
            .await;
        match result {
            Ok(out) => {
                self.meter.record("acquire_lock", out.consumed_capacity());
                Ok(true)
            }
            Err(err) => {
                self.meter.record_failed("acquire_lock");
                match err.as_service_error() {
                    Some(e) if e.is_conditional_check_failed_exception() => Ok(false),
                    _ => Err(unavailable(err)),
                }
            }
        }
    }

    /// Releases only our own lease; someone else's (after ours expired) is left alone.
    async fn release_lock(&self, name: &str, owner: &str) -> Result<(), StoreError> {
        let result = self
            .client
            .delete_item()
            .table_name(self.table())
            .set_key(Some(key(lock_pk(name), LOCK_SK)))
            .condition_expression("owner_id = :owner")
            .expression_attribute_values(":owner", s(owner))
            .return_consumed_capacity(self.capacity())
            .send()
            .await;
        match result {
            Ok(out) => {
                self.meter.record("release_lock", out.consumed_capacity());
                Ok(())
            }
            Err(err) => {
                self.meter.record_failed("release_lock");
                match err.as_service_error() {
                    Some(e) if e.is_conditional_check_failed_exception() => Ok(()),
                    _ => Err(unavailable(err)),
                }
            }
        }
    }

    async fn take_lock(&self, name: &str, now: UtcTime) -> Result<Option<String>, StoreError> {
        let result = self
            .client
            .delete_item()
            .table_name(self.table())
            .set_key(Some(key(lock_pk(name), LOCK_SK)))
            .condition_expression("attribute_exists(pk) AND until_ms >= :now")
            .expression_attribute_values(":now", n(now.as_millis()))
            .return_values(ReturnValue::AllOld)
            .return_consumed_capacity(self.capacity())
            .send()
            .await;
        match result {
            Ok(out) => {
                self.meter.record("take_lock", out.consumed_capacity());
                Ok(out
                    .attributes
                    .as_ref()
                    .and_then(|item| get_s(item, "owner_id"))
                    .map(str::to_owned))
            }
            Err(err) => {
                self.meter.record_failed("take_lock");
                match err.as_service_error() {
                    // Absent or expired: nothing to consume.
                    Some(e) if e.is_conditional_check_failed_exception() => Ok(None),
                    _ => Err(unavailable(err)),
                }
            }
        }
    }
}
