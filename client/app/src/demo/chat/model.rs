//! The chat panel's state and every rule it follows, without a browser:
//! which events belong to the room, what the transcript keeps, who is
//! typing (and for how long that lasts), and how members are named.

use std::collections::HashMap;

use herald_shared::events::{ChatMessage, Presence, Typing};

/// Lines the transcript keeps.
const KEEP: usize = 100;
/// How long "… is typing" lasts without news (the sender repeats it every
/// 2 s while typing).
pub const TYPING_MS: f64 = 4000.0;

/// One line of the transcript.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    pub seq: u64,
    /// `message`, `joined` or `left` (its CSS class is `chat-<kind>`).
    pub kind: &'static str,
    pub who: String,
    pub text: String,
}

/// See the module docs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Room {
    /// The room this page is in, if any.
    pub joined: Option<String>,
    pub lines: Vec<Line>,
    /// Who is in the room (user ids, oldest connection first), as the
    /// server's presence says.
    pub members: Vec<String>,
    /// The names events gave users: user id → name.
    names: HashMap<String, String>,
    /// Who is typing (user id, name), until when (ms).
    typing: Vec<(String, String, f64)>,
    next: u64,
}

impl Room {
    /// In `room` now: a new transcript.
    pub fn join(&mut self, room: &str, me: &str, my_name: &str) {
        *self = Room {
            joined: Some(room.to_owned()),
            next: self.next,
            ..Room::default()
        };
        self.names.insert(me.to_owned(), my_name.to_owned());
    }

    /// Out of the room.
    pub fn leave(&mut self) {
        self.joined = None;
        self.members.clear();
        self.typing.clear();
    }

    fn here(&self, room: &str) -> bool {
        self.joined.as_deref() == Some(room)
    }

    fn push(&mut self, kind: &'static str, who: &str, text: &str) {
        self.lines.push(Line {
            seq: self.next,
            kind,
            who: who.to_owned(),
            text: text.to_owned(),
        });
        self.next += 1;
        if self.lines.len() > KEEP {
            self.lines.remove(0);
        }
    }

    /// A message (another room's, or one from before joining, is not ours).
    pub fn message(&mut self, m: &ChatMessage) {
        if self.here(&m.room_id) {
            self.names.insert(m.user_id.clone(), m.username.clone());
            self.typing.retain(|(uid, ..)| *uid != m.user_id);
            self.push("message", &m.username, &m.message);
        }
    }

    /// Someone joined: said in the transcript.
    pub fn joined_by(&mut self, p: &Presence) {
        if self.here(&p.room_id) {
            self.names.insert(p.user_id.clone(), p.username.clone());
            self.push("joined", &p.username, "joined");
        }
    }

    /// Someone left.
    pub fn left_by(&mut self, p: &Presence) {
        if self.here(&p.room_id) {
            self.typing.retain(|(uid, ..)| *uid != p.user_id);
            self.push("left", &p.username, "left");
        }
    }

    /// A typing indicator at `now` (ms); this page's own are not shown.
    pub fn typing(&mut self, t: &Typing, me: &str, now: f64) {
        if !self.here(&t.room_id) || t.user_id == me {
            return;
        }
        self.typing.retain(|(uid, ..)| *uid != t.user_id);
        if t.is_typing {
            self.typing
                .push((t.user_id.clone(), t.username.clone(), now + TYPING_MS));
        }
    }

    /// "alice is typing…" while someone's indicator lasts at `now`.
    pub fn typing_line(&self, now: f64) -> Option<String> {
        self.typing
            .iter()
            .find(|(.., until)| *until > now)
            .map(|(_, name, _)| format!("{name} is typing…"))
    }

    /// Who is in `room`, from the server (ignored once out of it).
    pub fn set_members(&mut self, room: &str, user_ids: Vec<String>) {
        if self.here(room) {
            self.members = user_ids;
        }
    }

