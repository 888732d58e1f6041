//! The flat log: one row per activity of a case (the job), with its start,
//! end, resource and whether clerk or a person did it.

use super::{Log, time};

pub fn flat_csv(log: &Log) -> String {
    let mut w = ::csv::Writer::from_writer(Vec::new());
    let _ = w.write_record([
        "case_id",
        "activity",
        "start",
        "end",
        "resource",
        "automated",
        "bot",
    ]);
    for e in &log.events {
        let bot = log
            .objects
            .get(&format!("job:{}", e.case))
            .and_then(|o| o.attributes.iter().find(|(n, _, _)| n == "bot"))
            .map(|(_, v, _)| v.clone())
            .unwrap_or_default();
        let _ = w.write_record([
            e.case.to_string(),
            e.activity.clone(),
            time(e.start),
            time(e.end),
            e.resource.clone(),
            if e.automated { "yes" } else { "no" }.to_string(),
            bot,
        ]);
    }
    w.into_inner()
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .unwrap_or_default()
}
