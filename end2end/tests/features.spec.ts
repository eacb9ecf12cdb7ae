import { test, expect } from "@playwright/test";
import { applySettings, feedItems, openDemo, sendNotification } from "./helpers";

test("a broadcast reaches another browser; a targeted send reaches only its target", async ({ browser }) => {
  const a = await (await browser.newContext()).newPage();
  const b = await (await browser.newContext()).newPage();
  await openDemo(a);
  await openDemo(b);

  await sendNotification(a, "everyone", "hello everyone");
  await expect(feedItems(b, "notification").first()).toContainText("hello everyone");

  await sendNotification(a, "me", "just for a");
  await expect(feedItems(a, "notification").first()).toContainText("just for a");

  // A later broadcast that B receives proves B has seen everything before it.
  await sendNotification(a, "everyone", "marker");
  await expect(feedItems(b, "notification").first()).toContainText("marker");
  await expect(b.locator(".feed-item", { hasText: "just for a" })).toHaveCount(0);
  await a.screenshot({ path: "test-results/artifacts/demo-sent.png", fullPage: true });
});

test("a send to my user reaches every tab of this browser and no other browser", async ({ browser }) => {
  const mine = await browser.newContext();
  const a = await mine.newPage();
  const b = await mine.newPage();
  const other = await (await browser.newContext()).newPage();
  await openDemo(a);
  await openDemo(b);
  await openDemo(other);
  // Tabs of one browser share the demo user; another browser is another user.
  const user = await a.getByTestId("user-id").innerText();
  expect(user).toMatch(/^visitor-/);
  await expect(b.getByTestId("user-id")).toHaveText(user);
  await expect(other.getByTestId("user-id")).not.toHaveText(user);

  await sendNotification(a, "user", "to all my tabs");
  await expect(feedItems(a, "notification").first()).toContainText("to all my tabs");
  await expect(feedItems(b, "notification").first()).toContainText("to all my tabs");
  await sendNotification(a, "everyone", "marker");
  await expect(feedItems(other, "notification").first()).toContainText("marker");
  await expect(other.locator(".feed-item", { hasText: "to all my tabs" })).toHaveCount(0);
});

test("subscribing to a topic delivers its events; unsubscribing stops them", async ({ page }) => {
  await openDemo(page);
  const publish = (message: string) =>
    page.request.post("/_sse/publish", {
      data: { topic: "room:e2e", event: "notification", data: { message } },
    });

  await page.getByTestId("topic-name").fill("room:e2e");
  await page.getByTestId("topic-subscribe").click();
  await expect(page.getByTestId("topics")).toContainText("room:e2e");
  expect((await publish("while subscribed")).status()).toBe(200);
  await expect(feedItems(page, "notification").first()).toContainText("while subscribed");

  await page.getByTestId("topic-unsubscribe").click();
  await expect(page.getByTestId("topics")).not.toContainText("room:e2e");
  expect((await publish("after leaving")).status()).toBe(200);
  await sendNotification(page, "me", "marker");
  await expect(feedItems(page, "notification").first()).toContainText("marker");
  await expect(page.locator(".feed-item", { hasText: "after leaving" })).toHaveCount(0);
});

test("with the server unreachable, exhausted retries end in Error, then only a slow retry", async ({ page }) => {
  await openDemo(page);
  await applySettings(page, { "cfg-max-retries": "2", "cfg-delay": "100" });

  // Attempts are the EventSource's requests (each failed one is asked
  // once more with fetch, to learn why: not counted).
  let attempts = 0;
  page.on("request", (r) => {
    if (r.url().includes("/_sse/connect") && r.resourceType() === "eventsource") attempts++;
  });
  await page.route("**/_sse/connect**", (route) => route.abort("connectionrefused"));
  await page.getByTestId("connection-reconnect").click();

  await expect(page.getByTestId("state")).toHaveText("error");
  // Said, and not given up: a try a minute (or when the browser is back).
  await expect(page.getByTestId("retry")).toContainText("retries exhausted; trying again every 60 s");
  expect(attempts).toBe(3); // the first try and two retries
  const settled = attempts;
  await page.waitForTimeout(1500);
  expect(attempts).toBe(settled);
  // The timeline showed the growing delays on the way (100 ms base, x2,
  // up to 20 % jitter taken off).
  const retries = await page.locator('.timeline li[data-kind="retry"]').allInnerTexts();
  const delays = retries.reverse().map((t) => Number(/in (\d+) ms/.exec(t)?.[1]));
  // Two fast retries, then the slow one.
  expect(delays).toHaveLength(3);
  expect(delays[2]).toBe(60_000);
  expect(delays[0]).toBeGreaterThanOrEqual(80);
  expect(delays[0]).toBeLessThanOrEqual(100);
  expect(delays[1]).toBeGreaterThanOrEqual(160);
  expect(delays[1]).toBeLessThanOrEqual(200);
  await page.screenshot({ path: "test-results/artifacts/demo-error.png", fullPage: true });
});

