//! Every ZEGOCLOUD callback the bridge knows: products (one URL each), families, events, their
//! field rules, record keys and ordering headers. One table; checks, schemas, routing, `simulate`
//! and the docs all read it.

use super::event::FieldRule;
use super::event::FieldType::{Integer, Object, ObjectList, Text, TextList, TextOrInteger};
use super::event::{optional, required};

/// A ZEGOCLOUD product: each posts to its own callback URL, configured in its own console, and
/// names its envelope fields its own way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Product {
    /// In-app Chat (ZIM): calls, logins, messages, groups, rooms. `CALLBACK_PATH` itself.
    Zim,
    /// Express (RTC): rooms, logins, streams, stream recordings. `CALLBACK_PATH/rtc`.
    Rtc,
    /// Cloud recording's status callback. `CALLBACK_PATH/recording`.
    Recording,
    /// AI Agent. `CALLBACK_PATH/ai-agent`.
    AiAgent,
}

/// The names one product gives its envelope fields.
#[derive(Debug)]
pub struct Envelope {
    pub appid: &'static str,
    /// `None`: the product sends no event name (cloud recording); its one spec applies.
    pub event: Option<&'static str>,
    pub nonce: &'static str,
    pub timestamp: &'static str,
    pub signature: &'static str,
}

const SNAKE_CASE: Envelope = Envelope {
    appid: "appid",
    event: Some("event"),
    nonce: "nonce",
    timestamp: "timestamp",
    signature: "signature",
};
const RECORDING_ENVELOPE: Envelope = Envelope {
    appid: "app_id",
    event: None,
    nonce: "nonce",
    timestamp: "timestamp",
    signature: "signature",
};
const PASCAL_CASE: Envelope = Envelope {
    appid: "AppId",
    event: Some("Event"),
    nonce: "Nonce",
    timestamp: "Timestamp",
    signature: "Signature",
};

impl Product {
    pub const ALL: [Product; 4] = [
        Product::Zim,
        Product::Rtc,
        Product::Recording,
        Product::AiAgent,
    ];

    /// Its name on the command line (`--product`).
    pub fn name(self) -> &'static str {
        match self {
            Product::Zim => "zim",
            Product::Rtc => "rtc",
            Product::Recording => "recording",
            Product::AiAgent => "ai-agent",
        }
    }

    pub fn from_name(name: &str) -> Option<Product> {
        Product::ALL.into_iter().find(|p| p.name() == name)
    }

    /// Its name in a sentence ("… it is an Express (RTC) event").
    pub fn title(self) -> &'static str {
        match self {
            Product::Zim => "an In-app Chat",
            Product::Rtc => "an Express (RTC)",
            Product::Recording => "a cloud recording",
            Product::AiAgent => "an AI Agent",
        }
    }

    /// What follows `CALLBACK_PATH` in this product's URL.
    pub fn path_suffix(self) -> &'static str {
        match self {
            Product::Zim => "",
            Product::Rtc => "/rtc",
            Product::Recording => "/recording",
            Product::AiAgent => "/ai-agent",
        }
    }

    /// This product's callback path (or URL) under In-app Chat's `base`.
    pub fn path_under(self, base: &str) -> String {
        match self.path_suffix() {
            "" => base.to_string(),
            suffix => format!("{}{suffix}", base.trim_end_matches('/')),
        }
    }

    pub fn envelope(self) -> &'static Envelope {
        match self {
            Product::Zim | Product::Rtc => &SNAKE_CASE,
            Product::Recording => &RECORDING_ENVELOPE,
            Product::AiAgent => &PASCAL_CASE,
        }
    }

    /// The field that keys an event of this product the catalogue does not know, when
    /// `UNKNOWN_EVENTS=forward` lets it through.
    pub fn unknown_event_key(self) -> &'static str {
        match self {
            Product::Zim => "call_id",
            Product::Rtc => "room_id",
            Product::Recording => "task_id",
            Product::AiAgent => "AgentInstanceId",
        }
    }
}

