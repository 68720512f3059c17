import type { Page } from "@playwright/test";
import { MASTER_KEY, chat, expect, expectAccessible, expectConsoleErrors, screenshot, signIn, test } from "./fixtures";

const master = { Authorization: `Bearer ${MASTER_KEY}` };

/** What the API (as curl sees it) says, to check that the page's change really happened. */
async function read(page: Page, path: string) {
  const response = await page.request.get(path, { headers: master });
  expect(response.status()).toBe(200);
  return response.json();
}

async function pick(page: Page, label: string, option: string, within = page.getByRole("dialog")) {
  await within.getByRole("combobox", { name: label, exact: true }).click();
  await page.getByRole("option", { name: option, exact: true }).click();
}

async function actions(page: Page, name: string, item: string) {
  await page.getByRole("button", { name: `Actions for ${name}` }).click();
  await page.getByRole("menuitem", { name: item }).click();
}

test("organizations and teams: create, edit, members and roles, block, delete", async ({ page, consoleErrors }) => {
  await signIn(page);
  await page.getByRole("link", { name: "Organizations" }).click();
  await expect(page.getByText("No organizations yet.")).toBeVisible();

  // An organization with a budget.
  await page.getByRole("button", { name: "Create organization" }).click();
  let form = page.getByRole("dialog", { name: "Create an organization" });
  await form.getByLabel("Name").fill("acme");
  await form.getByLabel("Organization id").fill("org-acme");
  await form.getByLabel("Budget (USD)").fill("100");
  await expectAccessible(page);
  await form.getByRole("button", { name: "Create organization" }).click();
  await expect(form).toHaveCount(0);
  await expect(page.getByTestId("org-acme")).toContainText("$0.0000 / $100.00");

  // A team in it, with a model and a limit.
  await page.getByRole("link", { name: "Teams" }).click();
  await expect(page.getByText("No teams yet.")).toBeVisible();
  await page.getByRole("button", { name: "Create team" }).click();
  form = page.getByRole("dialog", { name: "Create a team" });
  await form.getByLabel("Name").fill("search");
  await form.getByLabel("Team id").fill("team-search");
  await pick(page, "Organization", "acme", form);
  await form.getByRole("combobox", { name: "Models" }).click();
  await page.getByRole("option", { name: "gpt-a" }).click();
  await form.getByRole("combobox", { name: "Models" }).press("Escape");
  await form.getByLabel("Requests per minute").fill("60");
  await form.getByRole("button", { name: "Create team" }).click();
  await expect(form).toHaveCount(0);
  const team = page.getByTestId("team-search");
  await expect(team).toContainText("acme");
  await expect(team).toContainText("gpt-a");
  await expect(team).toContainText("60 rpm");
  await expect(team).toContainText("Active");

  // Members: one by email (a new user), one by id; roles changed in place; one removed.
  await team.getByRole("button", { name: "0 members" }).click();
  const members = page.getByRole("dialog", { name: "Members of search" });
  await members.getByLabel("Add a member").fill("alice@example.com");
  await pick(page, "Role", "team admin", members);
  await members.getByRole("button", { name: "Add" }).click();
  await expect(members.getByRole("table")).toContainText("alice@example.com");
  await members.getByLabel("Add a member").fill("bob");
  await pick(page, "Role", "member", members);
  await members.getByRole("button", { name: "Add" }).click();
  await expect(members.getByTestId("member-bob")).toBeVisible();
  await expect(members.getByRole("combobox", { name: "Role of bob" })).toHaveValue("member");
  await expectAccessible(page);
  await screenshot(page, "team-members");
  await pick(page, "Role of bob", "team admin", members);
  await expect(members.getByRole("combobox", { name: "Role of bob" })).toHaveValue("team admin");
  let info = await read(page, "/team/info?team_id=team-search");
  expect(info.team_info.admins.sort()).toHaveLength(2);
  expect(info.team_info.admins).toContain("bob");
  await members.getByRole("button", { name: "Remove bob" }).click();
  await expect(members.getByTestId("member-bob")).toHaveCount(0);
  info = await read(page, "/team/info?team_id=team-search");
  expect(info.team_info.members).not.toContain("bob");
  // A refused change is explained in place.
  await members.getByLabel("Add a member").fill("alice@example.com");
  await members.getByRole("button", { name: "Add" }).click();
  await expect(members.getByRole("alert")).toContainText("already");
  expectConsoleErrors(consoleErrors, /400/);
  await members.getByRole("button", { name: "Close" }).click();
  await expect(team.getByRole("button", { name: "1 member" })).toBeVisible();

  // Edit, block and unblock.
  await actions(page, "search", "Edit");
  form = page.getByRole("dialog", { name: "Edit search" });
  await form.getByLabel("Requests per minute").fill("120");
  await form.getByRole("button", { name: "Save" }).click();
  await expect(form).toHaveCount(0);
  await expect(team).toContainText("120 rpm");
  await actions(page, "search", "Block");
  await expect(team).toContainText("Blocked");
  expect((await read(page, "/team/info?team_id=team-search")).team_info.blocked).toBe(true);
  await actions(page, "search", "Unblock");
  await expect(team).toContainText("Active");
  await expectAccessible(page);
  await screenshot(page, "teams");

  // The organization's members and roles.
  await page.getByRole("link", { name: "Organizations" }).click();
  const org = page.getByTestId("org-acme");
  await expect(org).toContainText("search");
  await actions(page, "acme", "Members");
  const orgMembers = page.getByRole("dialog", { name: "Members of acme" });
  await orgMembers.getByLabel("Add a member").fill("carol");
  await pick(page, "Role", "organization admin", orgMembers);
  await orgMembers.getByRole("button", { name: "Add" }).click();
  await expect(orgMembers.getByRole("combobox", { name: "Role of carol" })).toHaveValue("organization admin");
  await pick(page, "Role of carol", "internal user viewer", orgMembers);
  await expect(orgMembers.getByRole("combobox", { name: "Role of carol" })).toHaveValue("internal user viewer");
  let orgInfo = await read(page, "/organization/info?organization_id=org-acme");
  expect(orgInfo.members).toEqual([expect.objectContaining({ user_id: "carol", user_role: "internal_user_viewer" })]);
  await expectAccessible(page);
  await orgMembers.getByRole("button", { name: "Remove carol" }).click();
  await expect(orgMembers.getByTestId("member-carol")).toHaveCount(0);
  orgInfo = await read(page, "/organization/info?organization_id=org-acme");
  expect(orgInfo.members).toEqual([]);
  await orgMembers.getByRole("button", { name: "Close" }).click();
  await screenshot(page, "organizations");

  // An organization with a team is not deleted: the gateway's reason is shown.
  await actions(page, "acme", "Delete");
  let confirm = page.getByRole("dialog", { name: "Delete organization" });
  await confirm.getByRole("button", { name: "Delete" }).click();
  await expect(confirm.getByRole("alert")).toContainText("still has 1 team");
  expectConsoleErrors(consoleErrors, /400/);
  await confirm.getByRole("button", { name: "Cancel" }).click();

  // Delete the team (and its keys), then the organization.
  const { csrf_token } = await (await page.request.get("/ui/api/session")).json();
  const teamKey = await page.request.post("/key/generate", {
    headers: { "X-CSRF-Token": csrf_token },
    data: { team_id: "team-search", models: ["gpt-a"] },
  });
  const { key } = await teamKey.json();
  expect((await chat(page, key, "gpt-a")).status()).toBe(200);
  await page.getByRole("link", { name: "Teams" }).click();
  await actions(page, "search", "Delete");
  confirm = page.getByRole("dialog", { name: "Delete team" });
  await confirm.getByRole("button", { name: "Delete" }).click();
  await expect(page.getByText("No teams yet.")).toBeVisible();
  expect((await chat(page, key, "gpt-a")).status()).toBe(401);
  await page.getByRole("link", { name: "Organizations" }).click();
  await actions(page, "acme", "Delete");
  await page.getByRole("dialog", { name: "Delete organization" }).getByRole("button", { name: "Delete" }).click();
  await expect(page.getByText("No organizations yet.")).toBeVisible();
});

