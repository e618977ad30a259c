//! A deterministic scenario modelled on the seed privacy policies (`shared/seeds/`): the
//! controllers Kalejdo (SE, seeds 000/001), Select Telecom (SE, 002), two KomTeknik group
//! entities (SE, 003) and Kazoom (DK, 004), with their registers, purposes and legal bases,
//! processors, retention rules, and customers with realistic life cycles.
//!
//! The same `(customers, seed)` always yields the same drafts, event ids included.

use kvitto_core::event::ExtendTo;
use kvitto_core::period::MonthDay;
use kvitto_core::{
    Categories, CountryCode, Details, Draft, EventId, EventKind, ExternalRef, Id, IsoPeriod, LegalBasis, Right, Role,
    Source, Text, TextHash, Timestamp, TransferMechanism, Trigger,
};

/// One customer's life, in the order it happened.
#[derive(Debug, Clone)]
pub struct Customer {
    /// The controller the customer contracted with.
    pub controller: Id,
    /// The controller's customer number.
    pub external_ref: String,
    /// The customer's events, oldest first.
    pub events: Vec<Draft>,
}

/// Controller declarations followed by customers.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// Purposes, processors, retention rules and notices of every controller.
    pub declarations: Vec<Draft>,
    /// Customers and their events.
    pub customers: Vec<Customer>,
}

impl Scenario {
    /// Total number of drafts.
    pub fn len(&self) -> usize {
        self.declarations.len() + self.customers.iter().map(|c| c.events.len()).sum::<usize>()
    }

    /// Whether there are no drafts.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every draft, declarations first, customers one after another.
    pub fn all_drafts(&self) -> impl Iterator<Item = &Draft> {
        self.declarations.iter().chain(self.customers.iter().flat_map(|c| c.events.iter()))
    }
}

/// SplitMix64: tiny, deterministic, good enough for test data.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        Self(seed ^ 0x6b76_6974_746f_2e64)
    }
    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
    /// True with probability `percent`/100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    /// A random element.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

struct PurposeSpec {
    purpose: &'static str,
    description: &'static str,
    basis: LegalBasis,
    register: &'static str,
    /// Categories of data subjects (Art 30(1)(c)).
    data_subjects: &'static [&'static str],
}

/// Who the controller is, as its privacy policy (the seed) states it; `None` where the policy
/// does not say.
struct IdentitySpec {
    legal_name: &'static str,
    organisation_number: Option<&'static str>,
    address: Option<&'static str>,
    contact: Option<&'static str>,
    dpo_contact: Option<&'static str>,
    authority: &'static str,
    authority_country: &'static str,
}

/// The Swedish supervisory authority. Seeds 002 and 003 name it by its name before 2021
/// (Datainspektionen); seeds 000 and 001 name none, and a Swedish establishment's authority is
/// IMY by law.
const IMY: &str = "Integritetsskyddsmyndigheten (IMY)";

struct ProcessorSpec {
    id: &'static str,
    name: &'static str,
    country: &'static str,
    role: Role,
    mechanism: Option<TransferMechanism>,
    dpa: Option<&'static str>,
}

struct RetentionSpec {
    register: &'static str,
    trigger: Trigger,
    duration: &'static str,
    statute: Option<&'static str>,
    /// The bookkeeping rules: the clock starts at the end of the financial year ("MM-DD").
    fy_end: Option<&'static str>,
    /// Kept through the end of the calendar year the duration ends in (Bokföringslagen).
    to_year_end: bool,
}

struct ControllerSpec {
    id: &'static str,
    identity: IdentitySpec,
    /// Weight in the customer mix.
    weight: u64,
    notice: &'static str,
    purposes: &'static [PurposeSpec],
    processors: &'static [ProcessorSpec],
    retention: &'static [RetentionSpec],
    /// Registers and purposes used by the life cycle.
    customer_register: &'static str,
    billing_register: &'static str,
    support_register: Option<&'static str>,
    shipping_register: Option<&'static str>,
    delivery_purpose: &'static str,
    billing_purpose: &'static str,
    support_purpose: &'static str,
    marketing_purpose: &'static str,
    consent_purpose: Option<&'static str>,
    main_processor: &'static str,
    support_processor: Option<&'static str>,
    shipping_processor: Option<&'static str>,
    bookkeeping: (&'static str, &'static str, u32),
    prefix: &'static str,
}

/// Bookkeeping under the Swedish Bokföringslagen, as Kalejdo and Select Telecom declare it.
const SE_BOOKKEEPING: PurposeSpec = PurposeSpec {
    purpose: "bookkeeping",
    description: "Räkenskapsinformation enligt bokföringslagen",
    basis: LegalBasis::LegalObligation,
    register: "bokforing",
    data_subjects: &["customers"],
};

const BOKFORINGSLAGEN: &str = "Bokföringslagen (1999:1078) 7 kap. 2 §";
const BOGFORINGSLOVEN: &str = "Bogføringsloven § 12";

