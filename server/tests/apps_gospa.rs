//! GoSPA's routes are the broker's own `/_sse` routes: this checks their
//! JSON shapes against what GoSPA clients read (`{success, topics}` from
//! subscribe/unsubscribe, `{clientCount}` from stats), field for field.

mod common;

use common::{post_json, quiet_config, TestServer};
use serde_json::json;

#[tokio::test]
async fn subscribe_unsubscribe_and_stats_answer_gospa_shapes() {
    let server = TestServer::start(quiet_config()).await;
    let (_stream, hello) = server.connect("?clientId=gospa-1").await;
    let secret = hello["secret"].as_str().expect("secret");

    let (status, body) = post_json(
        &server.url("/_sse/subscribe"),
        &json!({"clientId": "gospa-1", "topics": ["news", "sports"], "secret": secret}),
    )
    .await;
    assert_eq!(status, 200);
    // GoSPA answers with the topics of the request.
    assert_eq!(body["success"], true);
    assert_eq!(body["topics"], json!(["news", "sports"]));
    // Herald adds every topic the connection is on now.
    let held: Vec<&str> = body["held"]
        .as_array()
        .expect("held is an array")
        .iter()
        .map(|t| t.as_str().expect("topic names are strings"))
        .collect();
    assert!(
        held.contains(&"news") && held.contains(&"sports"),
        "{held:?}"
    );

    let (status, body) = post_json(
        &server.url("/_sse/unsubscribe"),
        &json!({"clientId": "gospa-1", "topics": ["sports"], "secret": secret}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["success"], true);
    assert_eq!(body["topics"], json!(["sports"]));
    assert!(!body["held"]
        .as_array()
        .expect("held")
        .contains(&json!("sports")));

    let stats: serde_json::Value = reqwest::get(server.url("/_sse/stats"))
        .await
        .expect("stats")
        .json()
        .await
        .expect("JSON");
    assert_eq!(stats["clientCount"], 1);
}
