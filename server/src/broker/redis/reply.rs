//! Reading Redis replies: stream entries, `XREAD`'s shapes (RESP2 and
//! RESP3), `XINFO` fields and the replay script's answer.

use redis::Value;

use crate::broker::backplane::BackplaneError;

pub(super) type Fields = Vec<(Vec<u8>, Vec<u8>)>;
/// A stream's entries: `(entry id, fields)`.
pub(super) type Entries = Vec<(String, Fields)>;

pub(super) fn bytes_of(v: &Value) -> Option<&[u8]> {
    match v {
        Value::BulkString(b) => Some(b),
        Value::SimpleString(s) => Some(s.as_bytes()),
        _ => None,
    }
}

pub(super) fn string_of(v: &Value) -> Option<String> {
    match v {
        Value::Int(i) => Some(i.to_string()),
        other => bytes_of(other).and_then(|b| String::from_utf8(b.to_vec()).ok()),
    }
}

pub(super) fn field<'a>(fields: &'a Fields, name: &[u8]) -> Option<&'a [u8]> {
    fields
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_slice())
}

/// `[[id, [field, value, ...]], ...]` → entries.
pub(super) fn stream_entries(v: &Value) -> Entries {
    let Value::Array(items) = v else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|item| {
            let Value::Array(pair) = item else {
                return None;
            };
            let id = string_of(pair.first()?)?;
            let Value::Array(flat) = pair.get(1)? else {
                return None;
            };
            let fields = flat
                .chunks(2)
                .filter_map(|kv| Some((bytes_of(&kv[0])?.to_vec(), bytes_of(kv.get(1)?)?.to_vec())))
                .collect();
            Some((id, fields))
        })
        .collect()
}

/// `XREAD`'s reply (RESP2 array or RESP3 map) → `(key, entries)` per stream.
pub(super) fn xread_streams(v: &Value) -> Vec<(Vec<u8>, Entries)> {
    match v {
        Value::Array(streams) => streams
            .iter()
            .filter_map(|s| {
                let Value::Array(pair) = s else { return None };
                Some((
                    bytes_of(pair.first()?)?.to_vec(),
                    stream_entries(pair.get(1)?),
                ))
            })
            .collect(),
        Value::Map(streams) => streams
            .iter()
            .filter_map(|(k, v)| Some((bytes_of(k)?.to_vec(), stream_entries(v))))
            .collect(),
        _ => Vec::new(),
    }
}

/// A field of `XINFO STREAM`'s flat reply.
pub(super) fn info_field(v: &Value, name: &str) -> Option<String> {
    match v {
        Value::Array(flat) => flat
            .chunks(2)
            .find(|kv| bytes_of(&kv[0]) == Some(name.as_bytes()))
            .and_then(|kv| string_of(kv.get(1)?)),
        Value::Map(map) => map
            .iter()
            .find(|(k, _)| bytes_of(k) == Some(name.as_bytes()))
            .and_then(|(_, v)| string_of(v)),
        _ => None,
    }
}

/// The replay script's `{trimmed-through, entries}`.
pub(super) fn parse_replay(v: &Value) -> Result<(u64, Entries), BackplaneError> {
    let malformed = || BackplaneError("redis: malformed replay reply".to_owned());
    let Value::Array(parts) = v else {
        return Err(malformed());
    };
    let trimmed = string_of(parts.first().ok_or_else(malformed)?).ok_or_else(malformed)?;
    // An id `<epoch>-<seq>` (a stream's last deleted entry) or a plain
    // sequence number (the floor).
    let trimmed = match trimmed.split_once('-') {
        Some((_, seq)) => seq.parse().map_err(|_| malformed())?,
        None => trimmed.parse().map_err(|_| malformed())?,
    };
    Ok((trimmed, stream_entries(parts.get(1).ok_or_else(malformed)?)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn parses_stream_replies() {
        let entries = Value::Array(vec![Value::Array(vec![
            bulk("7-3"),
            Value::Array(vec![
                bulk("t"),
                bulk("news"),
                bulk("b"),
                bulk("data: x\n\n"),
            ]),
        ])]);
        let reply = Value::Array(vec![Value::Array(vec![
            bulk("herald:feed:0"),
            entries.clone(),
        ])]);
        let streams = xread_streams(&reply);
        assert_eq!(streams.len(), 1);
        let (id, fields) = &streams[0].1[0];
        assert_eq!(id, "7-3");
        assert_eq!(field(fields, b"t"), Some(&b"news"[..]));

        let replay = Value::Array(vec![bulk("7-2"), entries]);
        let (trimmed, got) = parse_replay(&replay).expect("parses");
        assert_eq!((trimmed, got.len()), (2, 1));
        let floor = Value::Array(vec![bulk("40"), Value::Array(vec![])]);
        assert_eq!(parse_replay(&floor).expect("parses").0, 40);
        assert!(parse_replay(&Value::Nil).is_err());

        let info = Value::Array(vec![
            bulk("length"),
            Value::Int(3),
            bulk("max-deleted-entry-id"),
            bulk("7-9"),
        ]);
        assert_eq!(
            info_field(&info, "max-deleted-entry-id").as_deref(),
            Some("7-9")
        );
        assert_eq!(info_field(&info, "length").as_deref(), Some("3"));
    }
}