const CONTROLLERS: &[ControllerSpec] = &[
    ControllerSpec {
        id: "kalejdo",
        // Seeds 000 (the registers) and 001 (the TV/Smart Home app): Kalejdo Bredband AB.
        identity: IdentitySpec {
            legal_name: "Kalejdo Bredband AB",
            organisation_number: None,
            address: None,
            contact: Some("Kalejdo Kundtjänst, 0771 19 17 00"),
            dpo_contact: Some("Dataskyddsombud Erik Dahlström (e-postadress på kalejdo.tv)"),
            authority: IMY,
            authority_country: "SE",
        },
        weight: 30,
        notice: "kalejdo-2023-05",
        purposes: &[
            PurposeSpec {
                purpose: "service-delivery",
                description: "Leverans av Öppen Stadsnäts-TV och Kalejdo Smarta Hem (Kundregister)",
                basis: LegalBasis::Contract,
                register: "kundregister",
                data_subjects: &["customers"],
            },
            PurposeSpec {
                purpose: "billing",
                description: "Fakturering som sker via Kalejdo (Faktureringsregister)",
                basis: LegalBasis::Contract,
                register: "faktureringsregister",
                data_subjects: &["customers"],
            },
            PurposeSpec {
                purpose: "equipment-shipping",
                description: "Sändningar av utrustning (Sändningslistor)",
                basis: LegalBasis::Contract,
                register: "sandningslista",
                data_subjects: &["customers"],
            },
            PurposeSpec {
                purpose: "customer-support",
                description: "Kundtjänstärenden (Ärendelistor)",
                basis: LegalBasis::Contract,
                register: "arendelista",
                data_subjects: &["customers"],
            },
            PurposeSpec {
                purpose: "marketing",
                description: "Marknadsföring med direkt koppling till förmedlade Betal-TV-tjänster; kunden kan begära att uppgifterna inte används för marknadsföring",
                basis: LegalBasis::LegitimateInterests,
                register: "kundregister",
                data_subjects: &["customers"],
            },
            SE_BOOKKEEPING,
            // Seed 001: the TV box and the Kalejdo Smarta Hem app.
            PurposeSpec {
                purpose: "app-login",
                description: "Säker inloggning och användning av tv-boxen, appen Kalejdo Smarta Hem och tillhörande funktioner",
                basis: LegalBasis::Contract,
                register: "appdatabas",
                data_subjects: &["app-users"],
            },
            PurposeSpec {
                purpose: "app-communication",
                description: "Frivilligt lämnade uppgifter, används endast för kommunikation om Öppen Stadsnäts-TV och Kalejdo Smarta Hem",
                basis: LegalBasis::Consent,
                register: "appdatabas",
                data_subjects: &["app-users"],
            },
        ],
        processors: &[
            ProcessorSpec {
                id: "app-cloud",
                // Seed 001: "fysiskt lagrad i en molntjänst" — which one, and where, is not stated.
                name: "Molntjänst där appens databas lagras (leverantör och land anges inte)",
                country: "ZZ",
                role: Role::Processor,
                mechanism: None,
                dpa: Some("Avtal om hantering av personuppgifter"),
            },
            ProcessorSpec {
                id: "indentive",
                name: "Indentive AB (556840-2076), lagring av personuppgifter",
                country: "SE",
                role: Role::SubProcessor,
                mechanism: None,
                dpa: Some("Underbiträdesavtal Indentive 2018"),
            },
            ProcessorSpec {
                id: "kalbynet",
                name: "Kalbynet IT-Konsult AB (556534-7886), lagring av ärenden, webbdata",
                country: "SE",
                role: Role::SubProcessor,
                mechanism: None,
                dpa: Some("Underbiträdesavtal Kalbynet 2018"),
            },
            ProcessorSpec {
                id: "freshworks",
                // Seed 000: London address, "Region för Behandling av Personuppgift: EU".
                name: "Freshworks, 54 Fenchurch Street, London (Freshdesk ärendehantering; behandling i EU)",
                country: "EU",
                role: Role::SubProcessor,
                mechanism: None,
                dpa: Some("Freshworks DPA"),
            },
            ProcessorSpec {
                id: "postnord",
                name: "Logistikpartner för utrustning",
                country: "SE",
                role: Role::Processor,
                mechanism: None,
                dpa: None,
            },
        ],
        retention: &[
            RetentionSpec {
                register: "sandningslista",
                trigger: Trigger::RecordClosed,
                duration: "P12M",
                statute: None,
                fy_end: None,
                to_year_end: false,
            },
            RetentionSpec {
                register: "arendelista",
                trigger: Trigger::RecordClosed,
                duration: "P12M",
                statute: None,
                fy_end: None,
                to_year_end: false,
            },
            RetentionSpec {
                register: "kundregister",
                trigger: Trigger::RelationshipEnded,
                duration: "P0D",
                statute: None,
                fy_end: None,
                to_year_end: false,
            },
            RetentionSpec {
                register: "faktureringsregister",
                trigger: Trigger::RelationshipEnded,
                duration: "P0D",
                statute: None,
                fy_end: None,
                to_year_end: false,
            },
            RetentionSpec {
                register: "bokforing",
                trigger: Trigger::Collected,
                duration: "P7Y",
                statute: Some(BOKFORINGSLAGEN),
                fy_end: Some("12-31"),
                to_year_end: true,
            },
        ],
        customer_register: "kundregister",
        billing_register: "faktureringsregister",
        support_register: Some("arendelista"),
        shipping_register: Some("sandningslista"),
        delivery_purpose: "service-delivery",
        billing_purpose: "billing",
        support_purpose: "customer-support",
        marketing_purpose: "marketing",
        consent_purpose: None,
        main_processor: "indentive",
        support_processor: Some("freshworks"),
        shipping_processor: Some("postnord"),
        bookkeeping: ("bokforing", BOKFORINGSLAGEN, 7),
        prefix: "KAL",
    },
    ControllerSpec {
        id: "select-telecom",
        identity: IdentitySpec {
            legal_name: "Select Telecom AB",
            organisation_number: Some("559199-3976"),
            address: Some("Smedjegatan 22, 352 46 Växjö"),
            contact: Some("info@selecttelecom.se"),
            dpo_contact: None,
            authority: IMY,
            authority_country: "SE",
        },
        weight: 20,
        notice: "select-2021-10",
        purposes: &[
            PurposeSpec {
                purpose: "service-delivery",
                description: "Fullgöra avtal för leverans av tjänster och produkter (Kunddata)",
                basis: LegalBasis::Contract,
                register: "kunddata",
                data_subjects: &["customers"],
            },
            PurposeSpec {
                purpose: "traffic-billing",
                description: "Förmedla elektroniska meddelanden och fakturera användningen (Trafikdata)",
                basis: LegalBasis::Contract,
                register: "trafikdata",
                data_subjects: &["customers"],
            },
            PurposeSpec {
                purpose: "service-information",
                description: "Tillhandahålla serviceinformation och uppdateringar",
                basis: LegalBasis::LegitimateInterests,
                register: "kunddata",
                data_subjects: &["customers"],
            },
            PurposeSpec {
                purpose: "marketing",
                description: "Marknadsföring till befintliga kunder",
                basis: LegalBasis::LegitimateInterests,
                register: "kunddata",
                data_subjects: &["customers"],
            },
            PurposeSpec {
                purpose: "marketing-profiling",
                description: "Profilering för marknadsföring; upphör vid invändning mot marknadsföring",
                basis: LegalBasis::LegitimateInterests,
                register: "kunddata",
                data_subjects: &["customers"],
            },
            PurposeSpec {
                purpose: "web-statistics",
                description: "Cookies för statistik över hur webbplatsen används",
                basis: LegalBasis::Consent,
                register: "webbstatistik",
                data_subjects: &["website-visitors"],
            },
            SE_BOOKKEEPING,
        ],
        processors: &[
            // Seed 002 names no processor and no country; it says each processor is bound by
            // an agreement ("Databehandlingsavtal"). The Office 365 integration is the
            // customer's own account, read by the app and shared with no one: no recipient.
            ProcessorSpec {
                id: "databehandlare",
                name: "Databehandlare som behandlar personuppgifter på uppdrag av Select Telecom AB (namn och land anges inte)",
                country: "ZZ",
                role: Role::Processor,
                mechanism: None,
                dpa: Some("Databehandlingsavtal"),
            },
        ],
        retention: &[
            RetentionSpec {
                register: "kunddata",
                trigger: Trigger::RelationshipEnded,
                duration: "P1Y",
                statute: None,
                fy_end: None,
                to_year_end: false,
            },
            RetentionSpec {
                register: "trafikdata",
                trigger: Trigger::Collected,
                duration: "P6M",
                statute: Some("Lag (2022:482) om elektronisk kommunikation"),
                fy_end: None,
                to_year_end: false,
            },
            RetentionSpec {
                register: "bokforing",
                trigger: Trigger::Collected,
                duration: "P7Y",
                statute: Some(BOKFORINGSLAGEN),
                fy_end: Some("12-31"),
                to_year_end: true,
            },
        ],
        customer_register: "kunddata",
        billing_register: "trafikdata",
        support_register: None,
        shipping_register: None,
        delivery_purpose: "service-delivery",
        billing_purpose: "traffic-billing",
        support_purpose: "service-information",
        marketing_purpose: "marketing",
        consent_purpose: Some("web-statistics"),
        main_processor: "databehandlare",
        support_processor: None,
        shipping_processor: None,
        bookkeeping: ("bokforing", BOKFORINGSLAGEN, 7),
        prefix: "SEL",
    },
    ControllerSpec { id: "komteknik-bredband", identity: KOMTEKNIK_IDENTITY, weight: 15, prefix: "KTB", ..KOMTEKNIK },
    ControllerSpec { id: "komteknik-el", identity: KOMTEKNIK_IDENTITY, weight: 10, prefix: "KTE", ..KOMTEKNIK },
    ControllerSpec {
        id: "kazoom",
        identity: IdentitySpec {
            legal_name: "Kazoom A/S",
            organisation_number: Some("CVR 40700218"),
            address: None,
            contact: Some("kundeservice@kazoom.dk"),
            dpo_contact: None,
            authority: "Datatilsynet",
            authority_country: "DK",
        },
        weight: 25,
        notice: "kazoom-2022-01-08",
        purposes: &[
            PurposeSpec {
                purpose: "contract-delivery",
                description: "Opfyldelse af aftalen og levering af de aftalte ydelser",
                basis: LegalBasis::Contract,
                register: "kunderegister",
                data_subjects: &["customers"],
            },
            PurposeSpec {
                purpose: "operations-info",
                description: "Driftsinformation og servicemeddelelser om abonnementet (kan frameldes)",
                // Item f serves the contract (items d, f); item g lets the customer opt out,
                // which DECISIONS.md rule 6 honours on this basis too.
                basis: LegalBasis::Contract,
                register: "kunderegister",
                data_subjects: &["customers"],
            },
            PurposeSpec {
                purpose: "product-news",
                description: "Nyheder om Kazooms produkter",
                basis: LegalBasis::Consent,
                register: "kunderegister",
                data_subjects: &["customers"],
            },
            PurposeSpec {
                purpose: "market-research",
                description: "Alder og køn til produkt- og markedsforståelse",
                basis: LegalBasis::Consent,
                register: "analyse",
                data_subjects: &["customers"],
            },
            PurposeSpec {
                purpose: "ad-suppression",
                description: "Deling med tredjepart så eksisterende kunder ikke eksponeres for digital markedsføring",
                basis: LegalBasis::LegitimateInterests,
                register: "kunderegister",
                data_subjects: &["customers"],
            },
            PurposeSpec {
                purpose: "bookkeeping",
                description: "Regnskabsmateriale efter bogføringsloven",
                basis: LegalBasis::LegalObligation,
                register: "bogforing",
                data_subjects: &["customers"],
            },
        ],
        processors: &[
            // Seed 004 (item o, p) names the kinds of recipients but neither who they are, nor
            // their country, nor a processing agreement: country not stated, no DPA recorded.
            ProcessorSpec {
                id: "network-owner",
                name: "Netværksejer (bestilling af leverance af et engrosprodukt)",
                country: "ZZ",
                role: Role::Recipient,
                mechanism: None,
                dpa: None,
            },
            ProcessorSpec {
                id: "logistics-partner",
                name: "Logistikpartner (udsendelse af udstyr)",
                country: "ZZ",
                role: Role::Processor,
                mechanism: None,
                dpa: None,
            },
            ProcessorSpec {
                id: "sms-partner",
                name: "Servicepartner til udsendelse af kommunikation (SMS)",
                country: "ZZ",
                role: Role::Processor,
                mechanism: None,
                dpa: None,
            },
            ProcessorSpec {
                id: "ad-platform",
                name: "Tredjepart for digital markedsføring (undgå eksponering af eksisterende kunder)",
                country: "ZZ",
                role: Role::Recipient,
                mechanism: None,
                dpa: None,
            },
        ],
        retention: &[
            RetentionSpec {
                register: "kunderegister",
                trigger: Trigger::RelationshipEnded,
                duration: "P0D",
                statute: None,
                fy_end: None,
                to_year_end: false,
            },
            RetentionSpec {
                register: "analyse",
                trigger: Trigger::RelationshipEnded,
                duration: "P0D",
                statute: None,
                fy_end: None,
                to_year_end: false,
            },
            RetentionSpec {
                register: "bogforing",
                trigger: Trigger::Collected,
                duration: "P5Y",
                statute: Some(BOGFORINGSLOVEN),
                fy_end: Some("12-31"),
                to_year_end: false,
            },
        ],
        customer_register: "kunderegister",
        billing_register: "bogforing",
        support_register: Some("kunderegister"),
        shipping_register: Some("kunderegister"),
        delivery_purpose: "contract-delivery",
        billing_purpose: "bookkeeping",
        support_purpose: "operations-info",
        marketing_purpose: "ad-suppression",
        consent_purpose: Some("product-news"),
        main_processor: "network-owner",
        support_processor: Some("sms-partner"),
        shipping_processor: Some("logistics-partner"),
        bookkeeping: ("bogforing", BOGFORINGSLOVEN, 5),
        prefix: "KZ",
    },
];

