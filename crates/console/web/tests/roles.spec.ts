import type { Page } from "@playwright/test";
import { MASTER_KEY, chat, expect, expectAccessible, screenshot, signIn, test } from "./fixtures";

const master = { Authorization: `Bearer ${MASTER_KEY}` };

/** A change through the admin API with the master key, as curl would make it. */
async function admin(page: Page, path: string, data: unknown) {
  const response = await page.request.post(path, { headers: master, data });
  expect(response.status(), `${path}: ${await response.text()}`).toBe(200);
  return response.json();
}

/** A user of `role` and the key made for them. */
async function user(page: Page, user_id: string, user_role: string): Promise<string> {
  return (await admin(page, "/user/new", { user_id, user_role })).key;
}

async function csrf(page: Page): Promise<string> {
  return (await (await page.request.get("/ui/api/session")).json()).csrf_token;
}

/** Every page a viewer can open shows no control that changes anything. */
const PAGES = ["Keys", "Teams", "Users", "Organizations", "Spend", "Models", "Vault"];
const CHANGES = /^(Create|Repair|Add$|Remove|Save|Delete|Block|Regenerate)/;

test("a viewer sees every page but no control that changes anything, and the API refuses", async ({ page }) => {
  await admin(page, "/organization/new", { organization_id: "o-view", organization_alias: "viewed-org" });
  await admin(page, "/team/new", { team_id: "t-view", team_alias: "viewed-team", organization_id: "o-view" });
  await admin(page, "/team/member_add", { team_id: "t-view", member: { user_id: "someone", role: "user" } });
  await admin(page, "/key/generate", { key_alias: "viewed-key", team_id: "t-view" });
  const viewer = await user(page, "vera", "proxy_admin_viewer");

  await signIn(page, viewer);
  await expect(page.getByRole("banner")).toContainText("viewer");
  for (const name of PAGES) {
    await page.getByRole("link", { name, exact: true }).click();
    await expect(page.getByRole("heading", { name, exact: true })).toBeVisible();
    await page.waitForLoadState("networkidle");
    const changes = page.getByRole("main").getByRole("button", { name: CHANGES });
    await expect(changes, `a control that changes things on ${name}`).toHaveCount(0);
    await expect(page.getByRole("button", { name: /^Actions for/ })).toHaveCount(0);
  }
  await page.getByRole("link", { name: "Keys", exact: true }).click();
  await expect(page.getByTestId("key-viewed-key")).toBeVisible();
  await page.getByRole("link", { name: "Teams", exact: true }).click();
  await page.getByTestId("team-viewed-team").getByRole("button", { name: "1 member" }).click();
  const members = page.getByRole("dialog", { name: "Members of viewed-team" });
  await expect(members.getByTestId("member-someone")).toContainText("member");
  await expect(members.getByRole("combobox")).toHaveCount(0);
  await expect(members.getByRole("button", { name: CHANGES })).toHaveCount(0);
  await expectAccessible(page);
  await screenshot(page, "viewer-team-members");
  await members.getByRole("button", { name: "Close" }).click();

  // The API refuses the same changes from this session, CSRF token and all.
  const token = await csrf(page);
  for (const [path, data] of [
    ["/team/new", { team_alias: "by-viewer" }],
    ["/team/member_add", { team_id: "t-view", member: { user_id: "x", role: "user" } }],
    ["/user/new", { user_id: "by-viewer" }],
    ["/organization/member_update", { organization_id: "o-view", user_id: "x", role: "org_admin" }],
    ["/key/generate", { key_alias: "by-viewer" }],
    ["/admin/vault/drift/repair", {}],
  ] as const) {
    const refused = await page.request.post(path, { headers: { "X-CSRF-Token": token }, data });
    expect(refused.status(), path).toBe(403);
  }
  // Nothing was made.
  const teams = await (await page.request.get("/v2/team/list", { headers: master })).json();
  expect(teams.teams.map((t: { team_id: string }) => t.team_id)).toEqual(["t-view"]);
});