test("users: create with a key shown once, filter, change the role, delete", async ({ page }) => {
  await signIn(page);
  await page.getByRole("link", { name: "Users" }).click();
  await expect(page.getByRole("heading", { name: "Users" })).toBeVisible();
  await page.getByRole("button", { name: "Create user" }).click();
  const form = page.getByRole("dialog", { name: "Create a user" });
  await form.getByLabel("User id").fill("dana");
  await form.getByLabel("Email").fill("dana@example.com");
  await form.getByLabel("Name").fill("Dana");
  await form.getByLabel("Budget (USD)").fill("10");
  await expectAccessible(page);
  await form.getByRole("button", { name: "Create user" }).click();
  const shown = page.getByRole("dialog", { name: "Your new key" });
  const key = ((await shown.getByTestId("raw-key").textContent()) ?? "").trim();
  expect(key).toMatch(/^sk-/);
  await shown.getByRole("button", { name: "Done" }).click();
  const dana = page.getByTestId("user-dana");
  await expect(dana).toContainText("Dana");
  await expect(dana).toContainText("internal user");
  await expect(dana).toContainText("$0.0000 / $10.00");
  await expect(dana.locator("td").nth(3)).toHaveText("1");
  // The key shown is the user's.
  expect((await chat(page, key, "gpt-a")).status()).toBe(200);

  // A second user without a key; the role filter tells them apart.
  await page.getByRole("button", { name: "Create user" }).click();
  await form.getByLabel("User id").fill("erin");
  await form.getByLabel("Create a key for the user (shown once)").uncheck();
  await form.getByRole("button", { name: "Create user" }).click();
  await expect(page.getByTestId("user-erin")).toContainText("0");
  await actions(page, "Dana", "Edit");
  const edit = page.getByRole("dialog", { name: "Edit Dana" });
  await pick(page, "Role", "admin viewer", edit);
  await edit.getByRole("button", { name: "Save" }).click();
  await expect(dana).toContainText("admin viewer");
  await pick(page, "Role", "admin viewer", page.locator("main"));
  await expect(page.getByTestId("user-erin")).toHaveCount(0);
  await expect(dana).toBeVisible();
  await expectAccessible(page);
  await screenshot(page, "users");

  await actions(page, "Dana", "Delete");
  await page.getByRole("dialog", { name: "Delete user" }).getByRole("button", { name: "Delete" }).click();
  await expect(dana).toHaveCount(0);
  // Their key went with them.
  expect((await chat(page, key, "gpt-a")).status()).toBe(401);
});