impl ControllerSpec {
    /// The basis the controller declares for `purpose` (collections claim the declared one).
    fn basis_of(&self, purpose: &str) -> LegalBasis {
        self.purposes.iter().find(|p| p.purpose == purpose).map_or(LegalBasis::Contract, |p| p.basis)
    }
}

/// Seed 003 names no legal entity, address or contact beyond "the company within KomTeknik
/// Gruppen you signed with", to which requests go in writing. Both demo entities declare just
/// that; their names are not invented.
const KOMTEKNIK_IDENTITY: IdentitySpec = IdentitySpec {
    legal_name: "KomTeknik Gruppen (det juridiska bolag inom gruppen som kunden tecknat avtal med)",
    organisation_number: None,
    address: None,
    contact: None,
    dpo_contact: None,
    authority: IMY,
    authority_country: "SE",
};

/// The KomTeknik group (seed 003): each legal entity is its own controller with the same policy.
const KOMTEKNIK: ControllerSpec = ControllerSpec {
    id: "komteknik",
    identity: KOMTEKNIK_IDENTITY,
    weight: 15,
    notice: "komteknik-2024-01",
    purposes: KOMTEKNIK_PURPOSES,
    processors: KOMTEKNIK_PROCESSORS,
    retention: KOMTEKNIK_RETENTION,
    customer_register: "kundregister",
    billing_register: "kundregister",
    support_register: Some("kundregister"),
    shipping_register: None,
    delivery_purpose: "delivery",
    billing_purpose: "delivery",
    support_purpose: "product-communication",
    marketing_purpose: "marketing",
    consent_purpose: Some("newsletter"),
    main_processor: "komteknik-gruppen",
    support_processor: Some("underleverantor-drift"),
    shipping_processor: None,
    bookkeeping: ("bokforing", BOKFORINGSLAGEN, 7),
    prefix: "KTB",
};

