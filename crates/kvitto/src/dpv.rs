//! One data subject's consent records in the W3C Data Privacy Vocabulary, following the DPV
//! guide for ISO/IEC TS 27560:2023 (<https://w3id.org/dpv/guides/consent-27560>): a JSON-LD
//! document with one `dpv:ConsentRecord` per purpose, its consent events as status nodes under
//! `dpv:hasConsentStatus`, each citing the ledger seq and event hash that prove it
//! (docs/REPORTS.md, "Consent records (ISO/IEC TS 27560)").

use std::collections::HashMap;

use kvitto_core::{EventKind, Id, LegalBasis, SubjectId};
use kvitto_projections::{AsOf, ConsentAnswer, ConsentInterval, ConsentState, ControllerIdentity, ControllerState};
use serde_json::{Map, Value, json};

use crate::read::LedgerEvent;

/// The profile the records claim (`dct:conformsTo`).
pub const PROFILE: &str = "https://w3id.org/dpv/schema/dpv-27560#record";

/// One consent event of a record: the interval it starts, and the event that decided it.
struct Step<'a> {
    interval: &'a ConsentInterval,
    e: &'a LedgerEvent,
    status: &'static str,
}

/// The JSON-LD `@context`: DPV's prefixes inline (DPV publishes no context document) and the
/// ledger's own namespace, derived from its origin, for instance IRIs and kvitto's evidence.
fn context(origin: &str) -> Value {
    json!({
        "dpv": "https://w3id.org/dpv#",
        "dct": "http://purl.org/dc/terms/",
        "loc": "https://w3id.org/dpv/loc#",
        "xsd": "http://www.w3.org/2001/XMLSchema#",
        "kvitto": format!("https://{origin}/ns#"),
        "@base": format!("https://{origin}/"),
    })
}

/// The DPV status of each interval of a purpose's consent history (the history `consent`
/// answers, so an objection to a broader purpose counts as it does there): a grant after an
/// earlier one is `RenewedConsentGiven`; a withdrawal or objection with no consent given before
/// it is `ConsentRefused` (the subject said no without ever having said yes); after one,
/// `ConsentWithdrawn`.
fn steps<'a>(history: &'a [ConsentInterval], events: &HashMap<u64, &'a LedgerEvent>) -> Vec<Step<'a>> {
    let mut given = false;
    history
        .iter()
        .filter_map(|interval| {
            let e = *events.get(&interval.seq)?;
            let status = match (interval.state, given) {
                (ConsentState::Granted, false) => "dpv:ConsentGiven",
                (ConsentState::Granted, true) => "dpv:RenewedConsentGiven",
                (ConsentState::None, _) => "dpv:ConsentUnknown",
                (_, false) => "dpv:ConsentRefused",
                (_, true) => "dpv:ConsentWithdrawn",
            };
            given |= interval.state == ConsentState::Granted;
            Some(Step { interval, e, status })
        })
        .collect()
}

