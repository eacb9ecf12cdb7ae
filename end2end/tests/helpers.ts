import { expect, type Page } from "@playwright/test";
import type { ChildProcess } from "node:child_process";

/** Opens the demo and waits until its stream is connected; returns the client id. */
export async function openDemo(page: Page): Promise<string> {
  await page.goto("/sse-demo");
  await expect(page.getByTestId("state")).toHaveText("connected");
  const id = page.getByTestId("client-id");
  await expect(id).not.toHaveText("(not connected)");
  return id.innerText();
}

/** Feed items of one event name. */
export const feedItems = (page: Page, name: string) => page.locator(`.feed-item[data-event="${name}"]`);

/** Sends a notification from the page's send panel. */
export async function sendNotification(page: Page, target: string, message: string) {
  await page.getByTestId("send-target").selectOption(target);
  await page.getByTestId("send-message").fill(message);
  await page.getByTestId("send-notification").click();
  await expect(page.getByTestId("send-ok")).toBeVisible();
}

/** Opens the settings, changes them, applies. */
export async function applySettings(page: Page, values: Record<string, string>) {
  await page.locator(".settings summary").click();
  for (const [testId, value] of Object.entries(values)) {
    await page.getByTestId(testId).fill(value);
  }
  await page.getByTestId("cfg-apply").click();
}

/** Waits until the Herald server at `base` answers `/healthz`. */
export async function waitUp(base: string) {
  for (let i = 0; i < 200; i++) {
    try {
      if ((await fetch(`${base}/healthz`)).ok) return;
    } catch {
      /* not yet */
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${base} did not come up`);
}

/** Kills a child process at once (a crash, not a shutdown) and waits for it. */
export async function stop(child: ChildProcess) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once("exit", r));
  child.kill("SIGKILL");
  await exited;
}