const KOMTEKNIK_PURPOSES: &[PurposeSpec] = &[
    PurposeSpec {
        purpose: "delivery",
        description: "Leverera, fakturera och supportera beställda produkter och tjänster",
        basis: LegalBasis::Contract,
        register: "kundregister",
        data_subjects: &["customers"],
    },
    PurposeSpec {
        purpose: "product-communication",
        description: "Kommunikation kring produkt och tjänst (offert, information, feedback)",
        basis: LegalBasis::LegitimateInterests,
        register: "kundregister",
        data_subjects: &["customers"],
    },
    PurposeSpec {
        purpose: "marketing",
        description: "Marknadsföring via e-post, sms, brev och telefon",
        basis: LegalBasis::LegitimateInterests,
        register: "kundregister",
        data_subjects: &["customers"],
    },
    PurposeSpec {
        purpose: "newsletter",
        description: "Nyhetsbrev som kunden skrivit upp sig för",
        basis: LegalBasis::Consent,
        register: "kundregister",
        data_subjects: &["customers"],
    },
    PurposeSpec {
        purpose: "bookkeeping",
        description: "Underlag som bokföringslagen kräver",
        basis: LegalBasis::LegalObligation,
        register: "bokforing",
        data_subjects: &["customers"],
    },
];

/// Seed 003 names group companies and sub-contractors, neither their countries nor an
/// agreement by name.
const KOMTEKNIK_PROCESSORS: &[ProcessorSpec] = &[
    ProcessorSpec {
        id: "komteknik-gruppen",
        name: "Bolag inom KomTeknik Gruppen",
        country: "ZZ",
        role: Role::Recipient,
        mechanism: None,
        dpa: None,
    },
    ProcessorSpec {
        id: "underleverantor-drift",
        name: "Underleverantör som behandlar data för vår räkning",
        country: "ZZ",
        role: Role::Processor,
        mechanism: None,
        dpa: None,
    },
];

const KOMTEKNIK_RETENTION: &[RetentionSpec] = &[
    RetentionSpec {
        register: "kundregister",
        trigger: Trigger::RelationshipEnded,
        duration: "P1Y",
        statute: None,
        fy_end: None,
        to_year_end: false,
    },
    RetentionSpec {
        register: "bokforing",
        trigger: Trigger::Collected,
        duration: "P7Y",
        statute: Some(BOKFORINGSLAGEN),
        fy_end: Some("12-31"),
        to_year_end: true,
    },
];

const FIRST_NAMES: &[&str] = &[
    "Åsa", "Erik", "Karin", "Lars", "Maja", "Oskar", "Signe", "Mads", "Freja", "Søren", "Ingrid", "Nils", "Astrid",
    "Jonas", "Mette", "Björn",
];
const LAST_NAMES: &[&str] = &[
    "Öberg",
    "Lindqvist",
    "Nielsen",
    "Andersson",
    "Jensen",
    "Dahl",
    "Sjöberg",
    "Hansen",
    "Karlsson",
    "Mortensen",
    "Berg",
    "Holm",
];
const STREETS: &[&str] =
    &["Storgatan", "Teknikringen", "Södra Portgatan", "Vestergade", "Nørregade", "Kyrkogatan", "Strandvejen"];
const TICKETS: &[&str] = &[
    "Tv-boxen startar inte",
    "Appen loggar ut hela tiden",
    "Fel på fakturan",
    "Bredbandet är långsamt",
    "Router blinkar rött",
    "Flytt av abonnemang",
    "Internet virker ikke",
    "Spørgsmål om regning",
];
const CHANNELS: &[&str] = &["web", "app", "phone", "store"];

fn id(s: &str) -> Id {
    Id::new(s).unwrap_or_else(|e| unreachable!("scenario id {s:?}: {e}"))
}

fn text(s: &str) -> Text {
    Text::new(s).unwrap_or_else(|e| unreachable!("scenario text: {e}"))
}

fn cats(items: &[&str]) -> Categories {
    Categories::new(items.iter().map(|c| id(c)).collect()).unwrap_or_else(|e| unreachable!("scenario categories: {e}"))
}

fn details(v: serde_json::Value) -> Option<Details> {
    v.as_object().and_then(|o| Details::from_object(o).ok())
}

const DAY: i64 = 86_400_000_000;
/// 2024-01-01T00:00:00Z.
const EPOCH: i64 = 1_704_067_200_000_000;
/// The controllers declare themselves two years before the first customer (2022-01-01), so a
/// customer's life moved back to end by [`END`] still starts after the declarations.
const DECLARED: i64 = EPOCH - 730 * DAY;
/// 2026-11-01T00:00:00Z: no generated event occurs later. A customer whose life would run past
/// it is moved back as a whole, so the demo's ledger is the same whenever it is built (nothing
/// in it is still in the future) and every request in it is closed.
pub const END: i64 = 1_793_491_200_000_000;

struct Builder<'a> {
    rng: &'a mut Rng,
    controller: Id,
    subject: Option<ExternalRef>,
    t: i64,
    out: Vec<Draft>,
}

impl Builder<'_> {
    fn push(&mut self, actor: &str, kind: EventKind, details: Option<Details>) {
        let occurred = Timestamp::from_micros(self.t).unwrap_or(Timestamp::MIN);
        let mut rand10 = [0u8; 10];
        rand10[..8].copy_from_slice(&self.rng.next_u64().to_be_bytes());
        rand10[8..].copy_from_slice(&self.rng.next_u64().to_be_bytes()[..2]);
        let ms = (occurred.as_micros() / 1000) as u64;
        let event_id = EventId(uuid::Builder::from_unix_timestamp_millis(ms, &rand10).into_uuid());
        self.out.push(Draft {
            controller: self.controller.clone(),
            subject: self.subject.clone(),
            occurred_at: Some(occurred),
            event_id: Some(event_id),
            actor: Some(id(actor)),
            details,
            kind,
        });
    }

    fn later(&mut self, max_days: u64) {
        self.t += (1 + self.rng.below(max_days)) as i64 * DAY + self.rng.below(8 * 3600) as i64 * 1_000_000;
    }
}

