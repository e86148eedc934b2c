//! Every ZEGOCLOUD callback the bridge knows: products (one URL each), families, events, their
//! field rules, record keys and ordering headers. One table; checks, schemas, routing, `simulate`
//! and the docs all read it.

use super::event::FieldRule;
use super::event::FieldType::{
    Integer, Object, ObjectList, ObjectOrEmpty, Text, TextList, TextOrInteger,
};
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
    /// The ZEGOCLOUD page that documents it: a URL, or a path under its product's docs.
    pub page: &'static str,
    pub sample: Sample,
    pub rules: &'static [FieldRule],
    /// The record key: the first of these fields that holds a non-empty string.
    pub key: &'static [&'static str],
    /// Fields copied into headers when present: `(field, header)`. Ordering and dedupe ids.
    pub headers: &'static [(&'static str, &'static str)],
}

impl EventSpec {
    /// The whole URL of its page.
    pub fn page_url(&self) -> String {
        if self.page.starts_with("https://") {
            return self.page.to_string();
        }
        let base = match self.family.product() {
            Product::Rtc => RTC_DOCS,
            _ => ZIM_DOCS,
        };
        format!("{base}{}", self.page)
    }
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
/// `room_exit` (In-app Chat); `room_enter` adds `new_user_ids`.
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

/// A sample callback of an event, whole (envelope and fields) as JSON text. `simulate`, the
/// tests and the benchmark send it with the envelope's values (app id, nonce, timestamp,
/// signature) and the key replaced, each in the type and unit the sample gives it.
#[derive(Debug, Clone, Copy)]
pub enum Sample {
    /// The page's own sample, as printed there.
    Page(&'static str),
    /// The stored page shows no whole sample: built from the page's field table, each value
    /// in the type the table gives.
    Table(&'static str),
}

impl Sample {
    pub fn text(self) -> &'static str {
        match self {
            Sample::Page(text) | Sample::Table(text) => text,
        }
    }

    /// `page` or `table`, for `docs/callbacks.md`.
    pub fn source(self) -> &'static str {
        match self {
            Sample::Page(_) => "page",
            Sample::Table(_) => "table",
        }
    }
}

#[allow(clippy::too_many_arguments)]
const fn spec(
    family: Family,
    name: &'static str,
    title: &'static str,
    page: &'static str,
    sample: Sample,
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
        page,
        sample,
        rules,
        key,
        headers,
    }
}

const ZIM_DOCS: &str = "https://www.zegocloud.com/docs/zim-server/callbacks/";
const RTC_DOCS: &str = "https://www.zegocloud.com/docs/real-time-video-server/callback/";

