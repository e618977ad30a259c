//! A small script language for projection tests: events with chosen times, seq assigned in
//! order, recorded time increasing unless given.
#![allow(dead_code, clippy::unwrap_used, clippy::too_many_arguments)]

use kvitto_core::*;

pub fn t(s: &str) -> Timestamp {
    Timestamp::parse_rfc3339(&format!("{s}T12:00:00Z")).or_else(|_| Timestamp::parse_rfc3339(s)).unwrap()
}

pub fn id(s: &str) -> Id {
    Id::new(s).unwrap()
}

pub fn cats(c: &[&str]) -> Categories {
    Categories::new(c.iter().map(|x| id(x)).collect()).unwrap()
}

pub fn subject(n: u8) -> SubjectId {
    SubjectId([n; 16])
}

#[derive(Default)]
pub struct Script {
    pub events: Vec<Event>,
    subject_counts: std::collections::HashMap<SubjectId, u64>,
}

impl Script {
    /// Appends an event that occurred at `occurred` and was recorded at `recorded`.
    pub fn push_at(
        &mut self,
        controller: &str,
        who: Option<SubjectId>,
        occurred: Timestamp,
        recorded: Timestamp,
        kind: EventKind,
    ) -> u64 {
        let seq = self.events.len() as u64;
        let subject = who.map(|s| {
            let n = self.subject_counts.entry(s).or_default();
            let link =
                SubjectLink { subject: s, subject_seq: *n, subject_prev: (*n > 0).then_some(EventHash([1; 32])) };
            *n += 1;
            link
        });
        self.events.push(Event {
            seq,
            prev_hash: EventHash::default(),
            recorded_at: recorded,
            occurred_at: occurred,
            event_id: EventId(uuid::Uuid::from_u128(seq as u128 + 1)),
            controller: id(controller),
            actor: id("test"),
            subject,
            kind,
            payload_commitment: None,
        });
        seq
    }

    /// Appends an event recorded when it occurred (or after the previous one).
    pub fn push(&mut self, controller: &str, who: Option<SubjectId>, occurred: Timestamp, kind: EventKind) -> u64 {
        let recorded = self.events.last().map_or(occurred, |e| e.recorded_at.max(occurred));
        self.push_at(controller, who, occurred, recorded, kind)
    }

    pub fn declare(&mut self, controller: &str, purpose: &str, basis: LegalBasis, register: &str) -> u64 {
        self.push(
            controller,
            None,
            t("2020-01-01"),
            EventKind::PurposeDeclared {
                purpose: id(purpose),
                description: Text::new("d").unwrap(),
                legal_basis: basis,
                register: id(register),
                data_subjects: None,
            },
        )
    }

    pub fn processor(&mut self, controller: &str, p: &str, country: &str, mechanism: Option<TransferMechanism>) -> u64 {
        self.push(
            controller,
            None,
            t("2020-01-01"),
            EventKind::ProcessorRegistered {
                processor: id(p),
                name: Text::new(p).unwrap(),
                country: CountryCode::new(country).unwrap(),
                role: Role::Processor,
                transfer_mechanism: mechanism,
                dpa_ref: None,
            },
        )
    }

    pub fn consent(&mut self, controller: &str, s: SubjectId, purpose: &str, at: &str) -> u64 {
        self.push(
            controller,
            Some(s),
            t(at),
            EventKind::ConsentGiven { purpose: id(purpose), notice_version: Some(id("v1")), channel: None },
        )
    }

    pub fn withdraw(&mut self, controller: &str, s: SubjectId, purpose: &str, at: &str) -> u64 {
        self.push(controller, Some(s), t(at), EventKind::ConsentWithdrawn { purpose: id(purpose), channel: None })
    }

    pub fn object(&mut self, controller: &str, s: SubjectId, purpose: &str, at: &str) -> u64 {
        self.push(controller, Some(s), t(at), EventKind::ObjectionRecorded { purpose: id(purpose) })
    }