fn declarations(spec: &ControllerSpec, rng: &mut Rng) -> Vec<Draft> {
    let mut b = Builder { rng, controller: id(spec.id), subject: None, t: DECLARED, out: Vec::new() };
    let who = &spec.identity;
    b.push(
        "dpo",
        EventKind::ControllerDeclared {
            legal_name: text(who.legal_name),
            organisation_number: who.organisation_number.map(text),
            address: who.address.map(text),
            contact: who.contact.map(text),
            dpo_contact: who.dpo_contact.map(text),
            authority: text(who.authority),
            authority_country: CountryCode::new(who.authority_country).unwrap_or_else(|e| unreachable!("{e}")),
        },
        None,
    );
    let notice_hash = TextHash(*blake3::hash(spec.notice.as_bytes()).as_bytes());
    b.push("dpo", EventKind::NoticePublished { version: id(spec.notice), text_hash: notice_hash }, None);
    for p in spec.purposes {
        b.push(
            "dpo",
            EventKind::PurposeDeclared {
                purpose: id(p.purpose),
                description: text(p.description),
                legal_basis: p.basis,
                register: id(p.register),
                data_subjects: (!p.data_subjects.is_empty()).then(|| cats(p.data_subjects)),
            },
            None,
        );
    }
    for p in spec.processors {
        b.push(
            "dpo",
            EventKind::ProcessorRegistered {
                processor: id(p.id),
                name: text(p.name),
                country: CountryCode::new(p.country).unwrap_or_else(|e| unreachable!("{e}")),
                role: p.role,
                transfer_mechanism: p.mechanism,
                dpa_ref: p.dpa.map(text),
            },
            None,
        );
    }
    for r in spec.retention {
        b.push(
            "dpo",
            EventKind::RetentionRuleDeclared {
                register: id(r.register),
                trigger: r.trigger,
                duration: IsoPeriod::parse(r.duration).unwrap_or_else(|e| unreachable!("{e}")),
                statute: r.statute.map(text),
                financial_year_end: r.fy_end.map(|f| MonthDay::parse(f).unwrap_or_else(|e| unreachable!("{e}"))),
                extend_to: r.to_year_end.then_some(ExtendTo::CalendarYearEnd),
            },
            None,
        );
    }
    b.out
}