    /// The members as the panel lists them: their names (the user id of
    /// one whose name no event gave yet), this page's user marked.
    pub fn member_labels(&self, me: &str) -> Vec<String> {
        self.members
            .iter()
            .map(|uid| {
                let name = self.names.get(uid).unwrap_or(uid);
                if uid == me {
                    format!("{name} (you)")
                } else {
                    name.clone()
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn presence(room: &str, uid: &str, name: &str) -> Presence {
        Presence {
            room_id: room.into(),
            user_id: uid.into(),
            username: name.into(),
            timestamp: String::new(),
        }
    }

    fn message(room: &str, uid: &str, name: &str, text: &str) -> ChatMessage {
        ChatMessage {
            id: "m".into(),
            room_id: room.into(),
            user_id: uid.into(),
            username: name.into(),
            message: text.into(),
            timestamp: String::new(),
        }
    }

    fn typing(uid: &str, name: &str, on: bool) -> Typing {
        Typing {
            room_id: "lobby".into(),
            user_id: uid.into(),
            username: name.into(),
            is_typing: on,
        }
    }

    #[test]
    fn only_the_rooms_events_make_lines_and_names() {
        let mut room = Room::default();
        room.message(&message("lobby", "u-b", "bob", "before joining"));
        room.join("lobby", "u-a", "alice");
        room.joined_by(&presence("lobby", "u-b", "bob"));
        room.message(&message("other", "u-c", "carol", "elsewhere"));
        room.message(&message("lobby", "u-b", "bob", "hi"));
        let lines: Vec<String> = room
            .lines
            .iter()
            .map(|l| format!("{} {} {}", l.kind, l.who, l.text))
            .collect();
        assert_eq!(lines, ["joined bob joined", "message bob hi"]);
        room.set_members("lobby", vec!["u-a".into(), "u-b".into(), "u-z".into()]);
        assert_eq!(room.member_labels("u-a"), ["alice (you)", "bob", "u-z"]);
        room.set_members("other", vec![]);
        assert_eq!(room.members.len(), 3, "another room's presence is not ours");
    }

    #[test]
    fn typing_expires_stops_with_a_message_and_is_never_ones_own() {
        let mut room = Room::default();
        room.join("lobby", "u-a", "alice");
        room.typing(&typing("u-a", "alice", true), "u-a", 0.0);
        assert_eq!(room.typing_line(0.0), None, "one's own");
        room.typing(&typing("u-b", "bob", true), "u-a", 1000.0);
        assert_eq!(room.typing_line(1000.0).as_deref(), Some("bob is typing…"));
        assert_eq!(room.typing_line(1000.0 + TYPING_MS), None, "expired");
        room.typing(&typing("u-b", "bob", true), "u-a", 6000.0);
        room.message(&message("lobby", "u-b", "bob", "done"));
        assert_eq!(room.typing_line(6001.0), None, "a message ends it");
        room.typing(&typing("u-b", "bob", true), "u-a", 7000.0);
        room.typing(&typing("u-b", "bob", false), "u-a", 7001.0);
        assert_eq!(room.typing_line(7002.0), None, "said it stopped");
    }

    #[test]
    fn leaving_keeps_the_transcript_and_forgets_the_room() {
        let mut room = Room::default();
        room.join("lobby", "u-a", "alice");
        room.message(&message("lobby", "u-b", "bob", "hi"));
        room.set_members("lobby", vec!["u-a".into()]);
        room.leave();
        assert_eq!(
            (room.joined.clone(), room.members.len(), room.lines.len()),
            (None, 0, 1)
        );
        room.message(&message("lobby", "u-b", "bob", "after"));
        assert_eq!(room.lines.len(), 1);
        // Joining again starts a new transcript, with new line numbers.
        room.join("lobby", "u-a", "alice");
        room.message(&message("lobby", "u-b", "bob", "again"));
        assert_eq!(room.lines.len(), 1);
        assert_eq!(room.lines[0].seq, 1);
    }
}