/// A family of events: switched on and off together (`ZEGO_FAMILIES`), routed together
/// (`KAFKA_TOPIC_<FAMILY>`), named in the `zego-family` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    Call,
    Login,
    Message,
    Group,
    Room,
    Rtc,
    Recording,
    AiAgent,
}

impl Family {
    pub const ALL: [Family; 8] = [
        Family::Call,
        Family::Login,
        Family::Message,
        Family::Group,
        Family::Room,
        Family::Rtc,
        Family::Recording,
        Family::AiAgent,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Family::Call => "call",
            Family::Login => "login",
            Family::Message => "message",
            Family::Group => "group",
            Family::Room => "room",
            Family::Rtc => "rtc",
            Family::Recording => "recording",
            Family::AiAgent => "ai_agent",
        }
    }

    pub fn from_name(name: &str) -> Option<Family> {
        Family::ALL.into_iter().find(|f| f.name() == name)
    }

    pub fn product(self) -> Product {
        match self {
            Family::Call | Family::Login | Family::Message | Family::Group | Family::Room => {
                Product::Zim
            }
            Family::Rtc => Product::Rtc,
            Family::Recording => Product::Recording,
            Family::AiAgent => Product::AiAgent,
        }
    }

    /// Every event of the family, in the order a life cycle runs.
    pub fn events(self) -> impl Iterator<Item = EventKind> {
        EventKind::all().filter(move |k| k.family() == self)
    }
}

/// One event: what it must carry, what keys it, which ids go into headers.
#[derive(Debug)]
pub struct EventSpec {
    pub family: Family,
    /// The event name as ZEGOCLOUD sends it; for a family whose names are open-ended (AI Agent)
    /// a name for the whole family, used in metrics and the schema's file name.
    pub name: &'static str,
    /// True when any event name of the family matches this spec (AI Agent's `Event`).
    pub any_name: bool,
    /// Other spellings ZEGOCLOUD's pages show for this event (accepted as it, recorded under
    /// `name`).
    pub aliases: &'static [&'static str],
    pub title: &'static str,
    pub rules: &'static [FieldRule],
    /// The record key: the first of these fields that holds a non-empty string.
    pub key: &'static [&'static str],
    /// Fields copied into headers when present: `(field, header)`. Ordering and dedupe ids.
    pub headers: &'static [(&'static str, &'static str)],
}

const NO_HEADERS: &[(&str, &str)] = &[];
const RTC_ROOM_HEADERS: &[(&str, &str)] = &[
    ("room_session_id", "zego-room-session-id"),
    ("room_seq", "zego-room-seq"),
];
const RTC_STREAM_HEADERS: &[(&str, &str)] = &[
    ("room_session_id", "zego-room-session-id"),
    ("stream_seq", "zego-stream-seq"),
    ("stream_id", "zego-stream-id"),
];
/// `call_accept` and `call_reject` carry the same fields.
const ANSWER_RULES: &[FieldRule] = &[
    required("call_id", Text),
    required("user_id", Text),
    optional("extend_data", Text),
];
/// `room_enter` and `room_exit` (In-app Chat) carry the same fields.
const ROOM_MEMBER_RULES: &[FieldRule] = &[
    required("room_id", Text),
    optional("operator_account", Text),
];
/// `send_msg` and `bot_msg` carry the same fields. A server-side batch send carries an empty
/// conv_id (the recipients are in user_list): such a record is keyed by its sender.
const MESSAGE_RULES: &[FieldRule] = &[
    required("from_user_id", Text),
    required("conv_type", Integer),
    required("conv_id", Text),
    optional("msg_id", TextOrInteger),
    optional("msg_type", Integer),
    optional("msg_body", Text),
    optional("msg_time", Integer),
];
const MESSAGE_KEY: &[&str] = &["conv_id", "from_user_id"];
const MESSAGE_HEADERS: &[(&str, &str)] = &[("msg_id", "zego-msg-id")];
/// Express stream callbacks say `room_id` and `channel_id` mean the same; older ones send
/// only `channel_id`.
const RTC_KEY: &[&str] = &["room_id", "channel_id"];

