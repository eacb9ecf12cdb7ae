import { test, expect, type Page } from "@playwright/test";
import { spawn, type ChildProcess } from "node:child_process";
import net from "node:net";
import path from "node:path";
import { feedItems, stop } from "./helpers";

// Two Herald nodes sharing one real redis-server (no persistence), all
// owned by this file: started here, killed at the end.
const redisPort = Number(process.env.HERALD_E2E_REDIS_PORT ?? 3219);
const ports = [3102, 3103];
const base = (port: number) => `http://127.0.0.1:${port}`;
const bin = path.resolve(process.cwd(), process.env.HERALD_SERVER_BIN ?? "../target/release/herald-server");
const running: ChildProcess[] = [];

function startRedis(): ChildProcess {
  const child = spawn(
    "redis-server",
    ["--port", String(redisPort), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
    { stdio: "ignore" },
  );
  running.push(child);
  return child;
}

function startNode(port: number): ChildProcess {
  const args = ["--addr", `127.0.0.1:${port}`, "--heartbeat-secs", "2", "--retry-ms", "200", "--job-step-ms", "600"];
  const child = spawn(bin, args, {
    cwd: path.resolve(process.cwd(), ".."),
    env: {
      ...process.env,
      LEPTOS_SITE_ADDR: `127.0.0.1:${port}`,
      HERALD_DEV: "1",
      HERALD_REDIS_URL: `redis://127.0.0.1:${redisPort}`,
    },
    stdio: "ignore",
  });
  running.push(child);
  return child;
}

async function waitFor(check: () => Promise<boolean>, what: string) {
  for (let i = 0; i < 300; i++) {
    if (await check().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${what} did not come up`);
}

const redisUp = () =>
  new Promise<boolean>((resolve) => {
    const socket = net.connect(redisPort, "127.0.0.1", () => {
      socket.end();
      resolve(true);
    });
    socket.on("error", () => resolve(false));
  });

let nodes: ChildProcess[] = [];

test.beforeAll(async () => {
  startRedis();
  await waitFor(redisUp, "redis-server");
  nodes = ports.map(startNode);
  for (const port of ports) {
    await waitFor(async () => (await fetch(`${base(port)}/healthz`)).ok, `node ${port}`);
  }
});

test.afterAll(async () => {
  for (const child of running.reverse()) await stop(child);
});

async function openOn(page: Page, port: number) {
  await page.goto(`${base(port)}/sse-demo`);
  await expect(page.getByTestId("state")).toHaveText("connected");
  await expect(page.getByTestId("client-id")).not.toHaveText("(not connected)");
}

test("two nodes + Redis: two pages on different nodes chat", async ({ browser }) => {
  const alice = await (await browser.newContext()).newPage();
  const bob = await (await browser.newContext()).newPage();
  await openOn(alice, ports[0]);
  await openOn(bob, ports[1]);
  for (const [page, name] of [[alice, "alice"], [bob, "bob"]] as const) {
    await page.getByTestId("chat-room").fill("cluster");
    await page.getByTestId("chat-name").fill(name);
  }
  await bob.getByTestId("chat-join").click();
  await expect(bob.getByTestId("chat-joined")).toHaveText("in room:cluster");
  await alice.getByTestId("chat-join").click();
  await expect(bob.getByTestId("chat-lines")).toContainText("alice joined");
  // Presence spans the nodes: each page lists both connections.
  await expect(bob.getByTestId("chat-presence-count")).toHaveText("In the room: 2");
  await expect(bob.getByTestId("chat-presence")).toContainText("alice");
  await expect(alice.getByTestId("chat-presence-count")).toHaveText("In the room: 2");

  await alice.getByTestId("chat-draft").fill("hi from node A");
  await alice.getByTestId("chat-send").click();
  await expect(bob.getByTestId("chat-lines")).toContainText("alice: hi from node A");
  await bob.getByTestId("chat-draft").fill("hello from node B");
  await bob.getByTestId("chat-draft").press("Enter");
  await expect(alice.getByTestId("chat-lines")).toContainText("bob: hello from node B");
  await bob.screenshot({ path: "test-results/artifacts/cluster-chat.png", fullPage: true });
});

test("with Redis history, events published while the page's node was down arrive in order, once", async ({ page }) => {
  await openOn(page, ports[0]);
  const publish = (message: string) =>
    fetch(`${base(ports[1])}/_sse/publish`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ event: "notification", data: { message } }),
    });
  expect((await publish("before")).status).toBe(200);
  await expect(feedItems(page, "notification").first()).toContainText("before");

  await stop(nodes[0]); // the page's node dies
  await expect(page.getByTestId("state")).toHaveText("connecting");
  for (const n of [1, 2, 3]) expect((await publish(`while away ${n}`)).status).toBe(200);

  nodes[0] = startNode(ports[0]); // it comes back; the page resumes from its last id
  await expect(page.getByTestId("state")).toHaveText("connected", { timeout: 20_000 });
  await expect(feedItems(page, "notification").first()).toContainText("while away 3");
  const texts = await feedItems(page, "notification").allInnerTexts();
  const seen = texts.map((t) => t.match(/before|while away \d/)?.[0]).filter(Boolean);
  // Newest first in the feed: each event once, in publish order.
  expect(seen).toEqual(["while away 3", "while away 2", "while away 1", "before"]);
  await expect(page.getByTestId("reset-notice")).toHaveCount(0);
});

// The documented demo token (dev mode): base64 of `test123:testuser:test@example.com:user,admin`.
const demoToken = "dGVzdDEyMzp0ZXN0dXNlcjp0ZXN0QGV4YW1wbGUuY29tOnVzZXIsYWRtaW4=";

test("two nodes + Redis: a job created on node A is watched to its end by a browser EventSource on node B", async ({ page }) => {
  const created = await fetch(`${base(ports[0])}/api/v1/characters`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${demoToken}` },
    body: JSON.stringify({ name: "Cluster Hero" }),
  });
  expect(created.status).toBe(202);
  const { jobId, streamUrl } = await created.json();

  await page.goto(`${base(ports[1])}/healthz`);
  // A plain EventSource, as seed 003's clients use: every message until
  // the stream ends; its reconnect then gets 204 and the source closes.
  const seen: any[] = await page.evaluate(
    ({ url }) =>
      new Promise((resolve, reject) => {
        const messages: any[] = [];
        const source = new EventSource(url);
        source.onmessage = (e) => messages.push({ id: e.lastEventId, ...JSON.parse(e.data) });
        source.onerror = () => {
          if (source.readyState === EventSource.CLOSED) resolve(messages);
        };
        setTimeout(() => reject(new Error(`timed out after ${JSON.stringify(messages)}`)), 20_000);
      }),
    { url: `${streamUrl}?token=${demoToken}` },
  );
  expect(seen[0]).toMatchObject({ type: "connected", jobId });
  expect(seen[1]).toMatchObject({ type: "initial_status", jobId });
  const progress = seen.slice(1).map((m) => m.progress);
  expect([...progress].sort((a, b) => a - b)).toEqual(progress);
  const last = seen[seen.length - 1];
  expect(last).toMatchObject({ type: "job_update", status: "completed", progress: 100 });
  expect(last.result.name).toBe("Cluster Hero");
  // Each update once.
  const ids = seen.slice(1).map((m) => m.id);
  expect(new Set(ids).size).toBe(ids.length);
});