/// The catalogue. Required fields are only those ZEGOCLOUD's docs agree every callback of the
/// event carries: refusing a genuine callback loses it, so the rest are typed when present.
/// Each row names its page (`docs/callbacks.md` lists them all, with what each page says of
/// units and retries); `ZIM_DOCS`/`RTC_DOCS` prefix the relative ones.
static SPECS: &[EventSpec] = &[
    // In-app Chat calls. Timestamps in seconds; call_invite's invite_time in milliseconds.
    spec(
        Family::Call,
        "call_create",
        "call_create: invitation sent",
        "call-invitation-sent",
        Sample::Table(
            r#"{"appid": "1", "event": "call_create", "nonce": "350176", "signature": "signature",
                "timestamp": 1499676978, "call_id": "3501761173612493269", "caller": "abc",
                "user_ids": ["def"], "create_time": 1499676978, "timeout": 60, "payload": "payload"}"#,
        ),
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
        "https://docs.zegocloud.com/article/15475",
        Sample::Page(
            r#"{"appid": "1", "event": "call_cancel", "nonce": "350176", "signature": "signature",
                "timestamp": 1499676978, "call_id": "3501761173612493269", "user_ids": ["abc", "def"],
                "reason": "caller_cancel", "payload": "payload"}"#,
        ),
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
        "call-invitation-accepted",
        Sample::Table(
            r#"{"appid": "1", "event": "call_accept", "nonce": "350176", "signature": "signature",
                "timestamp": 1499676978, "call_id": "3501761173612493269", "user_id": "abc",
                "extend_data": "extendData"}"#,
        ),
        ANSWER_RULES,
        &["call_id"],
        NO_HEADERS,
    ),
    spec(
        Family::Call,
        "call_reject",
        "call_reject: invitee rejected",
        "call-invitation-rejected",
        Sample::Table(
            r#"{"appid": "1", "event": "call_reject", "nonce": "350176", "signature": "signature",
                "timestamp": 1499676978, "call_id": "3501761173612493269", "user_id": "abc",
                "extend_data": "extendData"}"#,
        ),
        ANSWER_RULES,
        &["call_id"],
        NO_HEADERS,
    ),
    // Advanced mode: a user in a call invites another. The stored page's sample ends after
    // user_ids; inviter and invite_time (milliseconds) follow its table.
    spec(
        Family::Call,
        "call_invite",
        "call_invite: a user in the call invited others",
        "call-invitation-during-a-call",
        Sample::Table(
            r#"{"appid": "1", "event": "call_invite", "nonce": "350176", "signature": "signature",
                "timestamp": 1499676978, "call_id": "3501761173612493269", "user_ids": ["abc", "def"],
                "inviter": "abc", "invite_time": 1499676978000}"#,
        ),
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
        "call-invitation-timed-out",
        Sample::Page(
            r#"{"appid": "1", "event": "call_timeout", "nonce": "350176", "signature": "signature",
                "timestamp": 1499676978, "call_id": "3501761173612493269", "user_ids": ["abc", "def"]}"#,
        ),
        &[required("call_id", Text), required("user_ids", TextList)],
        &["call_id"],
        NO_HEADERS,
    ),
    // In-app Chat login and logout: times in seconds.
    spec(
        Family::Login,
        "user_action",
        "user_action: a user logged in, out, or dropped",
        "login-and-logout",
        Sample::Page(
            r#"{"appid": "1", "event": "user_action", "timestamp": 1679553625, "nonce": "350176",
                "signature": "signature", "user_id": "123456", "user_name": "user_name", "os": "PC ",
                "action": 1, "session_id": "930821637828251648", "login_time": 1679553625,
                "relogin": "1", "logout_time": 1679553625, "logout_reason": "logout_reason"}"#,
        ),
        &[
            required("user_id", Text),
            required("action", Integer),
            optional("user_name", Text),
            optional("os", Text),
            optional("session_id", TextOrInteger),
            optional("login_time", TextOrInteger),
            optional("relogin", TextOrInteger),
            optional("logout_time", TextOrInteger),
            optional("logout_reason", Text),
            optional("offline_time", TextOrInteger),
        ],
        &["user_id"],
        &[("session_id", "zego-session-id")],
    ),
    // In-app Chat messages.
    spec(
        Family::Message,
        "send_msg",
        "send_msg: a message was sent",
        "message-sent",
        Sample::Table(MESSAGE_SAMPLE_SEND),
        MESSAGE_RULES,
        MESSAGE_KEY,
        MESSAGE_HEADERS,
    ),
    // Synchronous: ZIM waits at most 2.5 s for {"result": 0|1|2|3} and does not send the
    // message when the answer fails.
    spec(
        Family::Message,
        BEFORE_SEND_MSG,
        "before_send_msg: a message is about to be sent (answered at once)",
        "message-not-sent-yet",
        Sample::Table(MESSAGE_SAMPLE_BEFORE),
        MESSAGE_RULES,
        MESSAGE_KEY,
        MESSAGE_HEADERS,
    ),
    spec(
        Family::Message,
        "bot_msg",
        "bot_msg: a message to a bot account",
        "message-sent",
        Sample::Table(MESSAGE_SAMPLE_BOT),
        MESSAGE_RULES,
        MESSAGE_KEY,
        MESSAGE_HEADERS,
    ),
    // In-app Chat groups.
    spec(
        Family::Group,
        "group_create",
        "group_create: a group was created",
        "group/group-created",
        Sample::Table(
            r#"{"appid": "1", "event": "group_create", "nonce": "350176", "signature": "signature",
                "timestamp": 1499676978, "group_id": "1", "operator_account": "userA",
                "owner_account": "userA", "group_name": "group_name",
                "attributes": [{"key": "UserSet1", "value": "UserGet1"}], "user_ids": ["Tony", "Jenny"]}"#,
        ),
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
    // The English page's sample says Apply_join_group (its table names another page's event,
    // group_destroy); the Chinese page and the callback list say group_join. Both spellings are
    // accepted; the sample is the English one under the Chinese page's name.
    EventSpec {
        aliases: &["Apply_join_group"],
        ..spec(
            Family::Group,
            "group_join",
            "group_join: users joined a group",
            "group/group-joined",
            Sample::Page(
                r#"{"appid": "1", "event": "group_join", "group_id": "1", "nonce": "350176",
                    "signature": "signature", "operator_account": "userA", "join_type": "Apply",
                    "new_user_ids": ["Tony", "Jenny"], "timestamp": "1499676978"}"#,
            ),
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
    // The page's table calls it group_destroy; its sample says group_exit.
    spec(
        Family::Group,
        "group_exit",
        "group_exit: users left a group",
        "group/group-left",
        Sample::Page(
            r#"{"appid": "1", "event": "group_exit", "group_id": "1", "nonce": "350176",
                "signature": "signature", "exit_type": "Kickout", "operator_account": "userA",
                "exit_user_ids": ["Tony", "Jenny"], "timestamp": 1499676978}"#,
        ),
        &[
            required("group_id", Text),
            optional("operator_account", Text),
            optional("exit_type", Text),
            optional("exit_user_ids", TextList),
        ],
        &["group_id"],
        NO_HEADERS,
    ),
    spec(
        Family::Group,
        "group_destroy",
        "group_destroy: a group was dismissed",
        "group/group-destroyed",
        Sample::Table(
            r#"{"appid": "1", "event": "group_destroy", "nonce": "350176", "signature": "signature",
                "timestamp": 1499676978, "group_id": "1", "operator_account": "userA",
                "owner_account": "userA", "user_ids": ["Tony", "Jenny"]}"#,
        ),
        &[
            required("group_id", Text),
            optional("operator_account", Text),
            optional("owner_account", Text),
            optional("user_ids", TextList),
        ],
        &["group_id"],
        NO_HEADERS,
    ),
    // In-app Chat rooms. The pages' tables say group_create; their samples say room_*.
    spec(
        Family::Room,
        "room_create",
        "room_create: an In-app Chat room was created",
        "room/room-created",
        // The page's sample lacks two commas (after each attribute and after the list): as
        // printed it is not JSON. These are its values with the commas.
        Sample::Page(
            r#"{"appid": "1", "event": "room_create", "room_id": "1", "nonce": "350176",
                "signature": "signature", "operator_account": "userA", "room_name": "room_name",
                "attributes": [{"key": "UserSet1", "value": "UserGet1", "auto_delete": 0},
                               {"key": "UserSet2", "value": "UserGet2", "auto_delete": 0}],
                "timestamp": 1499676978}"#,
        ),
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
        "room/room-entered",
        Sample::Page(
            r#"{"appid": "1", "event": "room_enter", "room_id": "1", "nonce": "350176",
                "signature": "signature", "operator_account": "userA",
                "new_user_ids": ["Tony", "Jenny"], "timestamp": 1499676978}"#,
        ),
        &[
            required("room_id", Text),
            optional("operator_account", Text),
            optional("new_user_ids", TextList),
        ],
        &["room_id"],
        NO_HEADERS,
    ),
    spec(
        Family::Room,
        "room_exit",
        "room_exit: a user left an In-app Chat room",
        "room/room-left",
        Sample::Table(
            r#"{"appid": "1", "event": "room_exit", "nonce": "350176", "signature": "signature",
                "timestamp": 1499676978, "room_id": "1", "operator_account": "userA"}"#,
        ),
        ROOM_MEMBER_RULES,
        &["room_id"],
        NO_HEADERS,
    ),
    spec(
        Family::Room,
        "room_destroy",
        "room_destroy: an In-app Chat room was destroyed",
        "room/room-destroyed",
        Sample::Page(
            r#"{"appid": "1", "event": "room_destroy", "room_id": "1", "nonce": "350176",
                "signature": "signature", "user_ids": ["Tony", "Jenny"], "operator_account": "userA",
                "timestamp": 1499676978}"#,
        ),
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
        "room/created",
        Sample::Page(
            r#"{"event": "room_create", "appid": 1, "timestamp": 1499676978, "nonce": "350176",
                "signature": "signature", "room_id": "rid_1242649",
                "room_session_id": 858012925204410400, "room_create_time": "1499676978027",
                "id_name": "id123"}"#,
        ),
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
    // Chat's); close_reason 0-3, room_close_time a string of milliseconds.
    spec(
        Family::Rtc,
        "room_close",
        "room_close: an RTC room was destroyed",
        "room/destroyed",
        Sample::Page(
            r#"{"event": "room_close", "appid": 1, "timestamp": 1499676978, "nonce": "350176",
                "signature": "signature", "room_id": "rid_1242649",
                "room_session_id": 858012925204410400, "close_reason": 1,
                "room_close_time": "1499676989909"}"#,
        ),
        &[
            required("room_id", Text),
            optional("room_session_id", TextOrInteger),
            optional("close_reason", TextOrInteger),
            optional("room_close_time", TextOrInteger),
        ],
        &["room_id"],
        RTC_ROOM_HEADERS,
    ),
    // The current page types every value a string; the Server APIs v2 page
    // (https://docs.zegocloud.com/article/14133), whose sample this is, sends login_time and
    // timestamp as numbers. Both are accepted.
    spec(
        Family::Rtc,
        "room_login",
        "room_login: a user logged in to an RTC room",
        "room/logged-in",
        Sample::Page(
            r#"{"user_account": "888120154", "user_nickname": "888120154", "session_id": "0",
                "room_id": "rid_1242649", "room_seq": "6085791336856668982", "room_name": "room#123",
                "login_time": 1499676978027, "timestamp": 1499676978, "nonce": "350176",
                "signature": "signature", "appid": "1", "event": "room_login"}"#,
        ),
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
        "room/logged-out",
        Sample::Table(
            r#"{"event": "room_logout", "appid": "1", "timestamp": "1499676978", "nonce": "350176",
                "signature": "signature", "room_id": "rid_1242649", "room_seq": "6085791336856668982",
                "user_account": "888120154", "user_nickname": "888120154", "session_id": "0",
                "login_time": "1499676978027", "logout_time": "1499676989909", "reason": "0",
                "user_role": "1"}"#,
        ),
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
        "stream/created",
        Sample::Table(
            r#"{"event": "stream_create", "appid": "1", "timestamp": "1499676978", "nonce": "350176",
                "signature": "signature", "room_id": "rid_1242649",
                "room_session_id": "858993459200000001", "user_id": "userA", "user_name": "A",
                "channel_id": "rid_1242649", "stream_id": "stream-1",
                "stream_sid": "s-115205137699740000000000104", "title": "title",
                "stream_alias": "stream-1", "stream_attr": "{\"cid\":0}", "stream_seq": "17",
                "create_time": "1499676978", "create_time_ms": "1499676978027", "extra_info": ""}"#,
        ),
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
    // The Server APIs v2 page (https://docs.zegocloud.com/article/9807) prints its sample as a
    // form dump: these are its values; the fields it cuts off follow the table.
    spec(
        Family::Rtc,
        "stream_close",
        "stream_close: a stream stopped publishing",
        "stream/destroyed",
        Sample::Table(
            r#"{"stream_sid": "s-115205137699740000000000104", "channel_id": "0xb-0x1", "type": "0",
                "stream_alias": "aaaa", "timestamp": "1481597358", "nonce": "158273",
                "signature": "signature", "appid": "1", "event": "stream_close", "stream_id": "aaaa",
                "stream_seq": "18", "room_id": "0xb-0x1", "user_id": "userA", "user_name": "A"}"#,
        ),
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
    // "Recording File Generated Callback" (CDN recording): no room, only the stream's alias.
    // extra_params is documented as a string whose content depends on the CDN: left untyped.
    spec(
        Family::Rtc,
        "record",
        "record: a CDN recording file is ready",
        "cdn/cdn-record-completed",
        Sample::Page(
            r#"{"stream_alias": "aaaa", "replay_url": "replay_url", "begin_time": "1481597358",
                "end_time": "1481597358", "timestamp": "1481597358", "nonce": "158273",
                "signature": "signature", "appid": "1", "event": "record",
                "extra_params": "extra_params"}"#,
        ),
        &[
            required("stream_alias", Text),
            optional("replay_url", Text),
            optional("begin_time", TextOrInteger),
            optional("end_time", TextOrInteger),
        ],
        &["stream_alias"],
        &[("stream_alias", "zego-stream-id")],
    ),
    // Stream mixing: keyed by the room (channel_id) like every Express event, so a room's mix
    // starts and stops keep their order with its streams; the mix task id and the request's
    // seq go into headers. The current pages send seq as a string, the v2 page
    // (https://docs.zegocloud.com/article/9810) as an integer.
    spec(
        Family::Rtc,
        "mix_start",
        "mix_start: a stream mix started",
        "https://www.zegocloud.com/docs/real-time-voice-server/callback/stream-mixing/started",
        Sample::Table(
            r#"{"appid": "1", "event": "mix_start", "seq": "1", "task_id": "1_mix-task",
                "channel_id": "rid_1242649", "publish_id": "userA",
                "mix_url": "rtmp://example.com/live/mix-1", "mix_stream_alias": "mix-1",
                "rtmp_urls": ["rtmp://example.com/live/mix-1"],
                "hls_urls": ["https://example.com/live/mix-1.m3u8"],
                "hdl_urls": ["https://example.com/live/mix-1.flv"], "stream_alias": "mix-1",
                "timestamp": "1499676978", "nonce": "350176", "signature": "signature"}"#,
        ),
        MIX_RULES,
        MIX_KEY,
        MIX_HEADERS,
    ),
    spec(
        Family::Rtc,
        "mix_stop",
        "mix_stop: a stream mix stopped",
        "stream-mixing/stopped",
        Sample::Table(
            r#"{"appid": "1", "event": "mix_stop", "seq": "2", "task_id": "1_mix-task",
                "channel_id": "rid_1242649", "publish_id": "userA",
                "mix_url": "rtmp://example.com/live/mix-1", "mix_stream_alias": "mix-1",
                "timestamp": "1499676978", "nonce": "350176", "signature": "signature"}"#,
        ),
        MIX_RULES,
        MIX_KEY,
        MIX_HEADERS,
    ),
    // Cloud recording: no event name; `event_type` says what happened. Two formats share the
    // envelope (README, "Cloud recording"): the current one puts the files under `detail`
    // (empty for event_type 4), the one accounts that enabled recording before 2021-11-29 get
    // has `file_info` at the top level and other event_type meanings. `zego-recording-format`
    // says which (see `event::recording_format`).
    spec(
        Family::Recording,
        "recording_status",
        "recording_status: a cloud recording task changed",
        "https://www.zegocloud.com/docs/cloud-recording-server/recording-status-callback",
        // The page's sample shows app_id and detail.file_info; the rest follows its table.
        Sample::Table(
            r#"{"app_id": 1234567890, "task_id": "XLwu2tSzhtdLSd4U", "room_id": "room-1",
                "event_type": 1, "message": "upload status changed", "nonce": "350176",
                "timestamp": "1637753783", "signature": "signature", "sequence": 0,
                "detail": {"upload_status": 1, "file_info": [{"begin_timestamp": 1637753762084,
                    "duration": 170039,
                    "file_id": "YZ4joOE4IwmFAAAT_6677_800221_800221_VA_20211124113602084.mp4",
                    "file_size": 25349026, "file_url": "file_url", "media_track_type": 3,
                    "output_file_format": "mp4", "resolution_height": 720,
                    "resolution_width": 1280, "status": 3, "stream_id": "800221",
                    "user_id": "800221", "user_name": "play_800221"}]}}"#,
        ),
        &[
            required("task_id", Text),
            required("event_type", Integer),
            optional("room_id", Text),
            optional("message", Text),
            optional("sequence", Integer),
            optional("detail", ObjectOrEmpty),
            optional("file_info", ObjectList),
        ],
        &["task_id"],
        &[
            ("event_type", "zego-recording-event-type"),
            ("sequence", "zego-sequence"),
            ("room_id", "zego-room-id"),
        ],
    ),
    // AI Agent: PascalCase, open-ended event names (ASRResult, LLMResult, Exception,
    // Interrupted, UserSpeakAction, AgentSpeakAction, UserAudioData, ...), Timestamp in ms.
    EventSpec {
        any_name: true,
        ..spec(
            Family::AiAgent,
            "ai_agent_event",
            "AI Agent event (any Event name)",
            "https://www.zegocloud.com/docs/aiagent-server/callbacks/receiving-callback",
            Sample::Table(
                r#"{"AppId": 1234567890, "Event": "UserSpeakAction", "Nonce": "350176",
                    "Timestamp": 1499676978027, "Signature": "signature",
                    "AgentInstanceId": "1912124734317838336", "AgentUserId": "agent_1",
                    "RoomId": "room_1", "Sequence": 1, "Data": {}}"#,
            ),
            &[
                required("AgentInstanceId", Text),
                optional("RoomId", Text),
                optional("Sequence", Integer),
                optional("Data", Object),
            ],
            &["AgentInstanceId"],
            &[("Sequence", "zego-sequence"), ("RoomId", "zego-room-id")],
        )
    },
];