const fn spec(
    family: Family,
    name: &'static str,
    title: &'static str,
    rules: &'static [FieldRule],
    key: &'static [&'static str],
    headers: &'static [(&'static str, &'static str)],
) -> EventSpec {
    EventSpec {
        family,
        name,
        any_name: false,
        aliases: &[],
        title,
        rules,
        key,
        headers,
    }
}

/// The catalogue. Required fields are only those ZEGOCLOUD's docs agree every callback of the
/// event carries: refusing a genuine callback loses it, so the rest are typed when present.
static SPECS: &[EventSpec] = &[
    // ZIM calls: unchanged from the first release.
    spec(
        Family::Call,
        "call_create",
        "call_create: invitation sent",
        &[
            required("call_id", Text),
            required("caller", Text),
            required("user_ids", TextList),
            required("create_time", Integer),
            required("timeout", Integer),
            optional("payload", Text),
        ],
        &["call_id"],
        NO_HEADERS,
    ),
    spec(
        Family::Call,
        "call_cancel",
        "call_cancel: inviter cancelled",
        &[
            required("call_id", Text),
            required("user_ids", TextList),
            optional("reason", Text),
            optional("payload", Text),
        ],
        &["call_id"],
        NO_HEADERS,
    ),
    spec(
        Family::Call,
        "call_accept",
        "call_accept: invitee accepted",
        ANSWER_RULES,
        &["call_id"],
        NO_HEADERS,
    ),
    spec(
        Family::Call,
        "call_reject",
        "call_reject: invitee rejected",
        ANSWER_RULES,
        &["call_id"],
        NO_HEADERS,
    ),
    // "Callback on call invitation during a call" (advanced mode: a user in a call invites
    // another), https://www.zegocloud.com/docs/zim-server/callbacks/call-invitation-during-a-call
    // invite_time in milliseconds.
    spec(
        Family::Call,
        "call_invite",
        "call_invite: a user in the call invited others",
        &[
            required("call_id", Text),
            required("user_ids", TextList),
            required("inviter", Text),
            required("invite_time", Integer),
        ],
        &["call_id"],
        NO_HEADERS,
    ),
    spec(
        Family::Call,
        "call_timeout",
        "call_timeout: nobody answered in time",
        &[required("call_id", Text), required("user_ids", TextList)],
        &["call_id"],
        NO_HEADERS,
    ),
    // ZIM login and logout.
    spec(
        Family::Login,
        "user_action",
        "user_action: a user logged in, out, or dropped",
        &[
            required("user_id", Text),
            required("action", Integer),
            optional("user_name", Text),
            optional("os", Text),
            optional("session_id", TextOrInteger),
        ],
        &["user_id"],
        &[("session_id", "zego-session-id")],
    ),
    // ZIM messages.
    spec(
        Family::Message,
        "send_msg",
        "send_msg: a message was sent",
        MESSAGE_RULES,
        MESSAGE_KEY,
        MESSAGE_HEADERS,
    ),
    // "Callback on message not sent yet", synchronous: ZIM waits at most 2.5 s for
    // {"result": 0|1|2|3} and does not send the message when the answer fails,
    // https://www.zegocloud.com/docs/zim-server/callbacks/message-not-sent-yet
    spec(
        Family::Message,
        BEFORE_SEND_MSG,
        "before_send_msg: a message is about to be sent (answered at once)",
        MESSAGE_RULES,
        MESSAGE_KEY,
        MESSAGE_HEADERS,
    ),
    spec(
        Family::Message,
        "bot_msg",
        "bot_msg: a message to a bot account",
        MESSAGE_RULES,
        MESSAGE_KEY,
        MESSAGE_HEADERS,
    ),
    // ZIM groups.
    spec(
        Family::Group,
        "group_create",
        "group_create: a group was created",
        &[
            required("group_id", Text),
            optional("operator_account", Text),
            optional("owner_account", Text),
            optional("group_name", Text),
            optional("attributes", ObjectList),
            optional("user_ids", TextList),
        ],
        &["group_id"],
        NO_HEADERS,
    ),
    // "Callback on group joined", https://www.zegocloud.com/docs/zim-server/callbacks/group/group-joined
    // Its sample says Apply_join_group (its table names another page's event, group_destroy);
    // the Chinese page and the callback list say group_join. Both spellings are accepted.
    EventSpec {
        aliases: &["Apply_join_group"],
        ..spec(
            Family::Group,
            "group_join",
            "group_join: users joined a group",
            &[
                required("group_id", Text),
                optional("operator_account", Text),
                optional("join_type", Text),
                optional("new_user_ids", TextList),
            ],
            &["group_id"],
            NO_HEADERS,
        )
    },
    spec(
        Family::Group,
        "group_exit",
        "group_exit: users left a group",
        &[
            required("group_id", Text),
            optional("operator_account", Text),
        ],
        &["group_id"],
        NO_HEADERS,
    ),
    spec(
        Family::Group,
        "group_destroy",
        "group_destroy: a group was dismissed",
        &[
            required("group_id", Text),
            optional("operator_account", Text),
            optional("owner_account", Text),
            optional("user_ids", TextList),
        ],
        &["group_id"],
        NO_HEADERS,
    ),
    // ZIM rooms.
    spec(
        Family::Room,
        "room_create",
        "room_create: an In-app Chat room was created",
        &[
            required("room_id", Text),
            optional("operator_account", Text),
            optional("room_name", Text),
            optional("attributes", ObjectList),
        ],
        &["room_id"],
        NO_HEADERS,
    ),
    spec(
        Family::Room,
        "room_enter",
        "room_enter: a user entered an In-app Chat room",
        ROOM_MEMBER_RULES,
        &["room_id"],
        NO_HEADERS,
    ),
    spec(
        Family::Room,
        "room_exit",
        "room_exit: a user left an In-app Chat room",
        ROOM_MEMBER_RULES,
        &["room_id"],
        NO_HEADERS,
    ),
    spec(
        Family::Room,
        "room_destroy",
        "room_destroy: an In-app Chat room was destroyed",
        &[
            required("room_id", Text),
            optional("operator_account", Text),
            optional("user_ids", TextList),
        ],
        &["room_id"],
        NO_HEADERS,
    ),
    // Express (RTC). Most values arrive as strings, some ids as numbers: ids are typed loosely.
    spec(
        Family::Rtc,
        "room_create",
        "room_create: an RTC room was created",
        &[
            required("room_id", Text),
            optional("room_session_id", TextOrInteger),
            optional("room_create_time", TextOrInteger),
            optional("id_name", Text),
        ],
        &["room_id"],
        RTC_ROOM_HEADERS,
    ),
    // "Room destroyed Callback": Express sends room_close (never room_destroy, which is In-app
    // Chat's), https://www.zegocloud.com/docs/real-time-video-server/callback/room/destroyed
    // (close_reason 0-3, room_close_time a string of milliseconds).
    spec(
        Family::Rtc,
        "room_close",
        "room_close: an RTC room was destroyed",
        &[
            required("room_id", Text),
            optional("room_session_id", TextOrInteger),
            optional("close_reason", TextOrInteger),
            optional("room_close_time", TextOrInteger),
        ],
        &["room_id"],
        RTC_ROOM_HEADERS,
    ),
    spec(
        Family::Rtc,
        "room_login",
        "room_login: a user logged in to an RTC room",
        &[
            required("room_id", Text),
            optional("room_seq", TextOrInteger),
            optional("user_account", Text),
            optional("user_nickname", Text),
            optional("session_id", TextOrInteger),
            optional("login_time", TextOrInteger),
        ],
        &["room_id"],
        RTC_ROOM_HEADERS,
    ),
    spec(
        Family::Rtc,
        "room_logout",
        "room_logout: a user logged out of an RTC room",
        &[
            required("room_id", Text),
            optional("room_seq", TextOrInteger),
            optional("user_account", Text),
            optional("user_nickname", Text),
            optional("session_id", TextOrInteger),
            optional("logout_time", TextOrInteger),
        ],
        &["room_id"],
        RTC_ROOM_HEADERS,
    ),
    spec(
        Family::Rtc,
        "stream_create",
        "stream_create: a stream started publishing",
        &[
            optional("room_id", Text),
            optional("channel_id", Text),
            optional("room_session_id", TextOrInteger),
            optional("user_id", Text),
            optional("stream_id", Text),
            optional("stream_seq", TextOrInteger),
            optional("third_define_data", Text),
        ],
        RTC_KEY,
        RTC_STREAM_HEADERS,
    ),
    spec(
        Family::Rtc,
        "stream_close",
        "stream_close: a stream stopped publishing",
        &[
            optional("room_id", Text),
            optional("channel_id", Text),
            optional("room_session_id", TextOrInteger),
            optional("user_id", Text),
            optional("stream_id", Text),
            optional("stream_seq", TextOrInteger),
            optional("type", TextOrInteger),
            optional("third_define_data", Text),
        ],
        RTC_KEY,
        RTC_STREAM_HEADERS,
    ),
    // "Recording File Generated Callback" (CDN recording): no room, only the stream's alias,
    // https://www.zegocloud.com/docs/real-time-video-server/callback/cdn/cdn-record-completed
    // extra_params is documented as a string whose content depends on the CDN: left untyped.
    spec(
        Family::Rtc,
        "record",
        "record: a CDN recording file is ready",
        &[
            required("stream_alias", Text),
            optional("replay_url", Text),
            optional("begin_time", TextOrInteger),
            optional("end_time", TextOrInteger),
        ],
        &["stream_alias"],
        &[("stream_alias", "zego-stream-id")],
    ),
    // Cloud recording: no event name; `event_type` says what happened.
    spec(
        Family::Recording,
        "recording_status",
        "recording_status: a cloud recording task changed",
        &[
            required("task_id", Text),
            required("event_type", Integer),
            optional("room_id", Text),
            optional("message", Text),
            optional("sequence", Integer),
            optional("detail", Object),
        ],
        &["task_id"],
        &[
            ("event_type", "zego-recording-event-type"),
            ("sequence", "zego-sequence"),
            ("room_id", "zego-room-id"),
        ],
    ),
    // AI Agent: PascalCase, open-ended event names.
    EventSpec {
        family: Family::AiAgent,
        name: "ai_agent_event",
        any_name: true,
        aliases: &[],
        title: "AI Agent event (any Event name)",
        rules: &[
            required("AgentInstanceId", Text),
            optional("RoomId", Text),
            optional("Sequence", Integer),
            optional("Data", Object),
        ],
        key: &["AgentInstanceId"],
        headers: &[("Sequence", "zego-sequence"), ("RoomId", "zego-room-id")],
    },
];

