//! `WebhookStore`: a tenant's endpoints (`WEBHOOK#<tenant>#<id>` / `ENDPOINT`, listed through
//! `gsi1pk = TENANT#<tenant>`, `WEBHOOK#…`) and each endpoint's delivery log in the same
//! partition (`DLV#<ms>#<event id>#<attempt>`, read newest first, expiring by TTL).

use aws_sdk_dynamodb::types::AttributeValue;
use reelay_domain::UtcTime;
use reelay_domain::ids::TenantId;
use reelay_domain::ports::{DeliveryPage, StoreError, WebhookStore, delivery_sort_key};
use reelay_domain::webhooks::{DeliveryRecord, Endpoint, EndpointId, EventType};
use secrecy::{ExposeSecret, SecretString};

use super::jobs::tenant_gsi;
use super::{ATTR_SK, DynamoStore, Item, get_n, get_s, key, n, req_s, s, unavailable};

const ENDPOINT_SK: &str = "ENDPOINT";
const DELIVERY_PREFIX: &str = "DLV#";

fn endpoint_pk(tenant: &TenantId, id: &EndpointId) -> String {
    format!("WEBHOOK#{tenant}#{id}")
}

fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(what.to_string())
}

fn parse_endpoint(item: &Item) -> Result<Endpoint, StoreError> {
    let events = get_s(item, "events")
        .unwrap_or_default()
        .split(',')
        .filter(|e| !e.is_empty())
        .map(|e| {
            e.parse::<EventType>()
                .map_err(|()| corrupt(format!("unknown event type {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Endpoint {
        id: EndpointId::parse(req_s(item, "id")?).map_err(corrupt)?,
        tenant_id: TenantId::parse(req_s(item, "tenant")?).map_err(corrupt)?,
        url: req_s(item, "url")?,
        events,
        description: get_s(item, "description").map(str::to_owned),
        secret: SecretString::from(req_s(item, "secret")?),
        created_at: UtcTime::from_millis(get_n(item, "created").unwrap_or(0)),
    })
}

fn parse_record(item: &Item) -> Result<DeliveryRecord, StoreError> {
    serde_json::from_str(&req_s(item, "doc")?).map_err(corrupt)
}

impl WebhookStore for DynamoStore {
    async fn put_endpoint(&self, endpoint: &Endpoint) -> Result<(), StoreError> {
        let events: Vec<&str> = endpoint.events.iter().map(EventType::as_str).collect();
        let mut item = key(endpoint_pk(&endpoint.tenant_id, &endpoint.id), ENDPOINT_SK);
        item.extend([
            ("t".to_owned(), s("webhook")),
            ("id".to_owned(), s(endpoint.id.as_str())),
            ("tenant".to_owned(), s(endpoint.tenant_id.as_str())),
            ("url".to_owned(), s(&endpoint.url)),
            ("events".to_owned(), s(events.join(","))),
            ("secret".to_owned(), s(endpoint.secret.expose_secret())),
            ("created".to_owned(), n(endpoint.created_at.as_millis())),
            ("gsi1pk".to_owned(), s(tenant_gsi(&endpoint.tenant_id))),
            ("gsi1sk".to_owned(), s(format!("WEBHOOK#{}", endpoint.id))),
        ]);
        if let Some(d) = &endpoint.description {
            item.insert("description".to_owned(), s(d));
        }
        self.put_new("put_endpoint", item).await
    }

    async fn endpoint(
        &self,
        tenant: &TenantId,
        id: &EndpointId,
    ) -> Result<Option<Endpoint>, StoreError> {
        self.get_item("endpoint", endpoint_pk(tenant, id), ENDPOINT_SK)
            .await?
            .as_ref()
            .map(parse_endpoint)
            .transpose()
    }

    async fn endpoints(&self, tenant: &TenantId) -> Result<Vec<Endpoint>, StoreError> {
        self.query_gsi1("endpoints", tenant_gsi(tenant), "WEBHOOK#")
            .await?
            .iter()
            .map(parse_endpoint)
            .collect()
    }

    async fn delete_endpoint(
        &self,
        tenant: &TenantId,
        id: &EndpointId,
    ) -> Result<bool, StoreError> {
        let op = "delete_endpoint";
        let out = self
            .client
            .delete_item()
            .table_name(self.table())
            .set_key(Some(key(endpoint_pk(tenant, id), ENDPOINT_SK)))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllOld)
            .return_consumed_capacity(self.capacity())
            .send()
            .await
            .map_err(self.failed(op))?;
        self.meter.record(op, out.consumed_capacity());
        Ok(out.attributes.is_some_and(|a| !a.is_empty()))
    }

    async fn record_delivery(
        &self,
        tenant: &TenantId,
        record: &DeliveryRecord,
        expires_at: UtcTime,
    ) -> Result<(), StoreError> {
        let doc = serde_json::to_string(record).map_err(corrupt)?;
        let mut item = key(
            endpoint_pk(tenant, &record.endpoint_id),
            &format!("{DELIVERY_PREFIX}{}", delivery_sort_key(record)),
        );
        item.extend([
            ("t".to_owned(), s("delivery")),
            ("doc".to_owned(), s(doc)),
            ("expires_at".to_owned(), n(expires_at.as_secs())),
        ]);
        let put = self.put(item).build().map_err(unavailable)?;
        self.put_alone("record_delivery", put, None).await
    }

    async fn deliveries(
        &self,
        tenant: &TenantId,
        id: &EndpointId,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<DeliveryPage, StoreError> {
        let op = "deliveries";
        let pk = endpoint_pk(tenant, id);
        let limit = limit.clamp(1, 100);
        let start = cursor.map(|c| key(pk.clone(), &format!("{DELIVERY_PREFIX}{c}")));
        let out = self
            .client
            .query()
            .table_name(self.table())
            .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
            .expression_attribute_values(":pk", s(pk))
            .expression_attribute_values(":prefix", s(DELIVERY_PREFIX))
            .scan_index_forward(false)
            .limit(i32::try_from(limit).unwrap_or(100))
            .set_exclusive_start_key(start)
            .return_consumed_capacity(self.capacity())
            .send()
            .await
            .map_err(self.failed(op))?;
        self.meter.record(op, out.consumed_capacity());
        let records = out
            .items
            .unwrap_or_default()
            .iter()
            .map(parse_record)
            .collect::<Result<Vec<_>, _>>()?;
        let next_cursor = out
            .last_evaluated_key
            .as_ref()
            .and_then(|k| k.get(ATTR_SK))
            .and_then(|v| match v {
                AttributeValue::S(sk) => sk.strip_prefix(DELIVERY_PREFIX).map(str::to_owned),
                _ => None,
            });
        Ok(DeliveryPage {
            records,
            next_cursor,
        })
    }
}