/// The message family's samples: the same fields under three event names. A server-side batch
/// send carries an empty conv_id (the recipients are in user_list).
const MESSAGE_SAMPLE_SEND: &str = r#"{"appid": "1", "event": "send_msg", "nonce": "350176",
    "signature": "signature", "timestamp": 1499676978, "from_user_id": "abc", "conv_type": 0,
    "conv_id": "def", "msg_type": 1, "sub_msg_type": 0, "msg_id": "7290411245098426370",
    "msg_time": 1499676978000, "msg_body": "hello"}"#;
const MESSAGE_SAMPLE_BEFORE: &str = r#"{"appid": "1", "event": "before_send_msg", "nonce": "350176",
    "signature": "signature", "timestamp": 1499676978, "from_user_id": "abc", "conv_type": 0,
    "conv_id": "def", "msg_type": 1, "sub_msg_type": 0, "msg_id": "7290411245098426370",
    "msg_time": 1499676978000, "msg_body": "hello"}"#;
const MESSAGE_SAMPLE_BOT: &str = r#"{"appid": "1", "event": "bot_msg", "nonce": "350176",
    "signature": "signature", "timestamp": 1499676978, "from_user_id": "abc", "conv_type": 0,
    "conv_id": "def", "msg_type": 1, "sub_msg_type": 0, "msg_id": "7290411245098426370",
    "msg_time": 1499676978000, "msg_body": "hello"}"#;