/// The event ZIM sends before delivering a message, waiting up to 2.5 s for a verdict: always
/// answered at once with the verdict that lets the message through (README, "Callback
/// families"), published when Kafka takes it in time.
pub const BEFORE_SEND_MSG: &str = "before_send_msg";

/// A handle on one catalogued event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EventKind(usize);

impl EventKind {
    pub fn all() -> impl Iterator<Item = EventKind> {
        (0..SPECS.len()).map(EventKind)
    }

    pub fn spec(self) -> &'static EventSpec {
        &SPECS[self.0]
    }

    pub fn name(self) -> &'static str {
        self.spec().name
    }

    pub fn family(self) -> Family {
        self.spec().family
    }

    /// The event `name` as `product` sends it (or one of its other spellings).
    pub fn lookup(product: Product, name: &str) -> Option<EventKind> {
        EventKind::all().find(|k| {
            let spec = k.spec();
            spec.family.product() == product
                && (spec.any_name || spec.name == name || spec.aliases.contains(&name))
        })
    }

    /// The catalogued event called `name`, whatever its product (In-app Chat's where two share
    /// a name); never the open-ended AI Agent spec. For settings and tools, which name events
    /// without a product.
    pub fn named(name: &str) -> Option<EventKind> {
        EventKind::all().find(|k| !k.spec().any_name && k.name() == name)
    }

    /// Where its JSON Schema lives, relative to the repository: `schemas/<family>/<name>.schema.json`.
    pub fn schema_path(self) -> String {
        format!(
            "schemas/{}/{}.schema.json",
            self.family().name(),
            self.name()
        )
    }
}

