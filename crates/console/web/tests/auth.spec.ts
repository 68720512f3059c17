import { request as apiRequest } from "@playwright/test";
import { MASTER_KEY, expect, expectAccessible, expectConsoleErrors, screenshot, signIn, test } from "./fixtures";

test("a wrong key cannot sign in, and the page says why", async ({ page, consoleErrors }) => {
  await page.goto("/ui/");
  await expectAccessible(page);
  await screenshot(page, "sign-in");
  await page.getByLabel("Key").fill("sk-not-the-master-key-0000");
  await page.getByRole("button", { name: "Sign in" }).click();
  await expect(page.getByText("wrong key")).toBeVisible();
  await expect(page.getByRole("button", { name: "Sign out" })).toHaveCount(0);
  // The refused sign-in (401) is the only thing in the console.
  expect(expectConsoleErrors(consoleErrors, /401/)).toHaveLength(1);
  const cookies = await page.context().cookies();
  expect(cookies.filter((c) => c.name === "vaultgate_session")).toEqual([]);
});

test("the master key signs in to an HttpOnly, SameSite=Strict session and out again", async ({ page }) => {
  await signIn(page);
  const [cookie] = (await page.context().cookies()).filter((c) => c.name === "vaultgate_session");
  expect(cookie.httpOnly).toBe(true);
  expect(cookie.sameSite).toBe("Strict");
  // The key itself is nowhere in the session.
  expect(cookie.value).not.toContain(MASTER_KEY);
  expect(await page.evaluate(() => document.cookie)).not.toContain("vaultgate_session");
  await page.reload();
  await expect(page.getByRole("button", { name: "Sign out" })).toBeVisible();
  await page.getByRole("button", { name: "Sign out" }).click();
  await expect(page.getByRole("button", { name: "Sign in" })).toBeVisible();
  await page.reload();
  await expect(page.getByRole("button", { name: "Sign in" })).toBeVisible();
});

test("the page is served with a strict policy and no inline script", async ({ page }) => {
  const response = await page.goto("/ui/");
  const csp = response?.headers()["content-security-policy"] ?? "";
  expect(csp).toContain("script-src 'self';");
  expect(csp).not.toContain("unsafe-inline");
  expect(csp).toContain("frame-ancestors 'none'");
  expect(await page.locator("script:not([src])").count()).toBe(0);
  // Nothing is loaded from anywhere but the gateway.
  const origins = await page.evaluate(() =>
    performance.getEntriesByType("resource").map((entry) => new URL(entry.name).origin),
  );
  expect(new Set(origins)).toEqual(new Set([new URL(page.url()).origin]));
});

test("the session works on the admin API only with its CSRF token, and never replaces a key", async ({ page, baseURL }) => {
  await signIn(page);
  const session = await page.request.get("/ui/api/session");
  const { csrf_token } = await session.json();
  // Reads need only the cookie.
  expect((await page.request.get("/key/list")).status()).toBe(200);
  // A change without the CSRF token is refused, with it allowed.
  const without = await page.request.post("/key/generate", { data: { key_alias: "csrf-probe" } });
  expect(without.status()).toBe(403);
  const withToken = await page.request.post("/key/generate", {
    data: { key_alias: "csrf-probe" },
    headers: { "X-CSRF-Token": csrf_token },
  });
  expect(withToken.status()).toBe(200);
  const created = await withToken.json();
  const deleted = await page.request.post("/key/delete", {
    data: { keys: [created.token] },
    headers: { "X-CSRF-Token": csrf_token },
  });
  expect(deleted.status()).toBe(200);
  // Without the cookie (another client), the same call is anonymous.
  const stranger = await apiRequest.newContext({ baseURL });
  expect((await stranger.get("/key/list")).status()).toBe(401);
  // A forged cookie is no session.
  const forged = await apiRequest.newContext({
    baseURL,
    extraHTTPHeaders: { Cookie: "vaultgate_session=v1.eyJzdWIiOnsia2luZCI6Im1hc3RlciJ9fQ.AAAA" },
  });
  expect((await forged.get("/key/list")).status()).toBe(401);
  // The session cookie is not a model key: model routes still want a key.
  const chat = await stranger.post("/v1/chat/completions", {
    headers: { Cookie: `vaultgate_session=${(await page.context().cookies())[0].value}` },
    data: { model: "gpt-a", messages: [{ role: "user", content: "hi" }] },
  });
  expect(chat.status()).toBe(401);
});