    pub fn collect(
        &mut self,
        controller: &str,
        s: SubjectId,
        register: &str,
        purpose: &str,
        basis: LegalBasis,
        source: Source,
        at: &str,
    ) -> u64 {
        self.push(
            controller,
            Some(s),
            t(at),
            EventKind::DataCollected {
                register: id(register),
                categories: cats(&["name", "contact"]),
                purpose: id(purpose),
                legal_basis: basis,
                source,
            },
        )
    }

    pub fn subject_event(&mut self, controller: &str, s: SubjectId, at: &str, kind: EventKind) -> u64 {
        self.push(controller, Some(s), t(at), kind)
    }
}

/// A retention rule as declared, with the optional bookkeeping fields.
pub struct Rule<'a> {
    pub register: &'a str,
    pub trigger: Trigger,
    pub duration: &'a str,
    pub statute: Option<&'a str>,
    pub financial_year_end: Option<&'a str>,
    pub extend_to: Option<kvitto_core::event::ExtendTo>,
}

impl<'a> Rule<'a> {
    /// A plain rule: `duration` after `trigger`.
    pub fn new(register: &'a str, trigger: Trigger, duration: &'a str) -> Self {
        Self { register, trigger, duration, statute: None, financial_year_end: None, extend_to: None }
    }

    /// Bokföringslagen 7 kap. 2 §: through the end of the seventh calendar year after the year
    /// in which the financial year (ending `fye`) ended.
    pub fn bokforingslagen(register: &'a str, fye: &'a str) -> Self {
        Self {
            register,
            trigger: Trigger::Collected,
            duration: "P7Y",
            statute: Some("Bokföringslagen (1999:1078) 7 kap. 2 §"),
            financial_year_end: Some(fye),
            extend_to: Some(kvitto_core::event::ExtendTo::CalendarYearEnd),
        }
    }

    /// Bogføringsloven § 12: five years from the end of the financial year.
    pub fn bogforingsloven(register: &'a str) -> Self {
        Self {
            register,
            trigger: Trigger::Collected,
            duration: "P5Y",
            statute: Some("Bogføringsloven § 12"),
            financial_year_end: Some("12-31"),
            extend_to: None,
        }
    }

    pub fn kind(&self) -> EventKind {
        EventKind::RetentionRuleDeclared {
            register: id(self.register),
            trigger: self.trigger,
            duration: IsoPeriod::parse(self.duration).unwrap(),
            statute: self.statute.map(|s| Text::new(s).unwrap()),
            financial_year_end: self.financial_year_end.map(|s| kvitto_core::period::MonthDay::parse(s).unwrap()),
            extend_to: self.extend_to,
        }
    }
}

impl Script {
    pub fn rule(&mut self, controller: &str, rule: Rule<'_>) -> u64 {
        self.push(controller, None, t("2020-01-01"), rule.kind())
    }

    pub fn close_record(&mut self, controller: &str, s: SubjectId, register: &str, record: &str, at: &str) -> u64 {
        self.push(controller, Some(s), t(at), EventKind::RecordClosed { register: id(register), record_id: id(record) })
    }

    pub fn end_relationship(&mut self, controller: &str, s: SubjectId, at: &str) -> u64 {
        self.push(controller, Some(s), t(at), EventKind::RelationshipEnded { reason: None })
    }

    pub fn erase(&mut self, controller: &str, s: SubjectId, register: Option<&str>, at: &str) -> u64 {
        self.push(
            controller,
            Some(s),
            t(at),
            EventKind::DataErased { register: register.map(id), reason: Text::new("Art 17").unwrap() },
        )
    }

    pub fn defer(
        &mut self,
        controller: &str,
        s: SubjectId,
        register: &str,
        statute: &str,
        until: &str,
        at: &str,
    ) -> u64 {
        self.push(
            controller,
            Some(s),
            t(at),
            EventKind::ErasureDeferred {
                register: id(register),
                statute: Text::new(statute).unwrap(),
                until: Timestamp::parse_rfc3339(until).unwrap(),
            },
        )
    }
}

/// An exact instant (`t` gives noon of a date).
pub fn at(s: &str) -> Timestamp {
    Timestamp::parse_rfc3339(s).unwrap()
}