test("an internal user sees only their own keys, teams and spend", async ({ page }) => {
  const own = await user(page, "ivy", "internal_user");
  await admin(page, "/key/generate", { user_id: "ivy", key_alias: "ivy-second" });
  const other = await user(page, "olga", "internal_user");
  await admin(page, "/key/generate", { user_id: "olga", key_alias: "olga-key" });
  await admin(page, "/team/new", { team_id: "t-ivy", team_alias: "ivy-team" });
  await admin(page, "/team/new", { team_id: "t-olga", team_alias: "olga-team" });
  await admin(page, "/team/member_add", { team_id: "t-ivy", member: { user_id: "ivy", role: "user" } });
  await admin(page, "/team/member_add", { team_id: "t-olga", member: { user_id: "olga", role: "user" } });
  expect((await chat(page, own, "gpt-a")).status()).toBe(200);
  expect((await chat(page, other, "gpt-a")).status()).toBe(200);
  expect((await chat(page, other, "gpt-b")).status()).toBe(200);

  await signIn(page, own);
  const nav = page.getByRole("navigation", { name: "Pages" });
  await expect(nav.getByRole("link")).toHaveText(["Keys", "Teams", "Spend"]);
  await expect(page.getByTestId("key-ivy-second")).toBeVisible();
  await expect(page.getByTestId("key-olga-key")).toHaveCount(0);
  await expect(page.getByRole("table", { name: "Keys" }).locator("tbody tr")).toHaveCount(2);

  await nav.getByRole("link", { name: "Teams" }).click();
  await expect(page.getByTestId("team-ivy-team")).toBeVisible();
  await expect(page.getByTestId("team-olga-team")).toHaveCount(0);

  // Spend: their own requests only (olga's gpt-b request is not among them).
  await nav.getByRole("link", { name: "Spend" }).click();
  await expect(async () => {
    await page.reload();
    await expect(page.getByTestId("request-row")).toHaveCount(1, { timeout: 5000 });
  }).toPass({ timeout: 45_000 });
  await expect(page.getByTestId("request-row")).toContainText("ivy");
  await expect(page.getByTestId("model-spend-gpt-a-upstream")).toBeVisible();
  await expect(page.getByTestId("model-spend-gpt-b-upstream")).toHaveCount(0);
  await expectAccessible(page);
  await screenshot(page, "internal-user-spend");

  // The gateway-wide routes refuse the session; the spend routes answer with own rows only.
  for (const path of ["/admin/vault", "/admin/models", "/admin/spend/daily"]) {
    expect((await page.request.get(path)).status(), path).toBe(403);
  }
  expect((await page.request.get("/user/list")).status()).toBe(401);
  const rows = await (await page.request.get("/spend/logs?user_id=olga")).json();
  expect(rows.map((r: { user: string }) => r.user)).toEqual(["ivy"]);
});

test("usable at a phone's width: the menu opens the pages, nothing overflows the screen", async ({ page }) => {
  await page.setViewportSize({ width: 390, height: 844 });
  await admin(page, "/team/new", { team_id: "t-phone", team_alias: "phone-team" });
  await admin(page, "/user/new", { user_id: "phone-user", auto_create_key: false });
  await signIn(page);
  for (const name of ["Teams", "Users", "Organizations", "Spend", "Vault"]) {
    await page.getByRole("button", { name: "Menu" }).click();
    await page.getByRole("navigation", { name: "Pages" }).getByRole("link", { name, exact: true }).click();
    await expect(page.getByRole("heading", { name, exact: true })).toBeVisible();
    // The menu closes itself, and wide tables scroll inside their box, not the page.
    await expect(page.getByRole("navigation", { name: "Pages" })).not.toBeInViewport();
    await page.waitForLoadState("networkidle");
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    // What sticks out, to say where the page is too wide.
    const wide = await page.evaluate(() =>
      [...document.querySelectorAll("body *")]
        .filter((e) => e.getBoundingClientRect().right > window.innerWidth + 1 && !e.parentElement?.closest(".table-scroll"))
        .slice(0, 8)
        .map((e) => `${e.tagName.toLowerCase()}.${e.className}`),
    );
    expect(overflow, `${name} is wider than the screen: ${wide.join(", ")}`).toBeLessThanOrEqual(0);
    await expectAccessible(page);
    await screenshot(page, `phone-${name.toLowerCase()}`);
  }
  await page.getByRole("button", { name: "Menu" }).click();
  await page.getByRole("navigation", { name: "Pages" }).getByRole("link", { name: "Teams", exact: true }).click();
  await page.getByRole("button", { name: "Create team" }).click();
  const form = page.getByRole("dialog", { name: "Create a team" });
  await expect(form.getByLabel("Name")).toBeInViewport();
  await expect(form.getByRole("button", { name: "Create team" })).toBeVisible();
});