/// The notice node of a record: the version the newest grant recorded; else the
/// notice in force when the record began (marked as not recorded with the consent); else a
/// node that says none was recorded.
fn notice(c: &ControllerState, controller: &Id, steps: &[Step<'_>], q: &AsOf) -> Value {
    // The notice of the newest grant, if that grant recorded one.
    let newest_grant = steps.iter().rev().find(|s| s.interval.state == ConsentState::Granted);
    let named = newest_grant.and_then(|s| s.interval.notice_version.clone());
    let text_hash =
        |v: &Id| c.notices.visible(q).rev().find(|(_, (ver, _))| ver == v).map(|(_, (_, h))| hex::encode(h.0));
    let node = |v: &Id, recorded: bool| {
        let mut n = json!({
            "@id": format!("notices/{controller}/{v}"),
            "@type": "dpv:ConsentNotice",
            "dct:identifier": v.as_str(),
            "kvitto:recordedWithConsent": recorded,
        });
        if let Some(h) = text_hash(v) {
            n["kvitto:textHash"] = Value::String(h);
        }
        n
    };
    if let Some(v) = named {
        return node(&v, true);
    }
    let first = newest_grant.or(steps.first()).map(|s| s.e.event.occurred_at);
    let in_force =
        c.notices.visible(q).rev().find(|(st, _)| first.is_some_and(|t| st.occurred <= t)).map(|(_, (v, _))| v.clone());
    match in_force {
        Some(v) => node(&v, false),
        None => json!({
            "@type": "dpv:ConsentNotice",
            "dct:identifier": "none-recorded",
            "dct:description": "no notice version was recorded with this consent, and none was published before it",
            "kvitto:recordedWithConsent": false,
        }),
    }
}

/// Builds the document from the consent answers of the subject (`Projections::consent` as of
/// `q`) and its events (for each deciding event's hash, channel and times). Only purposes on
/// the consent basis, or undeclared ones with consent given or withdrawn, become consent
/// records: an opt-out of a purpose on another basis is an objection, not a consent state.
#[allow(clippy::too_many_arguments)]
pub(crate) fn consent_records(
    origin: &str,
    controller: &Id,
    subject_ref: &str,
    subject: &SubjectId,
    c: &ControllerState,
    answers: &[ConsentAnswer],
    history: &[LedgerEvent],
    q: &AsOf,
) -> Value {
    let by_seq: HashMap<u64, &LedgerEvent> = history.iter().map(|e| (e.event.seq, e)).collect();
    let identity = ControllerIdentity::of(c, q).map(|i| i.declared);
    let identity = identity.as_ref();
    let controller_iri = format!("controllers/{controller}");
    let answers: Vec<&ConsentAnswer> = answers
        .iter()
        .filter(|a| match a.legal_basis {
            Some(LegalBasis::Consent) => !a.history.is_empty(),
            // An undeclared purpose is a consent record only when consent was given or
            // withdrawn for it; an objection alone is an objection (Art 21), not consent.
            None => a.history.iter().any(|i| matches!(i.state, ConsentState::Granted | ConsentState::Withdrawn)),
            Some(_) => false,
        })
        .collect();
    let mut entity = Map::new();
    entity.insert("@id".into(), Value::String(controller_iri.clone()));
    entity.insert("@type".into(), json!(["dpv:Organisation", "dpv:DataController"]));
    entity.insert("dpv:hasIdentifier".into(), Value::String(controller.to_string()));
    if let Some(d) = identity {
        entity.insert("dpv:hasName".into(), Value::String(d.legal_name.to_string()));
        if let Some(n) = &d.organisation_number {
            entity.insert("kvitto:organisationNumber".into(), Value::String(n.to_string()));
        }
        if let Some(a) = &d.address {
            entity.insert("kvitto:address".into(), Value::String(a.to_string()));
        }
        if let Some(x) = &d.contact {
            entity.insert("kvitto:contact".into(), Value::String(x.to_string()));
        }
    }
    let records: Vec<Value> = answers
        .into_iter()
        .map(|a| {
            let p = &a.purpose;
            let steps = steps(&a.history, &by_seq);
            let decl = c.purposes.get(p).and_then(|t| t.latest(q)).map(|(_, d)| d);
            let mut purpose = json!({
                "@id": format!("purposes/{controller}/{p}"),
                "@type": "dpv:Purpose",
                "dct:identifier": p.as_str(),
            });
            if let Some(d) = decl {
                purpose["dct:description"] = Value::String(d.description.to_string());
            }
            let mut process = json!({
                "@type": "dpv:Process",
                "dpv:hasPurpose": purpose,
                "dpv:hasLegalBasis": {"@id": "dpv:Consent"},
                "dpv:hasDataController": {"@id": controller_iri},
            });
            let mut categories: Vec<&str> = Vec::new();
            for e in history.iter().filter(|e| e.event.occurred_at <= q.at && e.event.recorded_at <= q.known_at) {
                if let EventKind::DataCollected { purpose, categories: cats, .. } = &e.event.kind
                    && purpose == p
                {
                    for cat in cats.as_slice() {
                        if !categories.contains(&cat.as_str()) {
                            categories.push(cat.as_str());
                        }
                    }
                }
            }
            if !categories.is_empty() {
                process["dpv:hasPersonalData"] = categories
                    .iter()
                    .map(|cat| json!({"@id": format!("categories/{controller}/{cat}"), "dct:identifier": cat}))
                    .collect();
            }
            let status: Vec<Value> = steps
                .iter()
                .map(|s| {
                    let ev = &s.e.event;
                    let mut n = json!({
                        "@id": format!("events/{}", ev.seq),
                        "@type": s.status,
                        "dpv:isIndicatedAtTime": ev.occurred_at.to_rfc3339(),
                        "dpv:isIndicatedBy": {"@id": "dpv:DataSubject"},
                        "kvitto:seq": ev.seq,
                        "kvitto:eventHash": s.e.hash.to_hex(),
                        "kvitto:eventType": ev.kind.name(),
                        "kvitto:recordedAt": ev.recorded_at.to_rfc3339(),
                        "kvitto:actor": ev.actor.as_str(),
                    });
                    let channel = match &ev.kind {
                        EventKind::ConsentGiven { channel, .. } | EventKind::ConsentWithdrawn { channel, .. } => {
                            channel.as_ref()
                        }
                        _ => None,
                    };
                    if let Some(ch) = channel {
                        n["dpv:hasIndicationMethod"] = Value::String(ch.to_string());
                    }
                    if let (ConsentState::Granted, Some(v)) = (s.interval.state, &s.interval.notice_version) {
                        n["dpv:hasNotice"] = json!({"@id": format!("notices/{controller}/{v}")});
                    }
                    if let Some(parent) = &s.interval.via_objection_to {
                        n["kvitto:viaObjectionTo"] = Value::String(parent.to_string());
                    }
                    n
                })
                .collect();
            let first = steps.first().map(|s| s.e.event.occurred_at.to_rfc3339()).unwrap_or_default();
            let last = steps.last().map(|s| s.e.event.occurred_at.to_rfc3339()).unwrap_or_default();
            let mut record = json!({
                "@id": format!("consent-records/{controller}/{}/{p}", subject.to_hex()),
                "@type": "dpv:ConsentRecord",
                "dct:identifier": format!("{controller}/{}/{p}", subject.to_hex()),
                "dct:conformsTo": PROFILE,
                "dct:created": first,
                "dct:modified": last,
                "dpv:hasDataSubject": {
                    "@type": "dpv:DataSubject",
                    "dct:identifier": subject_ref,
                    "kvitto:pseudonym": subject.to_hex(),
                },
                "dpv:hasDataController": {"@id": controller_iri},
                "dpv:hasProcess": [process],
                "dpv:hasNotice": notice(c, controller, &steps, q),
                "dpv:hasEntity": [Value::Object(entity.clone())],
                "dpv:hasConsentStatus": status,
                "kvitto:currentStatus": steps.last().map(|s| s.status).unwrap_or("dpv:ConsentUnknown"),
            });
            if let Some(d) = identity {
                record["dpv:hasJurisdiction"] = json!({"@id": format!("loc:{}", d.authority_country)});
                record["kvitto:supervisoryAuthority"] = Value::String(d.authority.to_string());
            }
            record
        })
        .collect();
    json!({
        "@context": context(origin),
        "kvitto:format": "kvitto-consent-dpv/1",
        "kvitto:origin": origin,
        "kvitto:asOf": q.at.to_rfc3339(),
        "kvitto:knownAt": q.known_at.to_rfc3339(),
        "@graph": records,
    })
}