/// The call family's events by name, for code that names one.
pub mod call {
    use super::EventKind;

    fn named(name: &str) -> EventKind {
        EventKind::named(name).unwrap_or_else(|| unreachable!("{name} is in the catalogue"))
    }
    pub fn create() -> EventKind {
        named("call_create")
    }
    pub fn cancel() -> EventKind {
        named("call_cancel")
    }
    pub fn accept() -> EventKind {
        named("call_accept")
    }
    pub fn reject() -> EventKind {
        named("call_reject")
    }
    pub fn timeout() -> EventKind {
        named("call_timeout")
    }
    pub fn invite() -> EventKind {
        named("call_invite")
    }

    /// A call's life in normal mode, in order: what `simulate --event family` sends. The
    /// family also has `call_invite` (advanced mode: an invitation during a call).
    pub fn normal_life() -> [EventKind; 5] {
        [create(), cancel(), accept(), reject(), timeout()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn every_family_has_events_and_every_event_a_key_it_types() {
        for family in Family::ALL {
            assert_eq!(Family::from_name(family.name()), Some(family));
            assert!(family.events().count() > 0, "{family:?}");
        }
        for kind in EventKind::all() {
            let spec = kind.spec();
            for key in spec.key {
                assert!(
                    spec.rules.iter().any(|r| r.name == *key),
                    "{}: key {key} has no rule",
                    kind.name()
                );
            }
        }
    }

    #[test]
    fn names_are_unique_within_a_product_and_never_a_family_name() {
        let mut seen = HashSet::new();
        for kind in EventKind::all() {
            assert!(
                seen.insert((kind.family().product(), kind.name())),
                "{}",
                kind.name()
            );
            assert!(Family::from_name(kind.name()).is_none(), "{}", kind.name());
        }
    }

    #[test]
    fn lookup_is_per_product() {
        let zim = EventKind::lookup(Product::Zim, "room_create").unwrap();
        let rtc = EventKind::lookup(Product::Rtc, "room_create").unwrap();
        assert_eq!((zim.family(), rtc.family()), (Family::Room, Family::Rtc));
        assert_eq!(EventKind::lookup(Product::Zim, "room_login"), None);
        assert_eq!(
            EventKind::lookup(Product::AiAgent, "AgentInstanceCreated").map(|k| k.family()),
            Some(Family::AiAgent)
        );
        assert_eq!(call::accept().name(), "call_accept");
        assert_eq!(EventKind::named("room_create"), Some(zim));
        assert_eq!(EventKind::named("ai_agent_event"), None);
        // Another spelling a page shows is the same event; RTC sends room_close, not destroy.
        assert_eq!(
            EventKind::lookup(Product::Zim, "Apply_join_group").map(EventKind::name),
            Some("group_join")
        );
        assert_eq!(
            EventKind::lookup(Product::Rtc, "room_close").map(|k| k.family()),
            Some(Family::Rtc)
        );
        assert_eq!(EventKind::lookup(Product::Rtc, "room_destroy"), None);
        assert_eq!(call::invite().family(), Family::Call);
    }
}