fn customer(spec: &ControllerSpec, n: usize, rng: &mut Rng) -> Customer {
    let external_ref = format!("{}-{:06}", spec.prefix, 100_000 + n);
    let subject = ExternalRef::new(external_ref.clone()).unwrap_or_else(|e| unreachable!("{e}"));
    let start = EPOCH + rng.below(880) as i64 * DAY + rng.below(86_400) as i64 * 1_000_000;
    let mut b = Builder { rng, controller: id(spec.id), subject: Some(subject), t: start, out: Vec::new() };
    let first = *b.rng.pick(FIRST_NAMES);
    let last = *b.rng.pick(LAST_NAMES);
    let street = *b.rng.pick(STREETS);
    let house = 1 + b.rng.below(120);
    let email = format!("{}.{}{}@example.org", first.to_lowercase(), last.to_lowercase(), b.rng.below(100));
    let phone = format!("07{:08}", b.rng.below(100_000_000));

    b.push(
        "crm",
        EventKind::DataCollected {
            register: id(spec.customer_register),
            categories: cats(&["name", "address", "contact"]),
            purpose: id(spec.delivery_purpose),
            legal_basis: LegalBasis::Contract,
            source: Source::Subject,
        },
        details(serde_json::json!({"name": format!("{first} {last}"), "email": email, "phone": phone, "address": format!("{street} {house}")})),
    );
    if b.rng.chance(3) {
        // Withdrawal within the cooling-off period, before anything was billed: nothing is
        // kept for bookkeeping, so the whole customer is erased on request.
        b.later(3);
        b.push("crm", EventKind::RelationshipEnded { reason: Some(text("Ångerrätt utnyttjad")) }, None);
        let req = format!("req-{n}-trial");
        b.push("dpo", EventKind::RightsRequestReceived { request_id: id(&req), right: Right::Erasure }, None);
        b.later(2);
        b.push(
            "dpo",
            EventKind::DataErased { register: None, reason: text("Radering av hela kunden på begäran (Art 17)") },
            None,
        );
        b.push("dpo", EventKind::RightsRequestFulfilled { request_id: id(&req) }, None);
        return finish(spec, external_ref, b.out);
    }
    b.later(2);
    b.push(
        "billing",
        EventKind::DataCollected {
            register: id(spec.billing_register),
            categories: cats(&["name", "address", "payment"]),
            purpose: id(spec.billing_purpose),
            legal_basis: spec.basis_of(spec.billing_purpose),
            source: Source::Controller,
        },
        None,
    );
    b.push(
        "crm",
        EventKind::DataShared {
            processor: id(spec.main_processor),
            categories: cats(&["name", "address"]),
            purpose: id(spec.delivery_purpose),
        },
        None,
    );
    // Who received the address for delivery: a rectification is passed on to each (Art 19).
    let mut got_address = vec![spec.main_processor];
    if spec.id == "kalejdo" && b.rng.chance(40) {
        app_user(&mut b, n, &email, &phone);
    }
    let consented = spec.consent_purpose.is_some() && b.rng.chance(55);
    if let (true, Some(p)) = (consented, spec.consent_purpose) {
        b.later(20);
        let channel = *b.rng.pick(CHANNELS);
        b.push(
            "web",
            EventKind::ConsentGiven {
                purpose: id(p),
                notice_version: Some(id(spec.notice)),
                channel: Some(id(channel)),
            },
            None,
        );
    }
    if spec.id == "kazoom" && b.rng.chance(20) {
        b.later(30);
        b.push(
            "web",
            EventKind::ConsentGiven {
                purpose: id("market-research"),
                notice_version: Some(id(spec.notice)),
                channel: Some(id("web")),
            },
            None,
        );
        let profile =
            details(serde_json::json!({"age": 25 + b.rng.below(50), "gender": *b.rng.pick(&["f", "m", "x"])}));
        b.push(
            "web",
            EventKind::DataCollected {
                register: id("analyse"),
                categories: cats(&["age", "gender"]),
                purpose: id("market-research"),
                legal_basis: LegalBasis::Consent,
                source: Source::Subject,
            },
            profile,
        );
    }
    if let (Some(reg), Some(proc_)) = (spec.shipping_register, spec.shipping_processor)
        && b.rng.chance(60)
    {
        b.later(5);
        let record = format!("ship-{}", b.rng.below(1_000_000));
        got_address.push(proc_);
        b.push(
            "webshop",
            EventKind::DataShared {
                processor: id(proc_),
                categories: cats(&["name", "address"]),
                purpose: id(spec.delivery_purpose),
            },
            None,
        );
        b.later(4);
        b.push("webshop", EventKind::RecordClosed { register: id(reg), record_id: id(&record) }, None);
    }
    if spec.id == "select-telecom" {
        b.later(30);
        b.push(
            "network",
            EventKind::DataCollected {
                register: id("trafikdata"),
                categories: cats(&["traffic"]),
                purpose: id("traffic-billing"),
                legal_basis: LegalBasis::Contract,
                source: Source::Controller,
            },
            None,
        );
    }
    if let Some(reg) = spec.support_register {
        for _ in 0..b.rng.below(4) {
            b.later(90);
            let ticket = format!("ticket-{}", b.rng.below(10_000_000));
            let what = *b.rng.pick(TICKETS);
            b.push(
                "support-desk",
                EventKind::DataCollected {
                    register: id(reg),
                    categories: cats(&["contact", "ticket"]),
                    purpose: id(spec.support_purpose),
                    legal_basis: spec.basis_of(spec.support_purpose),
                    source: Source::Subject,
                },
                details(serde_json::json!({"ticket": ticket, "text": what})),
            );
            if let Some(p) = spec.support_processor {
                b.push(
                    "support-desk",
                    EventKind::DataShared {
                        processor: id(p),
                        categories: cats(&["contact", "ticket"]),
                        purpose: id(spec.support_purpose),
                    },
                    None,
                );
            }
            b.later(10);
            b.push("support-desk", EventKind::RecordClosed { register: id(reg), record_id: id(&ticket) }, None);
        }
    }
    if consented && b.rng.chance(25) {
        b.later(200);
        let channel = *b.rng.pick(CHANNELS);
        b.push(
            "web",
            EventKind::ConsentWithdrawn {
                purpose: id(spec.consent_purpose.unwrap_or("marketing")),
                channel: Some(id(channel)),
            },
            None,
        );
    }
    if b.rng.chance(10) {
        b.later(120);
        b.push("crm", EventKind::ObjectionRecorded { purpose: id(spec.marketing_purpose) }, None);
        if spec.id == "select-telecom" {
            // Seed 002: a marketing opt-out also ends profiling for marketing.
            b.push("crm", EventKind::ObjectionRecorded { purpose: id("marketing-profiling") }, None);
        }
    }
    let mut request = 0;
    let mut next_request = || {
        request += 1;
        id(&format!("req-{n}-{request}"))
    };
    if b.rng.chance(8) {
        b.later(60);
        let req = next_request();
        b.push("dpo", EventKind::RightsRequestReceived { request_id: req.clone(), right: Right::Access }, None);
        b.later(20);
        b.push("dpo", EventKind::RightsRequestFulfilled { request_id: req }, None);
    }
    if b.rng.chance(3) {
        b.later(60);
        let req = next_request();
        b.push("dpo", EventKind::RightsRequestReceived { request_id: req.clone(), right: Right::Rectification }, None);
        b.later(5);
        let corrected =
            details(serde_json::json!({"address": format!("{} {}", b.rng.pick(STREETS), 1 + b.rng.below(120))}));
        b.push(
            "crm",
            EventKind::DataRectified { register: id(spec.customer_register), categories: cats(&["address"]) },
            corrected,
        );
        for p in &got_address {
            b.push(
                "crm",
                EventKind::DataShared {
                    processor: id(p),
                    categories: cats(&["address"]),
                    purpose: id(spec.delivery_purpose),
                },
                None,
            );
        }
        b.push("dpo", EventKind::RightsRequestFulfilled { request_id: req }, None);
    }
    if b.rng.chance(3) {
        b.later(60);
        b.push(
            "dpo",
            EventKind::ProcessingRestricted { reason: text("Kunden bestrider uppgifternas riktighet (Art 18.1 a)") },
            None,
        );
        b.later(14);
        b.push("dpo", EventKind::RestrictionLifted { reason: text("Uppgifterna kontrollerade och rättade") }, None);
    }
    if b.rng.chance(2) {
        b.later(60);
        let req = next_request();
        b.push("dpo", EventKind::RightsRequestReceived { request_id: req.clone(), right: Right::Portability }, None);
        b.later(25);
        b.push(
            "dpo",
            EventKind::RightsRequestExtended {
                request_id: req.clone(),
                reason: text("Komplex begäran; förlängd enligt Art 12.3"),
            },
            None,
        );
        b.later(30);
        b.push("dpo", EventKind::RightsRequestFulfilled { request_id: req }, None);
    }
    if b.rng.chance(15) {
        b.later(300);
        b.push("crm", EventKind::RelationshipEnded { reason: Some(text("Abonnemanget sagt upp")) }, None);
        if b.rng.chance(40) {
            b.later(10);
            let req = next_request();
            b.push("dpo", EventKind::RightsRequestReceived { request_id: req.clone(), right: Right::Erasure }, None);
            let (reg, statute, years) = spec.bookkeeping;
            let until = Timestamp::from_micros(b.t + years as i64 * 365 * DAY + 2 * DAY).unwrap_or(Timestamp::MAX);
            b.later(3);
            if b.rng.chance(25) {
                b.push(
                    "legal",
                    EventKind::LegalHoldPlaced {
                        hold_id: id(&format!("hold-{n}")),
                        reason: text("Pågående tvist om faktura"),
                    },
                    None,
                );
                b.push(
                    "dpo",
                    EventKind::RightsRequestExtended {
                        request_id: req.clone(),
                        reason: text("Rättslig tvist pågår; förlängd enligt Art 12.3"),
                    },
                    None,
                );
                if b.rng.chance(40) {
                    // The dispute goes on: the hold stays, and erasure must wait (the ledger
                    // would refuse it); the request is answered with the reason.
                    b.later(5);
                    b.push(
                        "dpo",
                        EventKind::RightsRequestRejected {
                            request_id: req,
                            reason: text("Rättslig tvist pågår: uppgifterna omfattas av ett bevarandebeslut"),
                        },
                        None,
                    );
                    // Settled later: the hold is released and the retention rules take over.
                    b.later(200);
                    b.push("legal", EventKind::LegalHoldReleased { hold_id: id(&format!("hold-{n}")) }, None);
                    return finish(spec, external_ref, b.out);
                }
                b.later(60);
                b.push("legal", EventKind::LegalHoldReleased { hold_id: id(&format!("hold-{n}")) }, None);
            }
            b.push("dpo", EventKind::ErasureDeferred { register: id(reg), statute: text(statute), until }, None);
            b.push(
                "dpo",
                EventKind::DataErased {
                    register: Some(id(spec.customer_register)),
                    reason: text("Radering på kundens begäran (Art 17)"),
                },
                None,
            );
            b.push("dpo", EventKind::RightsRequestFulfilled { request_id: req }, None);
        }
    } else if b.rng.chance(2) {
        b.later(30);
        let req = next_request();
        b.push("dpo", EventKind::RightsRequestReceived { request_id: req.clone(), right: Right::Erasure }, None);
        b.later(10);
        b.push(
            "dpo",
            EventKind::RightsRequestRejected {
                request_id: req,
                reason: text("Uppgifterna behövs för att fullgöra avtalet"),
            },
            None,
        );
    }
    finish(spec, external_ref, b.out)
}