/// `mix_start` and `mix_stop` carry the same ids.
const MIX_RULES: &[FieldRule] = &[
    optional("channel_id", Text),
    optional("task_id", Text),
    optional("seq", TextOrInteger),
    optional("publish_id", Text),
    optional("mix_url", Text),
    optional("mix_stream_alias", Text),
    optional("stream_alias", Text),
];
const MIX_KEY: &[&str] = &["channel_id", "task_id"];
const MIX_HEADERS: &[(&str, &str)] = &[("task_id", "zego-task-id"), ("seq", "zego-mix-seq")];

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

    /// Each row's sample is its own page's: JSON, under the row's event name (or a spelling the
    /// page shows), with the envelope its product sends, its key, and fields its rules accept.
    #[test]
    fn every_sample_is_its_own_events_and_passes_its_rules() {
        for kind in EventKind::all() {
            let spec = kind.spec();
            let name = kind.name();
            assert!(spec.page_url().starts_with("https://"), "{name}");
            let sample: serde_json::Value = serde_json::from_str(spec.sample.text())
                .unwrap_or_else(|e| panic!("{name}: the sample is not JSON: {e}"));
            let mut fields = sample.as_object().cloned().expect("an object");
            let names = spec.family.product().envelope();
            for field in [names.appid, names.nonce, names.timestamp, names.signature] {
                assert!(fields.contains_key(field), "{name}: no {field}");
            }
            if let Some(event) = names.event {
                let sent = fields[event].as_str().unwrap();
                assert!(
                    spec.any_name || sent == name || spec.aliases.contains(&sent),
                    "{name}: its sample is {sent}'s"
                );
            }
            kind.check_fields(&mut fields, false)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(kind.key(&fields).is_ok(), "{name}: no key");
        }
    }

    /// `docs/callbacks.md` lists every catalogued event with the page its row names.
    #[test]
    fn docs_callbacks_lists_every_event_with_its_page() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/callbacks.md");
        let doc = std::fs::read_to_string(path).expect("docs/callbacks.md");
        for kind in EventKind::all() {
            let (name, url) = (kind.name(), kind.spec().page_url());
            // The event's own row: its name in the first cell, its page in the second.
            let row = doc
                .lines()
                .find(|l| {
                    let cells: Vec<&str> = l.split(" | ").collect();
                    let first = if kind.spec().any_name {
                        "every `Event`".to_string()
                    } else {
                        format!("`{name}`")
                    };
                    cells.len() >= 7 && cells[0].contains(&first) && cells[1].contains(&url)
                })
                .unwrap_or_else(|| panic!("{name}: no row of its own naming {url}"));
            let source = format!("| {} ", kind.spec().sample.source());
            assert!(
                row.contains(&source),
                "{name}: sample {source:?} not in {row}"
            );
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
