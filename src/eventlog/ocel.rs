//! OCEL 2.0 as JSON: the object and event types with their attributes,
//! the objects with their (timed) attributes and relations, the events
//! with their attributes and related objects.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::{Log, time};

/// The log as an OCEL 2.0 JSON document.
pub fn ocel_json(log: &Log) -> Value {
    let mut event_types: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for e in &log.events {
        let attrs = event_types.entry(e.activity.as_str()).or_default();
        for (name, _) in &e.attributes {
            if !attrs.contains(&name.as_str()) {
                attrs.push(name);
            }
        }
    }
    let mut object_types: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for o in log.objects.values() {
        let attrs = object_types.entry(o.kind).or_default();
        for (name, _, _) in &o.attributes {
            if !attrs.contains(&name.as_str()) {
                attrs.push(name);
            }
        }
    }
    let types = |m: BTreeMap<&str, Vec<&str>>| -> Vec<Value> {
        m.into_iter()
            .map(|(name, attrs)| {
                json!({
                    "name": name,
                    "attributes": attrs.iter().map(|a| json!({"name": a, "type": "string"})).collect::<Vec<_>>(),
                })
            })
            .collect()
    };
    json!({
        "objectTypes": types(object_types),
        "eventTypes": types(event_types),
        "objects": log.objects.values().map(|o| json!({
            "id": o.id,
            "type": o.kind,
            "attributes": o.attributes.iter().map(|(n, v, t)| json!({"name": n, "time": time(*t), "value": v})).collect::<Vec<_>>(),
            "relationships": o.related.iter().map(|(id, q)| json!({"objectId": id, "qualifier": q})).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "events": log.events.iter().map(|e| json!({
            "id": e.id,
            "type": e.activity,
            "time": time(e.start),
            "attributes": e.attributes.iter().map(|(n, v)| json!({"name": n, "value": v})).collect::<Vec<_>>(),
            "relationships": e.objects.iter().map(|(id, q)| json!({"objectId": id, "qualifier": q})).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}