/// A customer's life, moved back as a whole when it would run past [`END`].
fn finish(spec: &ControllerSpec, external_ref: String, mut events: Vec<Draft>) -> Customer {
    let last = events.iter().filter_map(|d| d.occurred_at).map(|t| t.as_micros()).max().unwrap_or(0);
    let back = last - END;
    if back > 0 {
        let shift = |t: Timestamp| Timestamp::from_micros(t.as_micros() - back).unwrap_or(t);
        for d in &mut events {
            d.occurred_at = d.occurred_at.map(shift);
            if let EventKind::ErasureDeferred { until, .. } = &mut d.kind {
                *until = shift(*until);
            }
        }
    }
    Customer { controller: id(spec.id), external_ref, events }
}

/// Seed 001: a Kalejdo customer who uses the TV box or the Smarta Hem app — a login account;
/// perhaps data given voluntarily (with consent, for communication about the services only);
/// both stored in a cloud service whose country the policy does not state; corrected or
/// erased on request.
fn app_user(b: &mut Builder<'_>, n: usize, email: &str, phone: &str) {
    b.later(10);
    b.push(
        "app",
        EventKind::DataCollected {
            register: id("appdatabas"),
            categories: cats(&["login-account"]),
            purpose: id("app-login"),
            legal_basis: LegalBasis::Contract,
            source: Source::Subject,
        },
        details(serde_json::json!({"username": email})),
    );
    b.push(
        "app",
        EventKind::DataShared {
            processor: id("app-cloud"),
            categories: cats(&["login-account"]),
            purpose: id("app-login"),
        },
        None,
    );
    if !b.rng.chance(35) {
        return;
    }
    b.later(30);
    b.push(
        "app",
        EventKind::ConsentGiven {
            purpose: id("app-communication"),
            notice_version: Some(id("kalejdo-2023-05")),
            channel: Some(id("app")),
        },
        None,
    );
    b.push(
        "app",
        EventKind::DataCollected {
            register: id("appdatabas"),
            categories: cats(&["contact"]),
            purpose: id("app-communication"),
            legal_basis: LegalBasis::Consent,
            source: Source::Subject,
        },
        details(serde_json::json!({"phone": phone})),
    );
    b.push(
        "app",
        EventKind::DataShared {
            processor: id("app-cloud"),
            categories: cats(&["contact"]),
            purpose: id("app-communication"),
        },
        None,
    );
    if b.rng.chance(20) {
        // "Kalejdo Bredband kommer på din begäran … att rätta uppgifter".
        b.later(90);
        let req = id(&format!("req-{n}-app-rect"));
        b.push("dpo", EventKind::RightsRequestReceived { request_id: req.clone(), right: Right::Rectification }, None);
        b.later(5);
        let corrected = details(serde_json::json!({"phone": format!("07{:08}", b.rng.below(100_000_000))}));
        b.push(
            "app",
            EventKind::DataRectified { register: id("appdatabas"), categories: cats(&["contact"]) },
            corrected,
        );
        b.push(
            "app",
            EventKind::DataShared {
                processor: id("app-cloud"),
                categories: cats(&["contact"]),
                purpose: id("app-communication"),
            },
            None,
        );
        b.push("dpo", EventKind::RightsRequestFulfilled { request_id: req }, None);
    } else if b.rng.chance(25) {
        // "… be att din personliga information tas bort från vårt system, delvis eller
        // fullständigt": partly — the app's database (account and voluntary data) goes, the
        // customer's subscription registers stay.
        b.later(90);
        let req = id(&format!("req-{n}-app-erase"));
        b.push("app", EventKind::ConsentWithdrawn { purpose: id("app-communication"), channel: Some(id("app")) }, None);
        b.push("dpo", EventKind::RightsRequestReceived { request_id: req.clone(), right: Right::Erasure }, None);
        b.later(5);
        b.push(
            "dpo",
            EventKind::DataErased {
                register: Some(id("appdatabas")),
                reason: text("Frivilligt lämnade uppgifter raderade på begäran (Art 17)"),
            },
            None,
        );
        b.push("dpo", EventKind::RightsRequestFulfilled { request_id: req }, None);
    }
}

/// A violation the demo plants on purpose, for `kvitto audit` to find (docs/AUDIT.md lists
/// them): one customer each, whose life is compliant but for the one thing named.
#[derive(Debug, Clone)]
pub struct Planted {
    /// The check that must find it (`K02` …).
    pub check: &'static str,
    /// What was done wrong, in words.
    pub what: &'static str,
    /// The customer and its events (appended after the demo's retention run).
    pub customer: Customer,
}