test("the client keeps to the heartbeat interval its server announces", async ({ page }) => {
  await openDemo(page);
  // The suite's server beats every 2 s and says so in `connected`; a client
  // configured to expect one every 300 ms (2 missed = dead) goes by the
  // server's word: 5 s later it is still on its first connection.
  // (Silence itself is detected: the runtime's browser tests.)
  await applySettings(page, { "cfg-heartbeat": "300", "cfg-missed": "2" });
  await page.getByTestId("connection-reconnect").click();
  await expect(page.getByTestId("state")).toHaveText("connected");
  const connected = page.locator('.timeline li[data-kind="state"][data-state="connected"]');
  const before = await connected.count();
  await page.waitForTimeout(5_000);
  await expect(connected).toHaveCount(before);
  await expect(page.getByTestId("state")).toHaveText("connected");
});

test("the system status panel is fed by the public status stream", async ({ page }) => {
  await openDemo(page);
  await expect(page.getByTestId("status-status")).toHaveText("healthy");
  // This page holds two streams (its own and the status stream).
  await expect(page.getByTestId("status-connections")).not.toHaveText("…");
  expect(Number(await page.getByTestId("status-connections").innerText())).toBeGreaterThanOrEqual(2);
});

test("invalid JSON in the custom sender shows the server's error and sends nothing", async ({ page }) => {
  await openDemo(page);
  await page.getByTestId("custom-name").fill("broken-event");
  await page.getByTestId("custom-json").fill("{not json");
  await page.getByTestId("send-custom").click();
  await expect(page.getByTestId("send-error")).toContainText("400");

  // Valid JSON goes through under the same name, and it is the only one
  // of that name to arrive: the rejected one was never published. (The
  // server-wide counter is no proof: the status stream publishes meanwhile.)
  await page.getByTestId("custom-json").fill('{"ok": true}');
  await page.getByTestId("send-custom").click();
  await expect(page.getByTestId("send-ok")).toBeVisible();
  await expect(feedItems(page, "broken-event")).toHaveCount(1);
  await expect(feedItems(page, "broken-event")).toContainText('"ok": true');
});

test("chat between two browsers, with joined, typing and left", async ({ browser }) => {
  const alice = await (await browser.newContext()).newPage();
  const bob = await (await browser.newContext()).newPage();
  for (const [page, name] of [[alice, "alice"], [bob, "bob"]] as const) {
    await openDemo(page);
    await page.getByTestId("chat-room").fill("e2e-chat");
    await page.getByTestId("chat-name").fill(name);
  }
  await bob.getByTestId("chat-join").click();
  await expect(bob.getByTestId("chat-joined")).toHaveText("in room:e2e-chat");
  await alice.getByTestId("chat-join").click();
  await expect(bob.getByTestId("chat-lines")).toContainText("alice joined");
  // Who is in the room comes from the server's presence.
  await expect(bob.getByTestId("chat-presence-count")).toHaveText("In the room: 2");
  await expect(bob.getByTestId("chat-presence")).toContainText("bob (you)");
  await expect(bob.getByTestId("chat-presence")).toContainText("alice");
  await expect(alice.getByTestId("chat-presence-count")).toHaveText("In the room: 2");

  await alice.getByTestId("chat-draft").fill("hi bob");
  await expect(bob.getByTestId("chat-typing")).toHaveText("alice is typing…");
  await alice.getByTestId("chat-send").click();
  await expect(bob.getByTestId("chat-lines")).toContainText("alice: hi bob");
  await expect(alice.getByTestId("chat-lines")).toContainText("alice: hi bob");

  await bob.getByTestId("chat-draft").fill("hello alice");
  await bob.getByTestId("chat-draft").press("Enter");
  await expect(alice.getByTestId("chat-lines")).toContainText("bob: hello alice");

  // Alice learnt bob's name from his message.
  await expect(alice.getByTestId("chat-presence").locator("li")).toHaveCount(2);
  await expect(alice.getByTestId("chat-presence")).toContainText("bob");
  await expect(alice.getByTestId("chat-presence")).toContainText("alice (you)");

  await alice.getByTestId("chat-leave").click();
  await expect(bob.getByTestId("chat-lines")).toContainText("alice left");
  await expect(bob.getByTestId("chat-presence").locator("li")).toHaveText(["bob (you)"]);
  await expect(alice.getByTestId("chat-presence")).toBeEmpty();
  await bob.screenshot({ path: "test-results/artifacts/demo-chat.png", fullPage: true });
});
