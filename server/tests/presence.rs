//! `GET /_sse/presence?topic=`: who is on a topic, asked of a
//! production-mode server (an HS256 secret, dev mode off). Across nodes
//! sharing Redis: `tests/redis.rs`.

mod common;

use common::{quiet_config, read_json, TestServer};
use herald_server::auth::Verifier;
use herald_server::state::AppState;
use serde_json::{json, Value};

const SECRET: &[u8] = b"presence test secret, comfortably longer than 32 bytes";

async fn production() -> TestServer {
    TestServer::start_with_state(quiet_config(), None, |b| {
        AppState::with_auth(b, Verifier::hs256(SECRET))
    })
    .await
}

fn token(sub: &str) -> String {
    Verifier::hs256(SECRET)
        .mint(sub, 600, None, None)
        .expect("mint")
}

/// GETs the presence of `topic` as `bearer` (anonymous without).
async fn presence(server: &TestServer, topic: &str, bearer: Option<&str>) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .get(server.url("/_sse/presence"))
        .query(&[("topic", topic)]);
    if let Some(t) = bearer {
        req = req.bearer_auth(t);
    }
    read_json(req.send().await.expect("presence")).await
}

/// The client ids a presence answer shows (only the asker's own).
fn client_ids(body: &Value) -> Vec<String> {
    body["members"]
        .as_array()
        .expect("members")
        .iter()
        .filter_map(|m| m["clientId"].as_str().map(str::to_owned))
        .collect()
}