/// The planted violations: one per check K02–K15, across the seed controllers. (Every demo
/// event is imported history — it occurred before the ledger began — so the late record K13
/// finds is one inserted behind a later event of its subject.)
pub fn planted() -> Vec<Planted> {
    let mut rng = Rng::new(0x6b76_6974_746f);
    let day = |date: &str| -> i64 {
        Timestamp::parse_rfc3339(&format!("{date}T10:00:00Z")).map(|t| t.as_micros()).unwrap_or(EPOCH)
    };
    let mut out = Vec::new();
    let mut plant = |check: &'static str, what: &'static str, controller: &str, steps: &[(&str, EventKind)]| {
        let external_ref = format!("PLANT-{check}");
        let subject = ExternalRef::new(external_ref.clone()).unwrap_or_else(|e| unreachable!("{e}"));
        let spec = CONTROLLERS.iter().find(|c| c.id == controller).unwrap_or(&CONTROLLERS[0]);
        let mut b = Builder {
            rng: &mut rng,
            controller: id(controller),
            subject: Some(subject),
            t: day("2025-03-01"),
            out: Vec::new(),
        };
        b.push(
            "crm",
            EventKind::DataCollected {
                register: id(spec.customer_register),
                categories: cats(&["name", "address", "contact"]),
                purpose: id(spec.delivery_purpose),
                legal_basis: LegalBasis::Contract,
                source: Source::Subject,
            },
            None,
        );
        for (date, kind) in steps {
            b.t = day(date);
            b.push("crm", kind.clone(), None);
        }
        out.push(Planted {
            check,
            what,
            customer: Customer { controller: id(controller), external_ref, events: b.out },
        });
    };
    let share = |processor: &str, purpose: &str, categories: &[&str]| EventKind::DataShared {
        processor: id(processor),
        categories: cats(categories),
        purpose: id(purpose),
    };
    let request = |req: &str, right: Right| EventKind::RightsRequestReceived { request_id: id(req), right };
    let fulfilled = |req: &str| EventKind::RightsRequestFulfilled { request_id: id(req) };
    plant(
        "K02",
        "product news sent through the SMS partner to a customer who never consented",
        "kazoom",
        &[("2025-03-05", share("sms-partner", "product-news", &["contact"]))],
    );
    plant(
        "K03",
        "data collected for lead scoring, a purpose Kazoom never declared",
        "kazoom",
        &[(
            "2025-03-05",
            EventKind::DataCollected {
                register: id("analyse"),
                categories: cats(&["age"]),
                purpose: id("lead-scoring"),
                legal_basis: LegalBasis::LegitimateInterests,
                source: Source::ThirdParty,
            },
        )],
    );
    plant(
        "K04",
        "a marketing e-mail to a customer who had objected to marketing in writing (seed 002)",
        "select-telecom",
        &[
            ("2025-03-02", EventKind::ObjectionRecorded { purpose: id("marketing") }),
            ("2025-03-10", share("databehandlare", "marketing", &["contact"])),
        ],
    );
    plant(
        "K05",
        "an order passed to the network owner while the customer's processing was restricted",
        "kazoom",
        &[
            (
                "2025-03-02",
                EventKind::ProcessingRestricted { reason: text("Kunden bestrider oplysningernes rigtighed") },
            ),
            ("2025-03-04", share("network-owner", "contract-delivery", &["name", "address"])),
            ("2025-03-20", EventKind::RestrictionLifted { reason: text("Oplysningerne kontrolleret") }),
        ],
    );
    plant(
        "K06",
        "an access request answered two months after it was received, without an extension",
        "kazoom",
        &[("2025-03-03", request("req-plant-k06", Right::Access)), ("2025-05-05", fulfilled("req-plant-k06"))],
    );
    plant(
        "K07",
        "a customer who left in June 2025 and whose customer record (P0D after the end) was never erased",
        "kazoom",
        &[("2025-06-01", EventKind::RelationshipEnded { reason: Some(text("Abonnementet opsagt")) })],
    );
    plant(
        "K08",
        "erasure deferred until 2026-03-01 and not carried out when the deferral ran out",
        "komteknik-el",
        &[
            ("2025-03-15", EventKind::RelationshipEnded { reason: Some(text("Avtalet uppsagt")) }),
            (
                "2025-04-01",
                EventKind::ErasureDeferred {
                    register: id("kundregister"),
                    statute: text("Preskriptionslagen (1981:130), tvist om faktura"),
                    until: Timestamp::parse_rfc3339("2026-03-01T00:00:00Z").unwrap_or(Timestamp::MIN),
                },
            ),
        ],
    );
    plant(
        "K09",
        "customer data shared with a recipient Kazoom never registered",
        "kazoom",
        &[("2025-03-05", share("okendt-inkasso", "contract-delivery", &["name", "address"]))],
    );
    plant(
        "K10",
        "an address rectified but never passed on to the network owner that had received it",
        "kazoom",
        &[
            ("2025-03-02", share("network-owner", "contract-delivery", &["name", "address"])),
            ("2025-04-01", EventKind::DataRectified { register: id("kunderegister"), categories: cats(&["address"]) }),
        ],
    );
    plant(
        "K11",
        "equipment shipped through the logistics partner after the customer record was erased",
        "kazoom",
        &[
            ("2025-04-01", EventKind::DataErased { register: Some(id("kunderegister")), reason: text("Art 17") }),
            ("2025-04-05", share("logistics-partner", "contract-delivery", &["name", "address"])),
        ],
    );
    plant(
        "K12",
        "consent recorded under a notice version that was never published",
        "kazoom",
        &[(
            "2025-03-05",
            EventKind::ConsentGiven {
                purpose: id("product-news"),
                notice_version: Some(id("kazoom-2019-udkast")),
                channel: Some(id("web")),
            },
        )],
    );
    plant(
        "K13",
        "a paper consent form of April typed in after the customer's June objection had been recorded",
        "kazoom",
        &[
            ("2025-06-01", EventKind::ObjectionRecorded { purpose: id("ad-suppression") }),
            (
                "2025-04-02",
                EventKind::ConsentGiven {
                    purpose: id("product-news"),
                    notice_version: Some(id("kazoom-2022-01-08")),
                    channel: Some(id("paper")),
                },
            ),
        ],
    );
    plant(
        "K14",
        "an erasure request marked fulfilled with nothing erased or deferred",
        "kazoom",
        &[("2025-03-03", request("req-plant-k14", Right::Erasure)), ("2025-03-07", fulfilled("req-plant-k14"))],
    );
    plant(
        "K15",
        "an order passed to the network owner on the contract after the customer had left (then erased)",
        "kazoom",
        &[
            ("2025-05-01", EventKind::RelationshipEnded { reason: Some(text("Abonnementet opsagt")) }),
            ("2025-05-10", share("network-owner", "contract-delivery", &["name", "address"])),
            (
                "2025-05-20",
                EventKind::DataErased {
                    register: Some(id("kunderegister")),
                    reason: text("Opbevaringsperioden udløb"),
                },
            ),
        ],
    );
    out
}

/// Generates the scenario: every controller's declarations, then `customers` customers
/// spread over the controllers by weight.
pub fn generate(customers: usize, seed: u64) -> Scenario {
    let mut rng = Rng::new(seed);
    let declarations = CONTROLLERS.iter().flat_map(|c| declarations(c, &mut rng)).collect();
    let total: u64 = CONTROLLERS.iter().map(|c| c.weight).sum();
    let customers = (0..customers)
        .map(|n| {
            let mut r = rng.below(total);
            let spec = CONTROLLERS
                .iter()
                .find(|c| {
                    if r < c.weight {
                        true
                    } else {
                        r -= c.weight;
                        false
                    }
                })
                .unwrap_or(&CONTROLLERS[0]);
            customer(spec, n, &mut rng)
        })
        .collect();
    Scenario { declarations, customers }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_for_a_seed_and_different_across_seeds() {
        let a = generate(50, 7);
        let b = generate(50, 7);
        let c = generate(50, 8);
        let ja: Vec<_> = a.all_drafts().map(|d| d.to_json()).collect();
        let jb: Vec<_> = b.all_drafts().map(|d| d.to_json()).collect();
        let jc: Vec<_> = c.all_drafts().map(|d| d.to_json()).collect();
        assert_eq!(ja, jb);
        assert_ne!(ja, jc);
    }

    #[test]
    fn every_draft_survives_its_json_form_and_all_kinds_occur() {
        let s = generate(400, 1);
        let mut kinds = std::collections::BTreeSet::new();
        for d in s.all_drafts() {
            let json = serde_json::to_string(&d.to_json()).unwrap();
            assert_eq!(&Draft::from_json_str(&json).unwrap(), d);
            kinds.insert(d.kind.name());
        }
        // Every kind a caller can write (ledger events are the ledger's own).
        let callers = EventKind::TABLE.iter().filter(|(_, _, scope)| *scope != kvitto_core::Scope::Ledger).count();
        assert_eq!(kinds.len(), callers, "kinds seen: {kinds:?}");
        let controllers: std::collections::BTreeSet<_> = s.customers.iter().map(|c| c.controller.to_string()).collect();
        assert_eq!(controllers.len(), 5);
    }
}