/// The user ids a presence answer shows, in its order.
fn user_ids(body: &Value) -> Vec<String> {
    body["members"]
        .as_array()
        .expect("members")
        .iter()
        .filter_map(|m| m["userId"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn presence_lists_who_asked_for_a_topic_and_follows_them_out() {
    let server = production().await;
    let (alice, bob) = (token("alice"), token("bob"));
    let auth = |t: &str| format!("Bearer {t}");
    let (alice_stream, alice_hi) = server
        .connect_as(
            "?topics=chat:lobby",
            None,
            &[("authorization", &auth(&alice))],
        )
        .await;
    let (_bob_stream, bob_hi) = server
        .connect_as(
            "?topics=chat:lobby,chat:*",
            None,
            &[("authorization", &auth(&bob))],
        )
        .await;
    let (_other_tab, other_hi) = server
        .connect_as("?topics=news", None, &[("authorization", &auth(&alice))])
        .await;

    // A chat room shows its readers who is in it: user ids, and the
    // asker's own client id only.
    let (status, body) = presence(&server, "chat:lobby", Some(&bob)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["topic"], "chat:lobby");
    assert_eq!(body["count"], 2);
    assert_eq!(body["users"], 2);
    let mut users = user_ids(&body);
    users.sort();
    assert_eq!(users, ["alice", "bob"]);
    assert_eq!(client_ids(&body), [bob_hi["clientId"].as_str().unwrap()]);
    assert!(!body
        .to_string()
        .contains(alice_hi["clientId"].as_str().unwrap()));
    let members = body["members"].as_array().unwrap();
    // Oldest first (two connections may open in the same millisecond).
    assert!(
        members[0]["since"].as_u64() <= members[1]["since"].as_u64(),
        "{body}"
    );
    let alices = members
        .iter()
        .find(|m| m["userId"] == "alice")
        .expect("alice is listed");
    assert_eq!(alices["node"], server.broker.node_id());
    assert!(alices["since"]
        .as_u64()
        .is_some_and(|ms| ms > 1_700_000_000_000));
    assert!(
        alices.get("serial").is_none() && alices.get("clientId").is_none(),
        "{alices}"
    );

    // Following `chat:*` is not being in every room; assigned topics and
    // other topics do not count either.
    let (_, general) = presence(&server, "chat:general", Some(&bob)).await;
    assert_eq!(general["count"], 0);
    let (_, news) = presence(&server, "news", Some(&alice)).await;
    assert_eq!(news["count"], 1);
    assert_eq!(client_ids(&news), [other_hi["clientId"].as_str().unwrap()]);

    // Out by unsubscribing, and by closing the stream.
    let (status, _) = common::post_json(
        &server.url("/_sse/unsubscribe"),
        &json!({"clientId": bob_hi["clientId"], "secret": bob_hi["secret"], "topics": ["chat:lobby"]}),
    )
    .await;
    assert_eq!(status, 200);
    let (_, body) = presence(&server, "chat:lobby", Some(&bob)).await;
    assert_eq!(
        (body["count"].clone(), user_ids(&body)),
        (json!(1), vec!["alice".to_owned()])
    );
    drop(alice_stream);
    server.wait_for_clients_after_broadcast(2).await;
    let (_, body) = presence(&server, "chat:lobby", Some(&bob)).await;
    assert_eq!(body["count"], 0, "{body}");
}

#[tokio::test]
async fn strangers_get_counts_and_never_a_client_id() {
    let server = production().await;
    let alice = token("alice");
    let (_alice_stream, alice_hi) = server
        .connect_as(
            "?topics=avatar:updates",
            None,
            &[("authorization", &format!("Bearer {alice}"))],
        )
        .await;
    let (anon_stream, anon_hi) = server.connect("?topics=avatar:updates").await;
    let cookie = anon_stream.session_cookie().expect("a session was issued");
    let alice_id = alice_hi["clientId"].as_str().unwrap();
    let anon_id = anon_hi["clientId"].as_str().unwrap();

    // Anonymous, with no connection of its own: counts only.
    let (status, body) = presence(&server, "avatar:updates", None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["count"].clone(), body["users"].clone()),
        (json!(2), json!(1))
    );
    assert_eq!(body["members"], json!([]), "{body}");
    for secret in [alice_id, anon_id, "alice"] {
        assert!(!body.to_string().contains(secret), "{body}");
    }

    // The anonymous viewer's own connection, by its session cookie: its
    // own client id, nobody else's.
    let resp = reqwest::Client::new()
        .get(server.url("/_sse/presence?topic=avatar:updates"))
        .header("cookie", cookie)
        .send()
        .await
        .expect("presence");
    let (_, body) = read_json(resp).await;
    assert_eq!(client_ids(&body), [anon_id]);
    assert!(!body.to_string().contains(alice_id), "{body}");

    // A signed-in reader without a publish claim: counts and her own.
    let (_, body) = presence(&server, "avatar:updates", Some(&alice)).await;
    assert_eq!(client_ids(&body), [alice_id]);
    assert_eq!(user_ids(&body), ["alice"]);

    // A service that may publish there sees who (user ids), still no
    // client id but its own.
    let service = Verifier::hs256(SECRET)
        .mint("svc", 600, None, Some(vec!["avatar:*".into()]))
        .expect("mint");
    let (_, body) = presence(&server, "avatar:updates", Some(&service)).await;
    assert_eq!(body["members"].as_array().map(Vec::len), Some(2), "{body}");
    assert_eq!(user_ids(&body), ["alice"]);
    assert!(client_ids(&body).is_empty(), "{body}");
}

#[tokio::test]
async fn presence_is_refused_to_whoever_may_not_subscribe_and_says_nothing_of_the_topic() {
    let server = production().await;
    let alice = token("alice");
    let (_stream, hi) = server
        .connect_as(
            "?topics=chat:secret-plans,jobs:alice",
            None,
            &[("authorization", &format!("Bearer {alice}"))],
        )
        .await;
    let id = hi["clientId"].as_str().unwrap().to_owned();
    let mallory = token("mallory");
    for (topic, bearer, status) in [
        ("chat:secret-plans", None, 401),
        ("jobs:alice", Some(mallory.as_str()), 403),
        ("jobs:alice", None, 401),
        // Assigned topics are nobody's to list.
        (&*format!("client:{id}"), Some(mallory.as_str()), 403),
        ("user:alice", Some(alice.as_str()), 403),
    ] {
        let (got, body) = presence(&server, topic, bearer).await;
        assert_eq!(got, status, "{topic}: {body}");
        assert!(body["error"].is_string(), "{body}");
        // Nothing about who is there (an echo of the asked name aside).
        assert!(body.get("members").is_none() && body.get("count").is_none());
        assert!(
            topic.contains(&id) || !body.to_string().contains(&id),
            "{body}"
        );
    }
    // The owner sees her own topic.
    let (status, body) = presence(&server, "jobs:alice", Some(&alice)).await;
    assert_eq!((status, body["count"].clone()), (200, json!(1)));
}

#[tokio::test]
async fn bad_presence_requests_get_json_errors() {
    let server = production().await;
    for query in [
        "",
        "?topic=",
        "?topic=chat:*",
        "?topic=a%20b",
        "?topic=x&topic=y",
    ] {
        let resp = reqwest::get(server.url(&format!("/_sse/presence{query}")))
            .await
            .expect("request");
        let (status, body) = read_json(resp).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert!(body["error"].is_string(), "{query}: {body}");
    }
}
